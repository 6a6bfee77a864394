"""Readers turn one upright page image into text; `settings.reader` picks one by name.

Every reader returns a ``Reading``; pages.py wraps it into a PageText with the page's provenance.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from ingest.config import OcrSettings
from ingest.models import TextSpan
from ingest.ocr import preprocess
from ingest.ocr.page_image import PageImage
from ingest.ocr.tesseract import OcrWord, read_words, tesseract_version

# Automatic page segmentation: it keeps columns and paragraphs in reading order, which chunking needs.
# Sparse-text mode (11) scored the same on forms but scatters the order of prose (docs/ocr.md).
PAGE_SEGMENTATION_MODE = 3


@dataclass
class Reading:
    """What a reader made of one page. ``confidence`` is None when the reader states none."""

    text: str
    spans: list[TextSpan]
    confidence: float | None
    engine_version: str
    notes: list[str] = field(default_factory=list)


class PageReader(Protocol):
    name: str

    def read(self, page: PageImage, settings: OcrSettings, path: str) -> Reading: ...


def words_to_reading(words: list[OcrWord], page: PageImage, scale: float) -> tuple[str, list[TextSpan]]:
    """Words in reading order as text (lines by newline, paragraphs by a blank line) with word spans."""
    parts: list[str] = []
    spans: list[TextSpan] = []
    offset = 0
    previous: OcrWord | None = None
    for word in words:
        if previous is not None:
            if (word.block, word.paragraph) != (previous.block, previous.paragraph):
                separator = "\n\n"
            elif word.line != previous.line:
                separator = "\n"
            else:
                separator = " "
            parts.append(separator)
            offset += len(separator)
        box = tuple(value / scale for value in word.box)
        spans.append(TextSpan(offset, offset + len(word.text), page.to_page_box(box), round(word.confidence, 4)))
        parts.append(word.text)
        offset += len(word.text)
        previous = word
    return "".join(parts), spans


class TesseractReader:
    name = "tesseract"

    def read(self, page: PageImage, settings: OcrSettings, path: str) -> Reading:
        factor = preprocess.upscale_factor(page.dpi)
        image = preprocess.upscale(page.image, factor)
        words = read_words(
            image, dpi=round(page.dpi * factor), languages=settings.languages, psm=PAGE_SEGMENTATION_MODE,
            path=path, page=page.number,
        )
        text, spans = words_to_reading(words, page, factor)
        confidence = round(sum(w.confidence for w in words) / len(words), 4) if words else 0.0
        notes = [f"upscaled {factor:.2f}x from {page.dpi} dpi"] if factor != 1.0 else []
        return Reading(text, spans, confidence, tesseract_version(), notes)
