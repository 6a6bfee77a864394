"""The typed records that carry provenance from a PDF page to a retrieved chunk.

A page knows how it was read (which extractor or OCR engine, its version, DPI, confidence); a chunk
knows exactly where its text sits (document SHA-256, page, character span in that page's text, boxes).
Everything downstream (answers, citations, audit entries) points back through these records.
"""

from __future__ import annotations

import time
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

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
    # The page's tables (ingest.tables.TableRecord): cells with boxes, headers, title, units, periods,
    # and where each table's Markdown sits in ``text``.
    tables: list[Any] = field(default_factory=list)


@dataclass
class ExtractedDocument:
    """A file read into pages, before chunking. ``sha256`` is the identity of its bytes."""

    path: str
    sha256: str
    size_bytes: int
    media_type: str  # "application/pdf", "image/png", ...
    pages: list[PageText]
    title: str | None = None
    # What the PDF readers complained of while reading it (MuPDF's and pypdf's messages, first few, deduped).
    warnings: list[str] = field(default_factory=list)


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


# Characters that move the cursor, recolour the terminal, reorder text or end a line: never printed raw.
_UNPRINTABLE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


def printable(text: str) -> str:
    """``text`` safe to print on one terminal line and to store as UTF-8.

    Control and format characters (ESC, newline, bidi overrides) become escapes as repr writes them
    (``\\x1b``, ``\\u202e``), and the bytes of a file name that are not UTF-8 (which Python carries as
    surrogate escapes) become ``\\xff``. Everything else, backslashes included, stays as it is, so an
    ordinary name is unchanged."""
    if text.isprintable():
        return text
    out = []
    for ch in text:
        code = ord(ch)
        if unicodedata.category(ch) not in _UNPRINTABLE_CATEGORIES:
            out.append(ch)
        elif 0xDC80 <= code <= 0xDCFF:  # os.fsdecode's stand-in for the undecodable byte code - 0xDC00
            out.append(f"\\x{code - 0xDC00:02x}")
        else:
            out.append(repr(ch)[1:-1])  # \\x1b, \\n, \\u202e
    return "".join(out)


def display_path(path: Path | str) -> str:
    """A file's path as Docket prints and stores it (see ``printable``)."""
    return printable(str(path))


@dataclass
class Deadline:
    """The per-document time limit (``ingest.document_timeout_s``), checked between pages and steps.

    A cooperative check, not a killed thread: it raises only where nothing is half-done, and never
    inside the registry commit, so a document over time leaves nothing behind."""

    seconds: float
    started: float = field(default_factory=time.monotonic)

    def extend(self, seconds: float) -> None:
        """Leave ``seconds`` out of the limit (a cost of the process, such as loading the encoder once)."""
        self.started += seconds

    def check(self, name: str, where: str) -> None:
        if time.monotonic() - self.started > self.seconds:
            raise IngestError(
                name, f"not done after ingest.document_timeout_s={self.seconds:g} s ({where}); nothing of it was stored",
                "raise DOCKET_INGEST__DOCUMENT_TIMEOUT_S or split the file",
            )
