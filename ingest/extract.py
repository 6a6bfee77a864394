"""Read a file into pages of text, each page saying how it was read.

PDFs: PyMuPDF reads the text layer block by block (with boxes); pypdf takes over for a file or a page
that PyMuPDF cannot read. Pages without a usable text layer are read from pixels by ``ingest.ocr``
(Tesseract offline, or a vision model), as ``OcrSettings.mode`` says. Image files go straight to OCR.
With ``OcrSettings.describe_figures``, the charts and figures of text-layer pages are described by the
vision model and appended to their page (``ingest.ocr.figures``).
Every failure is an ``IngestError`` with one line naming the file (and page) and what to do.

Bounds (``IngestSettings``): a PDF with more than ``max_pages`` pages is refused from its page count,
before any page is read; a ``Deadline`` is checked between pages and steps. MuPDF's own messages are
kept off stdout and stderr (MuPDF prints errors to stdout by default, which would break ``--json``)
and pypdf's off the log: both are collected into ``ExtractedDocument.warnings`` and the error message.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from ingest import progress
from ingest.config import IngestSettings, OcrSettings
from ingest.models import Deadline, ExtractedDocument, IngestError, PageText, TextSpan, display_path

log = logging.getLogger(__name__)

PDF_MAGIC = b"%PDF-"
IMAGE_SUFFIXES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".tif": "image/tiff", ".tiff": "image/tiff"}
SUPPORTED_SUFFIXES = {".pdf", *IMAGE_SUFFIXES}
PAGES_PER_OPEN = 100  # a longer PDF is reopened every this many pages (see _read_pdf)
MAX_WARNINGS = 20  # reader messages kept per document (a hostile file can produce millions)


def sha256_file(path: Path) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size


def read_document(
    path: Path, ocr: OcrSettings, limits: IngestSettings | None = None, deadline: Deadline | None = None,
    read_ocr_pages: Callable[..., list[PageText]] | None = None,
) -> ExtractedDocument:
    """Extract every page of ``path``; raise IngestError for anything that cannot be ingested.

    ``deadline`` (default: one of ``limits.document_timeout_s`` from now) is checked between pages, so the
    caller can start it earlier and keep checking it in its own steps. ``read_ocr_pages`` reads a PDF's
    pages that need OCR, called as ``ingest.ocr.ocr_pdf_pages`` (the default) is: on Ray, one task a page."""
    limits = limits or IngestSettings()
    deadline = deadline or Deadline(limits.document_timeout_s)
    name = display_path(path)
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
        check_page_count(name, len(pages), limits)  # a multi-page TIFF
        deadline.check(name, f"after OCR of its {len(pages)} frames")
        return ExtractedDocument(name, sha256, size, IMAGE_SUFFIXES[suffix], pages, title=display_path(path.stem))
    if PDF_MAGIC not in head:
        raise IngestError(
            name, "not a PDF (no %PDF- header)", f"Docket reads PDF, PNG, JPEG and TIFF; convert it first"
        )
    warnings = ReaderWarnings()
    pages, title = _read_pdf(path, ocr, limits, deadline, warnings, read_ocr_pages)
    from ingest.tables import link_pages

    link_pages(pages)  # a table continued on the next page without its header gets it from the page before
    if warnings.lines:
        log.info("%s: the PDF readers reported: %s", name, "; ".join(warnings.lines))
    title = display_path(title) if title else display_path(path.stem)
    return ExtractedDocument(name, sha256, size, "application/pdf", pages, title=title, warnings=warnings.lines)


def check_page_count(name: str, count: int, limits: IngestSettings) -> None:
    if count > limits.max_pages:
        raise IngestError(
            name, f"{count} pages, over ingest.max_pages={limits.max_pages}", "raise DOCKET_INGEST__MAX_PAGES or split the file"
        )


class ReaderWarnings:
    """The first MAX_WARNINGS distinct messages MuPDF and pypdf gave about one document."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def add(self, source: str, text: str) -> None:
        for line in text.splitlines():
            line = f"{source}: {line.strip()}"
            if line != f"{source}: " and len(self.lines) < MAX_WARNINGS and line not in self.lines:
                self.lines.append(line)

    def add_mupdf(self) -> None:
        import pymupdf

        self.add("MuPDF", pymupdf.TOOLS.mupdf_warnings())  # and empties MuPDF's store, which would grow

    def summary(self) -> str:
        return "; ".join(self.lines[:3])

    def nested_too_deeply(self) -> bool:
        text = " ".join(self.lines).lower()
        return any(sign in text for sign in ("stack overflow", "too deep", "nesting", "recursion"))


