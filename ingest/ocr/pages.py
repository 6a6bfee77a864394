"""Read PDF pages and image files from pixels, pages in parallel across processes."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pymupdf

from ingest.config import OcrSettings
from ingest.models import IngestError, PageText
from ingest.ocr.page_image import PageImage, load_image_frames, make_upright, render_pdf_page
from ingest.ocr.readers import PageReader, TesseractReader
from ingest.ocr.tesseract import check_languages
from ingest.ocr.vision import MagistralVisionReader, MistralOcrReader, VisionReaderError

READERS: dict[str, Callable[[], PageReader]] = {
    "tesseract": TesseractReader,
    "magistral-vision": MagistralVisionReader,
    "mistral-ocr": MistralOcrReader,
}
# How pages are routed to OCR when the caller says nothing: they have no text layer.
DEFAULT_ROUTE = "no-text-layer"


def read_page(page: PageImage, settings: OcrSettings, path: str, route: str) -> PageText:
    """Turn the page upright and read it with the configured reader; a model failure falls back to
    Tesseract, and the page says so in its notes."""
    page = make_upright(page, path)
    reader = READERS[settings.reader]()
    notes = list(page.notes)
    try:
        reading = reader.read(page, settings, path)
        method = reader.name
    except VisionReaderError as exc:
        notes.append(f"{reader.name} failed ({exc}); fell back to tesseract")
        reading = TesseractReader().read(page, settings, path)
        method = "tesseract"
    return PageText(
        number=page.number, text=reading.text, method=method, engine_version=reading.engine_version,
        spans=reading.spans, width=page.width_pt, height=page.height_pt, dpi=page.dpi,
        confidence=reading.confidence, route=route, notes=notes + reading.notes,
    )


def _read_pdf_page(pdf_path: str, number: int, settings: OcrSettings, route: str) -> PageText:
    with pymupdf.open(pdf_path) as document:
        page = render_pdf_page(document, number, settings.dpi, settings.max_image_pixels, pdf_path)
    return read_page(page, settings, pdf_path, route)


def _in_parallel(
    function: Callable[..., PageText], jobs: Sequence[tuple], workers: int,
    between: Callable[[int], None] | None = None,
) -> list[PageText]:
    """``function`` over ``jobs``; ``between(pages_done)`` is called before each page is taken, and an
    exception from it (a deadline passed) cancels the pages not yet started."""
    between = between or (lambda _done: None)
    if workers <= 1 or len(jobs) <= 1:
        results = []
        for job in jobs:
            between(len(results))
            results.append(function(*job))
        return results
    # forkserver, not fork: the parent may hold threads (torch, HTTP clients) that fork would copy
    # in an unknown state.
    context = multiprocessing.get_context("forkserver")
    with ProcessPoolExecutor(max_workers=min(workers, len(jobs)), mp_context=context) as pool:
        results = []
        try:
            for page in pool.map(function, *zip(*jobs)):
                results.append(page)
                between(len(results))
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)  # the pages under way finish, the rest never start
            raise
        return results


def _check_reader_ready(settings: OcrSettings, path: str) -> None:
    # Tesseract is the reader or the fallback of every reader, so its languages must be there.
    check_languages(settings.languages, path)


def ocr_pdf_pages(
    pdf_path: Path, page_numbers: list[int], settings: OcrSettings, routes: dict[int, str] | None = None,
    between: Callable[[int], None] | None = None,
) -> list[PageText]:
    """Read the given 1-based pages of a PDF from pixels, in the order given.

    ``routes`` (page number -> route from classify_page) is recorded on each PageText. ``between``
    (pages done so far) is called as pages finish; what it raises stops the reading (a deadline).
    """
    path = str(pdf_path)
    _check_reader_ready(settings, path)
    try:
        with pymupdf.open(path) as document:
            count = document.page_count
    except (pymupdf.FileDataError, RuntimeError) as exc:
        raise IngestError(path, f"not a readable PDF ({exc})") from exc
    for number in page_numbers:
        if not 1 <= number <= count:
            raise IngestError(path, f"no page {number}; the document has {count}", page=number)
    routes = routes or {}
    jobs = [(path, number, settings, routes.get(number, DEFAULT_ROUTE)) for number in page_numbers]
    return _in_parallel(_read_pdf_page, jobs, settings.workers, between)


def read_image_file(path: Path, settings: OcrSettings) -> list[PageText]:
    """Read a PNG, JPEG or TIFF (every frame of a multi-page TIFF) as pages 1..n.

    Every frame is decoded and checked before any is read, so a bad frame fails the whole file.
    """
    name = str(path)
    _check_reader_ready(settings, name)
    frames = load_image_frames(path, settings.max_image_pixels)
    jobs = [(frame, settings, name, DEFAULT_ROUTE) for frame in frames]
    return _in_parallel(read_page, jobs, settings.workers)
