"""Read a file into pages of text, each page saying how it was read.

PDFs: PyMuPDF reads the text layer block by block (with boxes); pypdf takes over for a file or a page
that PyMuPDF cannot read. Pages without a usable text layer are read from pixels by ``ingest.ocr``
(Tesseract offline, or a vision model), as ``OcrSettings.mode`` says. Image files go straight to OCR.
With ``OcrSettings.describe_figures``, the charts and figures of text-layer pages are described by the
vision model and appended to their page (``ingest.ocr.figures``).
Every failure is an ``IngestError`` with one line naming the file (and page) and what to do.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

from ingest.config import OcrSettings
from ingest.models import ExtractedDocument, IngestError, PageText, TextSpan

log = logging.getLogger(__name__)

PDF_MAGIC = b"%PDF-"
IMAGE_SUFFIXES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".tif": "image/tiff", ".tiff": "image/tiff"}
SUPPORTED_SUFFIXES = {".pdf", *IMAGE_SUFFIXES}
PAGES_PER_OPEN = 100  # a longer PDF is reopened every this many pages (see _read_pdf)


def sha256_file(path: Path) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size


def read_document(path: Path, ocr: OcrSettings) -> ExtractedDocument:
    """Extract every page of ``path``; raise IngestError for anything that cannot be ingested."""
    name = str(path)
    if not path.exists():
        raise IngestError(name, "no such file", "check the path")
    if not path.is_file():
        raise IngestError(name, "not a regular file")
    try:
        sha256, size = sha256_file(path)
        head = path.open("rb").read(1024)
    except OSError as exc:
        raise IngestError(name, f"cannot read the file ({exc.strerror or exc})", "check its permissions") from exc
    if size == 0:
        raise IngestError(name, "the file is empty (0 bytes)", "re-export or re-download it")

    suffix = path.suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        from ingest.ocr import read_image_file

        pages = read_image_file(path, ocr)
        return ExtractedDocument(name, sha256, size, IMAGE_SUFFIXES[suffix], pages, title=path.stem)
    if PDF_MAGIC not in head:
        raise IngestError(
            name, "not a PDF (no %PDF- header)", f"Docket reads PDF, PNG, JPEG and TIFF; convert it first"
        )
    pages, title = _read_pdf(path, ocr)
    return ExtractedDocument(name, sha256, size, "application/pdf", pages, title=title or path.stem)


def _read_pdf(path: Path, ocr: OcrSettings) -> tuple[list[PageText], str | None]:
    import pymupdf

    name = str(path)
    try:
        doc = pymupdf.open(path)
    except Exception as exc:  # PyMuPDF raises its own FileDataError, RuntimeError, ...
        log.debug("PyMuPDF could not open %s: %s", name, exc)
        return _read_pdf_with_pypdf(path), None
    try:
        if doc.needs_pass:
            raise IngestError(name, "the PDF is encrypted with a password", "ask for an unprotected copy")
        if doc.page_count == 0:
            raise IngestError(name, "the PDF has no pages")
        title = (doc.metadata or {}).get("title") or None
        pages: list[PageText] = []
        routes: dict[int, str] = {}  # page number -> why it must be read from pixels
        reasons: dict[int, str] = {}
        for index in range(doc.page_count):
            number = index + 1
            page = None
            if index and index % PAGES_PER_OPEN == 0:
                # MuPDF caches every object it parses until the document is closed, and that memory
                # (about 0.1 MiB a page on a 10-K) is not returned to the system after; reopening bounds
                # it by a slice of pages instead of the whole file, for ~20 ms per reopen.
                count = doc.page_count
                doc.close()
                try:
                    doc = pymupdf.open(path)
                except Exception as exc:
                    raise IngestError(name, f"cannot read the file any more ({exc})", "ingest it again") from exc
                if doc.page_count != count:
                    raise IngestError(name, "the file changed while it was being read", "ingest it again")
            try:
                page = doc.load_page(index)
                text_page = _pymupdf_page(page, number)
            except Exception as exc:
                log.debug("PyMuPDF failed on %s page %d: %s", name, number, exc)
                text_page = _pypdf_page(path, index)
            if ocr.mode != "never" and page is not None:
                decision = _route(page, ocr)
                if decision is not None:
                    routes[number], reasons[number] = decision
            if ocr.describe_figures and number not in routes and text_page.method == "pymupdf":
                from ingest.ocr.figures import add_figure_descriptions

                text_page = add_figure_descriptions(page, text_page, ocr)
            pages.append(text_page)
    finally:
        if not doc.is_closed:
            doc.close()
    if routes:
        from ingest.ocr import ocr_pdf_pages

        for read in ocr_pdf_pages(path, sorted(routes), ocr, routes=routes):
            read.notes.insert(0, reasons[read.number])
            pages[read.number - 1] = read
    return pages, title


def _route(page, ocr: OcrSettings) -> tuple[str, str] | None:
    """(route, reason) when a page must be read from pixels; None to keep its text layer."""
    from ingest.ocr import classify_page

    if ocr.mode == "always":
        return "ocr-always", "--ocr always"
    decision = classify_page(page, ocr.languages)
    return None if decision.route == "text-layer" else (decision.route, decision.reason)


def _pymupdf_page(page, number: int) -> PageText:
    """Page text as its blocks in reading order, separated by blank lines; one span (with box) per block."""
    import pymupdf

    parts: list[str] = []
    spans: list[TextSpan] = []
    cursor = 0
    for block in page.get_text("blocks", sort=True, flags=pymupdf.TEXTFLAGS_TEXT):
        x0, y0, x1, y1, text, _no, kind = block[:7]
        if kind != 0:  # image block
            continue
        text = "\n".join(line.strip() for line in text.strip().splitlines() if line.strip())
        if not text:
            continue
        if parts:
            cursor += 2  # the "\n\n" separator
        spans.append(TextSpan(cursor, cursor + len(text), (x0, y0, x1, y1)))
        parts.append(text)
        cursor += len(text)
    return PageText(
        number=number,
        text="\n\n".join(parts),
        method="pymupdf",
        engine_version=f"PyMuPDF {pymupdf.VersionBind}",
        spans=spans,
        width=page.rect.width,
        height=page.rect.height,
    )


def _pypdf_page(path: Path, index: int) -> PageText:
    from pypdf import PdfReader, __version__

    try:
        reader = PdfReader(path)
        page = reader.pages[index]
        text = page.extract_text() or ""
        box = page.mediabox
    except Exception as exc:
        raise IngestError(str(path), f"neither PyMuPDF nor pypdf can read it ({exc})", "the file may be corrupt", page=index + 1) from exc
    text = "\n".join(line.rstrip() for line in text.splitlines()).strip()
    return PageText(
        number=index + 1,
        text=text,
        method="pypdf",
        engine_version=f"pypdf {__version__}",
        width=float(box.width),
        height=float(box.height),
    )


def _read_pdf_with_pypdf(path: Path) -> list[PageText]:
    from pypdf import PdfReader
    from pypdf.errors import FileNotDecryptedError, PdfReadError

    name = str(path)
    try:
        reader = PdfReader(path)
        if reader.is_encrypted:
            raise IngestError(name, "the PDF is encrypted with a password", "ask for an unprotected copy")
        count = len(reader.pages)
    except IngestError:
        raise
    except (PdfReadError, FileNotDecryptedError, ValueError, KeyError, OSError) as exc:
        raise IngestError(name, f"corrupt or unreadable PDF ({exc})", "re-export the file or get a fresh copy") from exc
    if count == 0:
        raise IngestError(name, "the PDF has no pages")
    return [_pypdf_page(path, index) for index in range(count)]