def _quiet_pymupdf():
    """pymupdf, with MuPDF's messages kept in its store (``ReaderWarnings.add_mupdf``) instead of printed:
    by default PyMuPDF prints MuPDF's errors to stdout, which would break ``--json``."""
    # OCR's worker processes import pymupdf afresh, reading this variable: there its messages go to a
    # debug logger (which workers do not print), not to the stdout they share with this process.
    os.environ.setdefault("PYMUPDF_MESSAGE", "logging:level=10,name=pymupdf")
    import pymupdf

    pymupdf.TOOLS.mupdf_display_errors(False)
    pymupdf.TOOLS.mupdf_display_warnings(False)
    pymupdf.set_messages(pylogging=True, pylogging_name="pymupdf", pylogging_level=logging.DEBUG)  # PyMuPDF's own
    return pymupdf


@contextmanager
def _pypdf_messages(warnings: ReaderWarnings) -> Iterator[None]:
    """pypdf's warnings into ``warnings`` instead of the log: a broken file can log thousands of lines."""

    class _Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            warnings.add("pypdf", record.getMessage())

    logger, handler = logging.getLogger("pypdf"), _Collect()
    propagate, logger.propagate = logger.propagate, False
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate


def _unreadable(name: str, warnings: ReaderWarnings, reason: str = "the PDF has no pages") -> IngestError:
    """The error for a PDF whose pages cannot be found, saying why when the readers said why."""
    if warnings.nested_too_deeply():
        return IngestError(
            name, f"the PDF's objects are nested too deeply to be read ({warnings.summary()})",
            "re-export the file (e.g. print it to PDF) or get a fresh copy",
        )
    if warnings.lines:
        return IngestError(name, f"{reason} ({warnings.summary()})", "re-export the file or get a fresh copy")
    return IngestError(name, reason)


def _utf8_name(path: Path) -> bool:
    try:
        str(path).encode("utf-8")
        return True
    except UnicodeEncodeError:  # bytes that are not UTF-8, carried by Python as surrogate escapes
        return False


def _open_pymupdf(pymupdf, path: Path, data: bytes | None):
    return pymupdf.open(path) if data is None else pymupdf.open(stream=data, filetype="pdf")


def _read_pdf(
    path: Path, ocr: OcrSettings, limits: IngestSettings, deadline: Deadline, warnings: ReaderWarnings,
    read_ocr_pages: Callable[..., list[PageText]] | None = None,
) -> tuple[list[PageText], str | None]:
    pymupdf = _quiet_pymupdf()
    pymupdf.TOOLS.reset_mupdf_warnings()
    name = display_path(path)
    # MuPDF opens a file only by a UTF-8 name: a name with other bytes is read from memory instead.
    data = None if _utf8_name(path) else path.read_bytes()
    try:
        doc = _open_pymupdf(pymupdf, path, data)
    except Exception as exc:  # PyMuPDF raises its own FileDataError, RuntimeError, ...
        warnings.add_mupdf()
        log.debug("PyMuPDF could not open %s: %s", name, exc)
        return _read_pdf_with_pypdf(path, limits, deadline, warnings), None
    try:
        if doc.needs_pass:
            raise IngestError(name, "the PDF is encrypted with a password", "ask for an unprotected copy")
        try:
            count = doc.page_count
        except Exception as exc:  # "Invalid number of pages": e.g. a page tree whose /Count lies
            warnings.add("MuPDF", str(exc))
            warnings.add_mupdf()
            log.debug("PyMuPDF cannot count the pages of %s: %s", name, exc)
            doc.close()
            return _read_pdf_with_pypdf(path, limits, deadline, warnings), None
        warnings.add_mupdf()
        if count == 0:
            raise _unreadable(name, warnings)
        check_page_count(name, count, limits)  # before any page is read
        title = (doc.metadata or {}).get("title") or None
        pages: list[PageText] = []
        routes: dict[int, str] = {}  # page number -> why it must be read from pixels
        reasons: dict[int, str] = {}
        pypdf_reader = None  # opened once, if PyMuPDF fails on a page
        for index in range(count):
            number = index + 1
            deadline.check(name, f"stopped at page {number} of {count}")
            progress.report("reading pages", index, count)
            page = None
            if index and index % PAGES_PER_OPEN == 0:
                # MuPDF caches every object it parses until the document is closed, and that memory is
                # not returned to the system after; reopening bounds it by a slice of pages instead of the
                # whole file, at a small cost per reopen (docs/performance.md, "Peak memory on a 500-page filing").
                doc.close()
                try:
                    doc = _open_pymupdf(pymupdf, path, data)
                except Exception as exc:
                    raise IngestError(name, f"cannot read the file any more ({exc})", "ingest it again") from exc
                if doc.page_count != count:
                    raise IngestError(name, "the file changed while it was being read", "ingest it again")
            try:
                page = doc.load_page(index)
                text_page = _pymupdf_page(page, number)
            except Exception as exc:
                log.debug("PyMuPDF failed on %s page %d: %s", name, number, exc)
                if pypdf_reader is None:
                    pypdf_reader = _open_pypdf(path, warnings)
                text_page = _pypdf_page(path, index, pypdf_reader, warnings)
            warnings.add_mupdf()
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
        from ingest.tables import ocr_page_tables

        read_ocr_pages = read_ocr_pages or ocr_pdf_pages
        if data is not None:
            raise IngestError(
                name, f"{len(routes)} of its pages need OCR, which opens the PDF by its file name, and the name is not UTF-8",
                "rename the file (e.g. to its title) and ingest it again",
            )
        numbers = sorted(routes)

        def between(done: int) -> None:
            deadline.check(name, f"stopped in OCR after {done} of the {len(numbers)} pages that need it")
            progress.report("OCR", done, len(numbers))

        progress.report("OCR", 0, len(numbers))
        for read in read_ocr_pages(path, numbers, ocr, routes=routes, between=between):
            read.notes.insert(0, reasons[read.number])
            pages[read.number - 1] = ocr_page_tables(read)  # a scanned statement's grid, from the word boxes
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

    from ingest.tables import page_tables

    # One text page for the blocks and the words the tables are found from (MuPDF reads the page once).
    textpage = page.get_textpage(flags=pymupdf.TEXTFLAGS_TEXT)
    blocks = page.get_text("blocks", sort=True, textpage=textpage)
    found = page_tables(page, textpage, blocks, number)
    if found is not None:  # statements and other grids: their region of the text is Markdown (ingest.tables)
        text, table_spans, tables = found
        return PageText(
            number=number, text=text, method="pymupdf", engine_version=f"PyMuPDF {pymupdf.VersionBind}",
            spans=[TextSpan(s, e, box) for s, e, box in table_spans], width=page.rect.width,
            height=page.rect.height, tables=tables,
        )
    parts: list[str] = []
    spans: list[TextSpan] = []
    cursor = 0
    for block in blocks:
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


