"""Reading pages from pixels with real Tesseract: the shipped scanned sample, rotation, multi-page
TIFF, real scans from ../shared/eval/ocr, and bad input."""

from __future__ import annotations

import io
from pathlib import Path

import pymupdf
import pytest
from PIL import Image

from ingest.config import OcrSettings
from ingest.models import IngestError
from ingest.ocr import ocr_pdf_pages, read_image_file
from ingest.ocr.wordbag import bag_of_words_f1

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "samples" / "scans"
SCAN_PDF = SAMPLES / "consulting_agreement_scan.pdf"
SCAN_PNG = SAMPLES / "consulting_agreement_p1.png"
GOLD = [(SAMPLES / f"consulting_agreement_p{n}.txt").read_text() for n in (1, 2)]
EVAL_OCR = REPO.parent / "shared" / "eval" / "ocr"
needs_eval = pytest.mark.skipif(not EVAL_OCR.is_dir(), reason=f"{EVAL_OCR} is absent (shared eval data)")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def sample_pages():
    return ocr_pdf_pages(SCAN_PDF, [1, 2], OcrSettings(workers=2))


def test_shipped_scan_is_read_with_provenance(sample_pages):
    assert [p.number for p in sample_pages] == [1, 2]
    for page, gold in zip(sample_pages, GOLD):
        assert bag_of_words_f1(gold, page.text) >= 0.95
        assert (page.method, page.dpi, page.route) == ("tesseract", 150, "no-text-layer")
        assert page.engine_version.startswith("tesseract 5")
        assert 0.8 <= page.confidence <= 1.0


def test_word_spans_point_into_the_text_and_onto_the_page(sample_pages):
    page = sample_pages[0]
    words = page.text.split()
    assert len(page.spans) == len(words)
    assert [page.text[s.start:s.end] for s in page.spans] == words
    for span in page.spans:
        x0, y0, x1, y1 = span.box
        assert 0 <= x0 < x1 <= page.width and 0 <= y0 < y1 <= page.height
        assert 0.0 <= span.confidence <= 1.0
    # "Exhibit 10.4" heads the page in the original.
    title = next(s for s in page.spans if page.text[s.start:s.end] == "Exhibit")
    assert title.box[1] < page.height * 0.2


def test_sideways_scan_with_pdf_rotation_is_read_upright(tmp_path):
    # A scanner that stores the page sideways and sets /Rotate 90 so viewers show it upright.
    sideways = Image.open(SCAN_PNG).rotate(90, expand=True)
    buffer = io.BytesIO()
    sideways.save(buffer, format="PNG")
    with pymupdf.open() as document:
        page = document.new_page(width=792, height=612)
        page.insert_image(page.rect, stream=buffer.getvalue())
        page.set_rotation(90)
        document.save(tmp_path / "rotated.pdf")
    [page] = ocr_pdf_pages(tmp_path / "rotated.pdf", [1], OcrSettings(workers=1))
    assert bag_of_words_f1(GOLD[0], page.text) >= 0.95
    assert any("PDF page rotation 90" in note for note in page.notes)


def test_multipage_tiff_with_a_sideways_page_is_read_page_by_page(tmp_path):
    upright = Image.open(SCAN_PNG).convert("L")
    sideways = upright.rotate(-90, expand=True)  # turned a quarter clockwise
    tiff = tmp_path / "fax.tiff"
    sideways.save(tiff, save_all=True, append_images=[upright], dpi=(150, 150), compression="tiff_lzw")
    pages = read_image_file(tiff, OcrSettings(workers=2))
    assert [p.number for p in pages] == [1, 2]
    assert any("rotated 270 degrees clockwise" in note for note in pages[0].notes), pages[0].notes
    for page in pages:
        assert bag_of_words_f1(GOLD[0], page.text) >= 0.95
        assert page.dpi == 150


@needs_eval
@pytest.mark.shared_eval
def test_low_dpi_form_is_upscaled_and_beats_plain_tesseract():
    gold = (EVAL_OCR / "funsd" / "gt_text" / "82092117.txt").read_text()
    [page] = ocr_pdf_pages(EVAL_OCR / "funsd" / "scanned_pdfs" / "82092117.pdf", [1], OcrSettings(workers=1))
    # Plain `tesseract --psm 3` on this page's PNG scores 0.78 (bench/ocr_quality.py).
    assert bag_of_words_f1(gold, page.text) >= 0.85
    assert any(note.startswith("upscaled") for note in page.notes)


@needs_eval
@pytest.mark.shared_eval
def test_synthetic_contract_scan_page_reads_near_perfectly():
    folder = EVAL_OCR / "synthetic_scan_cuad"
    [page] = ocr_pdf_pages(next(folder.glob("*.pdf")), [4], OcrSettings(workers=1))
    assert bag_of_words_f1((folder / "gt_text" / "page_003.txt").read_text(), page.text) >= 0.97


# --- bad input: one line naming the file (and page), what is wrong, what to do ---------------------


def _one_line_error(call) -> str:
    with pytest.raises(IngestError) as caught:
        call()
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_image_over_the_pixel_limit_is_refused_before_decoding(tmp_path):
    big = tmp_path / "bomb.png"
    Image.new("1", (4000, 3000), 1).save(big)  # tiny file, 12 million pixels
    message = _one_line_error(lambda: read_image_file(big, OcrSettings(max_image_pixels=10_000_000)))
    assert str(big) in message and "12,000,000 pixels" in message and "ocr.max_image_pixels" in message


def test_pdf_page_rendering_over_the_pixel_limit_is_refused(tmp_path):
    with pymupdf.open() as document:
        document.new_page().insert_text((72, 72), "A page with no scan on it.")
        document.save(tmp_path / "letter.pdf")
    settings = OcrSettings(dpi=1200, max_image_pixels=50_000_000, workers=1)  # 1200 dpi letter: 134M pixels
    message = _one_line_error(lambda: ocr_pdf_pages(tmp_path / "letter.pdf", [1], settings))
    assert "letter.pdf (page 1)" in message and "lower ocr.dpi" in message


def test_truncated_image_names_file_and_page(tmp_path):
    cut = tmp_path / "cut.png"
    cut.write_bytes(SCAN_PNG.read_bytes()[:20_000])
    message = _one_line_error(lambda: read_image_file(cut, OcrSettings()))
    assert f"{cut} (page 1)" in message and "truncated or corrupt" in message


def test_file_that_is_not_an_image_is_refused(tmp_path):
    junk = tmp_path / "scan.png"
    junk.write_bytes(b"%PDF-1.4 not really" * 50)
    assert "not a readable image" in _one_line_error(lambda: read_image_file(junk, OcrSettings()))


def test_missing_tesseract_language_says_how_to_install_it():
    message = _one_line_error(lambda: read_image_file(SCAN_PNG, OcrSettings(languages="eng+chi_sim")))
    assert str(SCAN_PNG) in message and "apt-get install tesseract-ocr-chi-sim" in message


def test_page_number_outside_the_document_is_refused():
    message = _one_line_error(lambda: ocr_pdf_pages(SCAN_PDF, [3], OcrSettings(workers=1)))
    assert "no page 3; the document has 2" in message
