"""Page routing on PDFs built here with PyMuPDF: a text page, an image-only page, hidden OCR layers
that agree or disagree with the image, garbled layers, and image pages with only a footer."""

from __future__ import annotations

import pymupdf
from hypothesis import given
from hypothesis import strategies as st
import pytest

from ingest.ocr import classify_page

PARAGRAPH = (
    "The Distributor shall pay all invoices within thirty days of receipt. Either party may terminate "
    "this Agreement upon ninety days written notice to the other party. This Agreement is governed by "
    "the laws of the State of California."
)


def _text_page_png() -> bytes:
    """A page of real words, rendered to pixels: the 'scan' the image pages carry."""
    with pymupdf.open() as document:
        page = document.new_page()
        page.insert_textbox(pymupdf.Rect(72, 72, 540, 700), PARAGRAPH * 3, fontsize=13)
        return page.get_pixmap(dpi=150).tobytes("png")


@pytest.fixture(scope="module")
def mixed_pdf() -> pymupdf.Document:
    image = _text_page_png()
    document = pymupdf.open()
    text_page = document.new_page()
    text_page.insert_textbox(pymupdf.Rect(72, 72, 540, 700), PARAGRAPH, fontsize=11)

    document.new_page().insert_image(pymupdf.Rect(0, 0, 612, 792), stream=image)

    junk = document.new_page()
    junk.insert_image(junk.rect, stream=image)
    junk.insert_textbox(pymupdf.Rect(72, 72, 540, 700), "lorem qqq zzkx vvbn 0x00 " * 40, fontsize=11, render_mode=3)

    faithful = document.new_page()
    faithful.insert_image(faithful.rect, stream=image)
    faithful.insert_textbox(pymupdf.Rect(72, 72, 540, 700), PARAGRAPH * 3, fontsize=13, render_mode=3)

    mojibake = document.new_page()
    mojibake.insert_textbox(pymupdf.Rect(72, 72, 540, 700), PARAGRAPH.encode("utf-8").decode("latin-1")
                            .replace("e", "Ã©").replace("a", "â€œ"), fontsize=11)

    symbols = document.new_page()
    symbols.insert_textbox(pymupdf.Rect(72, 72, 540, 700), "!\"#$%&'()*+,-./:;<=>?@[]^_`{|}~ " * 20, fontsize=11)

    footer_only = document.new_page()
    footer_only.insert_image(footer_only.rect, stream=image)
    footer_only.insert_text((72, 770), "Page 3 of 12   CONFIDENTIAL", fontsize=9)

    stamp = document.new_page()
    stamp.insert_image(stamp.rect, stream=image)
    stamp.insert_text((300, 400), "RECEIVED", fontsize=10)
    yield document
    document.close()


@pytest.mark.parametrize(
    ("index", "route", "reason_has"),
    [
        (0, "text-layer", "text layer with"),
        (1, "no-text-layer", "no text layer"),
        (2, "unusable-text-layer", "hidden OCR layer disagrees"),
        (3, "text-layer", "hidden OCR layer agrees"),
        (4, "unusable-text-layer", "mojibake"),
        (5, "unusable-text-layer", "letters or digits"),
        (6, "unusable-text-layer", "header/footer"),
        (7, "unusable-text-layer", "text covers"),
    ],
)
def test_pages_are_routed_by_what_their_text_layer_is_worth(mixed_pdf, index, route, reason_has):
    decision = classify_page(mixed_pdf[index])
    assert (decision.route, reason_has in decision.reason) == (route, True), decision.reason
    assert "\n" not in decision.reason


def test_born_digital_page_with_a_figure_keeps_its_text_layer():
    with pymupdf.open() as document:
        page = document.new_page()
        page.insert_textbox(pymupdf.Rect(72, 72, 540, 400), PARAGRAPH * 4, fontsize=11)
        page.insert_image(pymupdf.Rect(72, 420, 540, 720), stream=_text_page_png())
        assert classify_page(page).route == "text-layer"


_CHARACTERS = st.characters(blacklist_categories=(), codec=None)


@given(st.text(alphabet=st.one_of(_CHARACTERS, st.sampled_from(" \n\t\u00a0\ufffd\x07\ue000\ud7ff\u0378\u00ad")), max_size=80))
def test_the_fast_character_counts_equal_a_per_character_count(text):
    """The garbled and letter shares take C-speed paths (routing runs on every page); they must count
    exactly what a plain per-character loop over the non-space characters counts."""
    import unicodedata

    from ingest.ocr.routing import garbled_fraction, letter_fraction, without_whitespace

    solid = [c for c in text if not c.isspace()]
    bad = sum(1 for c in solid if c == "\ufffd" or unicodedata.category(c) in ("Co", "Cc", "Cs", "Cn"))
    letters = sum(1 for c in solid if c.isalnum())
    assert garbled_fraction(without_whitespace(text)) == (bad / len(solid) if solid else 0.0)
    assert letter_fraction(without_whitespace(text)) == (letters / len(solid) if solid else 0.0)