def _open_pypdf(path: Path, warnings: ReaderWarnings):
    from pypdf import PdfReader

    try:
        with _pypdf_messages(warnings):
            return PdfReader(path)
    except RecursionError as exc:
        raise _nested(path) from exc
    except Exception as exc:  # pypdf raises many kinds on a hostile file; any of them means unreadable
        if warnings.nested_too_deeply():
            raise _unreadable(display_path(path), warnings) from exc
        raise IngestError(
            display_path(path), f"neither PyMuPDF nor pypdf can read it ({exc})", "the file may be corrupt"
        ) from exc


def _nested(path: Path) -> IngestError:
    return IngestError(
        display_path(path), "the PDF's objects are nested too deeply to be read (pypdf: recursion limit)",
        "re-export the file (e.g. print it to PDF) or get a fresh copy",
    )


def _pypdf_page(path: Path, index: int, reader, warnings: ReaderWarnings) -> PageText:
    from pypdf import __version__

    try:
        with _pypdf_messages(warnings):
            page = reader.pages[index]
            text = page.extract_text() or ""
            box = page.mediabox
    except RecursionError as exc:
        raise _nested(path) from exc
    except Exception as exc:
        raise IngestError(display_path(path), f"neither PyMuPDF nor pypdf can read it ({exc})", "the file may be corrupt", page=index + 1) from exc
    text = "\n".join(line.rstrip() for line in text.splitlines()).strip()
    return PageText(
        number=index + 1,
        text=text,
        method="pypdf",
        engine_version=f"pypdf {__version__}",
        width=float(box.width),
        height=float(box.height),
    )


def _read_pdf_with_pypdf(
    path: Path, limits: IngestSettings, deadline: Deadline, warnings: ReaderWarnings
) -> list[PageText]:
    from pypdf import PdfReader

    name = display_path(path)
    try:
        with _pypdf_messages(warnings):
            reader = PdfReader(path)
            if reader.is_encrypted:
                raise IngestError(name, "the PDF is encrypted with a password", "ask for an unprotected copy")
            claimed = _claimed_page_count(reader)
            if claimed is not None:
                check_page_count(name, claimed, limits)  # before pypdf walks the page tree
            count = len(reader.pages)
    except IngestError:
        raise
    except RecursionError as exc:
        raise _nested(path) from exc
    except Exception as exc:  # pypdf raises many kinds on a hostile file; any of them means unreadable
        if warnings.nested_too_deeply():
            raise _unreadable(name, warnings) from exc
        raise IngestError(name, f"corrupt or unreadable PDF ({exc})", "re-export the file or get a fresh copy") from exc
    if count == 0:
        raise _unreadable(name, warnings)
    check_page_count(name, count, limits)
    pages = []
    for index in range(count):
        deadline.check(name, f"stopped at page {index + 1} of {count}")
        pages.append(_pypdf_page(path, index, reader, warnings))
    return pages


def _claimed_page_count(reader) -> int | None:
    """The /Count at the root of the page tree, read without walking the tree (None if absent or odd)."""
    try:
        return int(reader.trailer["/Root"]["/Pages"]["/Count"])
    except Exception:
        return None
