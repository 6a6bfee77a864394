"""Page images ready for a reader: PDF pages rendered with PyMuPDF or image files decoded with Pillow,
checked against the pixel limit, turned upright (PDF /Rotate and Tesseract OSD) and deskewed."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import pymupdf
from PIL import Image, ImageSequence, UnidentifiedImageError

from ingest.models import IngestError
from ingest.ocr import preprocess
from ingest.ocr.tesseract import detect_rotation

# An image file that states no resolution is taken to be a page of letter/A4 width (8.5 inches);
# right for scanned documents (FUNSD's 754 px pages are ~89 dpi scans), clamped for anything else.
_ASSUMED_PAGE_WIDTH_IN = 8.5
_ASSUMED_DPI_RANGE = (50, 600)


@dataclass
class PageImage:
    """An upright, deskewed grayscale page and how to map its pixels back to page points."""

    number: int  # 1-based
    image: Image.Image
    dpi: int  # pixels per inch of ``image`` (before any upscaling for Tesseract)
    width_pt: float  # the page as displayed, in points
    height_pt: float
    # Applied transforms, undone by ``to_page_box``: counter-clockwise degrees, in order.
    rotations: list[tuple[float, tuple[int, int], tuple[int, int]]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_page_box(self, box: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
        """A box in ``image`` pixels as a box in page points (origin top-left, the page as displayed)."""
        corners = [(box[0], box[1]), (box[2], box[1]), (box[0], box[3]), (box[2], box[3])]
        for angle, old_size, new_size in reversed(self.rotations):
            corners = [_unrotate(x, y, angle, old_size, new_size) for x, y in corners]
        scale = 72.0 / self.dpi
        xs, ys = [x * scale for x, _ in corners], [y * scale for _, y in corners]
        return (
            round(max(0.0, min(xs)), 2), round(max(0.0, min(ys)), 2),
            round(min(self.width_pt, max(xs)), 2), round(min(self.height_pt, max(ys)), 2),
        )


def _unrotate(x: float, y: float, angle: float, old: tuple[int, int], new: tuple[int, int]):
    """Undo PIL's ``rotate(angle, expand=True)`` (counter-clockwise on screen, y pointing down)."""
    a = math.radians(angle)
    dx, dy = x - new[0] / 2, y - new[1] / 2
    return old[0] / 2 + dx * math.cos(a) - dy * math.sin(a), old[1] / 2 + dx * math.sin(a) + dy * math.cos(a)


def _rotate(page: PageImage, angle: float) -> None:
    old = page.image.size
    page.image = page.image.rotate(angle, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=255)
    page.rotations.append((angle, old, page.image.size))


def make_upright(page: PageImage, path: str) -> PageImage:
    """Fix quarter-turn orientation with Tesseract OSD, then small skew by the row profile."""
    # OSD misreads small or low-DPI letters (it turned upright pages upside down when shown them
    # at ~100 dpi), so it sees the page at the resolution Tesseract will read it.
    factor = preprocess.upscale_factor(page.dpi)
    clockwise = detect_rotation(
        preprocess.upscale(page.image, factor), dpi=round(page.dpi * factor), path=path, page=page.number
    )
    if clockwise:
        _rotate(page, -clockwise)
        page.notes.append(f"rotated {clockwise} degrees clockwise (Tesseract OSD)")
    angle = preprocess.skew_angle(page.image)
    if abs(angle) >= preprocess.MIN_SKEW_DEGREES:
        _rotate(page, angle)
        page.notes.append(f"deskewed by {angle:+.2f} degrees")
    return page


def _native_dpi(page: pymupdf.Page) -> float | None:
    """Resolution of the largest image on the page, in pixels per inch as placed on the page."""
    best: tuple[float, float] | None = None  # (area in points², dpi)
    for info in page.get_image_info():
        box = pymupdf.Rect(info["bbox"]) & page.rect
        if box.is_empty or info.get("width", 0) <= 0:
            continue
        dpi = math.sqrt(info["width"] * info["height"] / (box.width * box.height)) * 72.0
        if best is None or box.width * box.height > best[0]:
            best = (box.width * box.height, dpi)
    return best[1] if best else None


def render_pdf_page(document: pymupdf.Document, number: int, dpi: int, max_pixels: int, path: str) -> PageImage:
    """Render 1-based page ``number`` at ``dpi`` (or at the scan's own resolution when that is lower:
    rendering a 100 dpi scan at 300 dpi only invents pixels; upscaling is preprocess's job)."""
    if not 1 <= number <= document.page_count:
        raise IngestError(path, f"no page {number}; the document has {document.page_count}")
    page = document[number - 1]
    native = _native_dpi(page)
    used = max(72, min(dpi, round(native))) if native else dpi
    pixels = (page.rect.width * used / 72.0) * (page.rect.height * used / 72.0)
    if pixels > max_pixels:
        raise IngestError(
            path, f"page renders to {pixels:,.0f} pixels at {used} dpi, over the limit of {max_pixels:,}",
            "lower ocr.dpi or raise ocr.max_image_pixels", page=number,
        )
    pixmap = page.get_pixmap(dpi=used, colorspace=pymupdf.csGRAY, alpha=False)
    image = Image.frombytes("L", (pixmap.width, pixmap.height), pixmap.samples)
    notes = [f"rendered at {used} dpi (scan resolution {native:.0f} dpi)"] if native and used < dpi else []
    if page.rotation:
        notes.append(f"PDF page rotation {page.rotation} degrees applied")
    return PageImage(number, image, used, page.rect.width, page.rect.height, notes=notes)


def load_image_frames(path: Path, max_pixels: int) -> list[PageImage]:
    """Every frame of a PNG/JPEG/TIFF as a page, checked against the pixel limit before decoding."""
    name = str(path)
    try:
        with warnings.catch_warnings():
            # Pillow's own bomb check warns or raises at its global limit; ours is the setting.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            source = Image.open(path)
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise IngestError(name, _open_failure(exc), "check the file is a PNG, JPEG or TIFF image") from exc
    except OSError as exc:
        raise IngestError(name, f"cannot read the image: {exc}") from exc
    pages = []
    with source:
        for index, frame in enumerate(ImageSequence.Iterator(source), start=1):
            width, height = frame.size
            if width * height > max_pixels:
                raise IngestError(
                    name, f"image is {width}x{height} = {width * height:,} pixels, over the limit of {max_pixels:,}",
                    "downscale the image or raise ocr.max_image_pixels", page=index,
                )
            try:
                frame.load()
                gray = preprocess.to_grayscale(frame)
            except (OSError, SyntaxError, ValueError) as exc:
                raise IngestError(name, f"the image data is truncated or corrupt ({exc})",
                                  "re-export or re-scan the file", page=index) from exc
            stated = frame.info.get("dpi")
            if stated and stated[0] >= _ASSUMED_DPI_RANGE[0]:
                dpi, notes = round(stated[0]), []
            else:
                dpi = round(min(max(min(width, height) / _ASSUMED_PAGE_WIDTH_IN, _ASSUMED_DPI_RANGE[0]),
                                _ASSUMED_DPI_RANGE[1]))
                notes = [f"no resolution stated; assumed {dpi} dpi (a page {_ASSUMED_PAGE_WIDTH_IN} inches wide)"]
            pages.append(PageImage(index, gray, dpi, width * 72.0 / dpi, height * 72.0 / dpi, notes=notes))
    return pages


def _open_failure(exc: Exception) -> str:
    if isinstance(exc, UnidentifiedImageError):
        return "not a readable image (unknown format or corrupt header)"
    return f"image is too large to decode safely ({exc})"
