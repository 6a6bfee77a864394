"""The typed records that carry provenance from a PDF page to a retrieved chunk.

A page knows how it was read (which extractor or OCR engine, its version, DPI, confidence); a chunk
knows exactly where its text sits (document SHA-256, page, character span in that page's text, boxes).
Everything downstream (answers, citations, audit entries) points back through these records.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

# How a page's text was obtained. "pymupdf"/"pypdf" read a PDF's text layer; the others read pixels.
ExtractionMethod = Literal["pymupdf", "pypdf", "tesseract", "magistral-vision", "mistral-ocr"]
OCR_METHODS: frozenset[str] = frozenset({"tesseract", "magistral-vision", "mistral-ocr"})

# A box in PDF points (x0, y0, x1, y1), origin top-left, as PyMuPDF reports them.
Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class TextSpan:
    """A run of page text with its box: a PDF text block, or an OCR word/line."""

    start: int  # character offsets into PageText.text, [start, end)
    end: int
    box: Box
    confidence: float | None = None  # 0..1 for OCR words; None for a text layer
    # Set when this span was read otherwise than its page (a figure described by a vision model);
    # the chunker gives such a span chunks of its own, with this method.
    method: ExtractionMethod | None = None


@dataclass
class PageText:
    """One page's text and how it was read. ``number`` is 1-based, as people cite pages."""

    number: int
    text: str
    method: ExtractionMethod
    engine_version: str
    spans: list[TextSpan] = field(default_factory=list)
    width: float = 0.0  # page size in points
    height: float = 0.0
    dpi: int | None = None  # for pages read from pixels
    confidence: float | None = None  # 0..1 mean word confidence for OCR; None for a text layer
    # Why this page was (or was not) OCRed: "text-layer", "no-text-layer", "unusable-text-layer", ...
    route: str = "text-layer"
    notes: list[str] = field(default_factory=list)  # e.g. "vision reader failed; fell back to tesseract"


@dataclass
class ExtractedDocument:
    """A file read into pages, before chunking. ``sha256`` is the identity of its bytes."""

    path: str
    sha256: str
    size_bytes: int
    media_type: str  # "application/pdf", "image/png", ...
    pages: list[PageText]
    title: str | None = None


@dataclass(frozen=True)
class Chunk:
    """A retrievable piece of one page. Its text is exactly ``page.text[char_start:char_end]``."""

    doc_sha256: str
    page: int
    char_start: int
    char_end: int
    text: str
    token_count: int
    method: ExtractionMethod
    boxes: tuple[Box, ...] = ()
    confidence: float | None = None
    # Headings/section titles that give the chunk its context; embedded with it, never quoted as its text.
    context: str = ""

    @property
    def text_sha256(self) -> str:
        import hashlib

        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()


class IngestError(Exception):
    """A file that cannot be ingested. ``str()`` is one line: the file, the reason, what to do."""

    def __init__(self, path: str, reason: str, hint: str = "", page: int | None = None):
        self.path, self.reason, self.hint, self.page = path, reason, hint, page
        where = f"{path} (page {page})" if page is not None else path
        super().__init__(f"{where}: {reason}" + (f"; {hint}" if hint else ""))
