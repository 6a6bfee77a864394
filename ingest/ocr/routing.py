"""Page routing: does a PDF page's text layer say what the page shows, or must it be read from pixels?

Cheap checks come first; only a page whose text is invisible and lies over an image pays for a quick
OCR pass, to compare the hidden layer with what the image shows.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pymupdf
from PIL import Image

from ingest.ocr.tesseract import read_words
from ingest.ocr.wordbag import bag_of_words_f1

Route = Literal["text-layer", "no-text-layer", "unusable-text-layer"]

# Thresholds, each a fraction of the page or of its characters.
IMAGE_PAGE = 0.5  # images cover at least this much of the page: it is a scan or photo page
GARBLED_CHARACTERS = 0.10  # replacement, private-use and control characters
SYMBOL_SOUP = 0.5  # letters and digits below this share of characters: glyph codes, not text
MOJIBAKE_WORDS = 0.05  # words carrying UTF-8-read-as-Latin-1 sequences such as "Ã©" or "â€"
HEADER_FOOTER_BAND = 0.12  # top and bottom bands where running heads and page numbers sit
SMALL_TEXT_AREA = 0.10  # text blocks covering less than this of an image page
HIDDEN_LAYER_AGREEMENT = 0.6  # bag-of-words F1 between a hidden layer and a quick OCR of the page
_CHECK_DPI = 150  # quick OCR of a hidden layer's page: enough to tell agreement from junk

_MOJIBAKE = re.compile(r"[ÃÂ][\u0080-\u00bf\u0152-\u2122]|â€|â‚¬|ï»¿")


@dataclass(frozen=True)
class PageRoute:
    """Where a page goes and why, in one line a person can read in ``docket docs show``."""

    route: Route
    reason: str


_ALNUM = re.compile(r"[^\W_]")  # one letter or digit: \w is str.isalnum() or "_"


def without_whitespace(text: str) -> str:
    """The text without its whitespace (str.split splits on exactly what str.isspace calls whitespace)."""
    return "".join(text.split())


def garbled_fraction(solid: str) -> float:
    """Share of the characters of ``solid`` (text without whitespace, ``without_whitespace``) that are U+FFFD or
    control, surrogate, private-use or unassigned."""
    if not solid:
        return 0.0
    if solid.isprintable():  # none of those categories is printable: only U+FFFD can be there (fast path)
        return solid.count("\ufffd") / len(solid)
    bad = sum(1 for c in solid if c == "\ufffd" or unicodedata.category(c) in ("Co", "Cc", "Cs", "Cn"))
    return bad / len(solid)


def letter_fraction(solid: str) -> float:
    """Share of the characters of ``solid`` (text without whitespace) that are letters or digits (str.isalnum)."""
    return len(_ALNUM.findall(solid)) / len(solid) if solid else 0.0


def _mojibake_fraction(text: str) -> float:
    words = text.split()
    return sum(1 for w in words if _MOJIBAKE.search(w)) / len(words) if words else 0.0


def _image_coverage(page: pymupdf.Page) -> float:
    """Fraction of the page under images (overlaps counted once, on a coarse grid)."""
    area = page.rect.width * page.rect.height
    boxes = [pymupdf.Rect(info["bbox"]) & page.rect for info in page.get_image_info()]
    boxes = [box for box in boxes if not box.is_empty]
    if not boxes or area <= 0:
        return 0.0
    if len(boxes) == 1:
        return boxes[0].width * boxes[0].height / area
    grid = Image.new("1", (200, 200), 0)
    for box in boxes:
        grid.paste(1, (round(box.x0 / page.rect.width * 200), round(box.y0 / page.rect.height * 200),
                       round(box.x1 / page.rect.width * 200), round(box.y1 / page.rect.height * 200)))
    return int(np.count_nonzero(np.asarray(grid))) / (200 * 200)  # getdata() is deprecated (Pillow 14)


def _invisible_fraction(page: pymupdf.Page) -> float:
    """Fraction of characters drawn in render mode 3 (invisible) or fully transparent."""
    total = invisible = 0
    for span in page.get_texttrace():
        count = len(span["chars"])
        total += count
        if span["type"] == 3 or span.get("opacity", 1.0) == 0:
            invisible += count
    return invisible / total if total else 0.0


def _ocr_text(page: pymupdf.Page, languages: str) -> str:
    pixmap = page.get_pixmap(dpi=_CHECK_DPI, colorspace=pymupdf.csGRAY, alpha=False)
    image = Image.frombytes("L", (pixmap.width, pixmap.height), pixmap.samples)
    name = page.parent.name or "document"
    words = read_words(image, dpi=_CHECK_DPI, languages=languages, psm=3, path=name, page=page.number + 1)
    return " ".join(word.text for word in words)


def classify_page(page: pymupdf.Page, languages: str = "eng") -> PageRoute:
    """Route a page: ``text-layer`` (use its text), ``no-text-layer`` or ``unusable-text-layer`` (OCR it).

    ``languages`` is only used for the quick OCR that checks a hidden text layer against the image.
    """
    text = page.get_text("text")
    images = _image_coverage(page)
    if not text.strip():
        return PageRoute("no-text-layer", f"no text layer; images cover {images:.0%} of the page")

    solid = without_whitespace(text)  # both shares below count non-space characters
    garbled = garbled_fraction(solid)
    if garbled >= GARBLED_CHARACTERS:
        return PageRoute("unusable-text-layer",
                         f"garbled text layer: {garbled:.0%} of characters are unmapped or control characters")
    letters = letter_fraction(solid)
    if len(solid) >= 20 and letters < SYMBOL_SOUP:
        return PageRoute("unusable-text-layer",
                         f"garbled text layer: only {letters:.0%} of characters are letters or digits")
    mojibake = _mojibake_fraction(text)
    if mojibake >= MOJIBAKE_WORDS:
        return PageRoute("unusable-text-layer",
                         f"garbled text layer: {mojibake:.0%} of words are mis-decoded (mojibake)")

    if _invisible_fraction(page) >= 0.5:
        if images < IMAGE_PAGE:
            return PageRoute("unusable-text-layer", "the text layer is invisible and there is no page image under it")
        agreement = bag_of_words_f1(_ocr_text(page, languages), text)
        if agreement < HIDDEN_LAYER_AGREEMENT:
            return PageRoute("unusable-text-layer",
                             f"hidden OCR layer disagrees with the page image (word F1 {agreement:.2f})")
        return PageRoute("text-layer", f"hidden OCR layer agrees with the page image (word F1 {agreement:.2f})")

    if images >= IMAGE_PAGE:
        blocks = [pymupdf.Rect(b[:4]) for b in page.get_text("blocks") if str(b[4]).strip()]
        height = page.rect.height
        body = [b for b in blocks if b.y1 > height * HEADER_FOOTER_BAND and b.y0 < height * (1 - HEADER_FOOTER_BAND)]
        if not body:
            return PageRoute("unusable-text-layer",
                             f"text only in the header/footer bands; images cover {images:.0%} of the page")
        text_area = sum(b.width * b.height for b in blocks) / (page.rect.width * height)
        if text_area < SMALL_TEXT_AREA:
            return PageRoute("unusable-text-layer",
                             f"text covers {text_area:.0%} of a page that is {images:.0%} image")
    return PageRoute("text-layer", f"text layer with {len(text.split())} words")
