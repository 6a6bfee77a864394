"""Readers turn one upright page image into text; `settings.reader` picks one by name.

Every reader returns a ``Reading``; pages.py wraps it into a PageText with the page's provenance.
"""

from __future__ import annotations

import re
import statistics
from dataclasses import dataclass, field, replace
from typing import Protocol

import numpy as np

from ingest.config import OcrSettings
from ingest.models import TextSpan
from ingest.ocr import preprocess
from ingest.ocr.page_image import PageImage
from ingest.ocr.tesseract import OcrWord, read_words, tesseract_version

# Every page is read twice: with automatic page segmentation (3), which keeps columns and paragraphs
# in reading order as chunking needs, and in sparse-text mode (11), which finds the scattered labels and
# entries of forms that automatic segmentation merges or skips. The reading Tesseract is more confident
# of (mean word confidence) is kept, in its own order; words of the other reading where the kept one
# found nothing are added when Tesseract is sure of them. Values chosen on one half of FUNSD's training
# forms and checked on the other half, the six FUNSD test forms and the synthetic contract scan
# (docs/ocr.md, "Issue 18: choices made on funsd_train").
PAGE_SEGMENTATION_MODE = 3
SPARSE_SEGMENTATION_MODE = 11
# Words of the other reading added where the kept one has none: only confident ones (a low-confidence
# word there is mostly a form line or a speck read as letters).
MIN_ADDED_WORD_CONFIDENCE = 0.8
# A word overlapping a kept word by more than this share of its own box is the same word read twice.
MAX_ADDED_WORD_OVERLAP = 0.2
# Where both readings found the same word (their boxes overlap by at least this intersection over union)
# but read it differently, the more confident reading of it is kept: the two segmentations feed the
# recogniser different line images, so a letter misread in one is often read right in the other.
MIN_SAME_WORD_IOU = 0.5
# An unsure word (under this confidence) is dropped when it does not look like text: no letter or digit
# in it, or a box much shorter (a rule, an underscore run) or taller (a box edge) than the page's
# typical word. Unsure words that do look like text stay: on a degraded contract they are mostly real
# words with a stray mark (dropping every unsure word cost the synthetic scan 0.009 F1).
UNSURE_WORD_CONFIDENCE = 0.7
WORD_HEIGHT_RANGE = (0.5, 2.0)  # times the median word height of the page
_LETTER_OR_DIGIT = re.compile(r"[^\W_]")


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


def mean_confidence(words: list[OcrWord]) -> float:
    return sum(w.confidence for w in words) / len(words) if words else 0.0


def _covered_share(box: tuple[int, int, int, int], other: tuple[int, int, int, int]) -> float:
    """Share of ``box``'s area that ``other`` covers."""
    width = min(box[2], other[2]) - max(box[0], other[0])
    height = min(box[3], other[3]) - max(box[1], other[1])
    if width <= 0 or height <= 0:
        return 0.0
    return width * height / max(1, (box[2] - box[0]) * (box[3] - box[1]))


def combine_readings(kept: list[OcrWord], other: list[OcrWord]) -> tuple[list[OcrWord], int]:
    """``kept`` plus the confident words of ``other`` lying where ``kept`` has no word, and how many
    were added. Added words follow the kept ones, in ``other``'s order, as blocks of their own."""
    blocks = max((w.block for w in kept), default=0)
    added = [
        replace(w, block=w.block + blocks)
        for w in other
        if w.confidence >= MIN_ADDED_WORD_CONFIDENCE
        and all(_covered_share(w.box, k.box) <= MAX_ADDED_WORD_OVERLAP for k in kept)
    ]
    return kept + added, len(added)


def take_surer_readings(kept: list[OcrWord], other: list[OcrWord]) -> tuple[list[OcrWord], int]:
    """``kept`` with each word read differently, and more confidently, at the same place in ``other``
    replaced by that reading (text and confidence; box and order stay ``kept``'s), and how many were."""
    if not kept or not other:
        return kept, 0
    a = np.array([w.box for w in kept], dtype=np.float64)[:, None, :]
    b = np.array([w.box for w in other], dtype=np.float64)[None, :, :]
    width = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    height = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    overlap = width * height
    area_a = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
    area_b = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    iou = overlap / np.maximum(area_a + area_b - overlap, 1.0)
    best = iou.argmax(axis=1)
    words, replaced = [], 0
    for index, word in enumerate(kept):
        match = other[best[index]]
        if iou[index, best[index]] >= MIN_SAME_WORD_IOU and match.text != word.text and match.confidence > word.confidence:
            words.append(replace(word, text=match.text, confidence=match.confidence))
            replaced += 1
        else:
            words.append(word)
    return words, replaced


def drop_unsure_non_text(words: list[OcrWord]) -> list[OcrWord]:
    """``words`` without the unsure ones that do not look like text (see UNSURE_WORD_CONFIDENCE)."""
    if not words:
        return words
    median = statistics.median(w.box[3] - w.box[1] for w in words)
    low, high = WORD_HEIGHT_RANGE[0] * median, WORD_HEIGHT_RANGE[1] * median

    def looks_like_text(word: OcrWord) -> bool:
        return bool(_LETTER_OR_DIGIT.search(word.text)) and low <= word.box[3] - word.box[1] <= high

    return [w for w in words if w.confidence >= UNSURE_WORD_CONFIDENCE or looks_like_text(w)]


class TesseractReader:
    name = "tesseract"

    def read(self, page: PageImage, settings: OcrSettings, path: str) -> Reading:
        factor = preprocess.upscale_factor(page.dpi)
        image = preprocess.upscale(page.image, factor)
        dpi = round(page.dpi * factor)
        readings = {
            psm: read_words(image, dpi=dpi, languages=settings.languages, psm=psm, path=path, page=page.number)
            for psm in (PAGE_SEGMENTATION_MODE, SPARSE_SEGMENTATION_MODE)
        }
        # Ties keep automatic segmentation (its order is the better one for prose).
        kept_psm = max(readings, key=lambda psm: (mean_confidence(readings[psm]), psm == PAGE_SEGMENTATION_MODE))
        other_psm = SPARSE_SEGMENTATION_MODE if kept_psm == PAGE_SEGMENTATION_MODE else PAGE_SEGMENTATION_MODE
        surer, replaced = take_surer_readings(readings[kept_psm], readings[other_psm])
        words, added = combine_readings(surer, readings[other_psm])
        confident = drop_unsure_non_text(words)
        text, spans = words_to_reading(confident, page, factor)
        notes = [f"upscaled {factor:.2f}x from {page.dpi} dpi"] if factor != 1.0 else []
        notes.append(
            f"read with --psm {kept_psm} (mean word confidence {mean_confidence(readings[kept_psm]):.2f}, "
            f"--psm {other_psm} {mean_confidence(readings[other_psm]):.2f}); {replaced} words read more surely by "
            f"--psm {other_psm} taken from it; {added} words added from --psm "
            f"{other_psm}; {len(words) - len(confident)} unsure words unlike text dropped (rules, box edges)"
        )
        return Reading(text, spans, round(mean_confidence(confident), 4), tesseract_version(), notes)
