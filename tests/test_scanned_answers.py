"""Scans through the whole path: routing inside a mixed PDF, the page's reader and confidence in the
registry and `docs show`, and answers resting on low-confidence pages flagged in output and audit."""

from __future__ import annotations

import json
from pathlib import Path

import pymupdf
import pytest
from typer.testing import CliRunner

from pipeline.app import Docket
from pipeline.ask import AskOptions, ask
from pipeline.cli import app
from pipeline.settings import load_settings

REPO = Path(__file__).resolve().parents[1]
SCAN_PNG = REPO / "samples" / "scans" / "consulting_agreement_p1.png"
SCAN_PDF = REPO / "samples" / "scans" / "consulting_agreement_scan.pdf"

pytestmark = pytest.mark.slow


@pytest.fixture
def mixed_pdf(tmp_path: Path) -> Path:
    """Page 1 born-digital text, page 2 a scanned image with no text layer."""
    path = tmp_path / "mixed.pdf"
    doc = pymupdf.open()
    doc.new_page().insert_textbox(
        pymupdf.Rect(72, 72, 540, 770), "Cover memo. The attached consulting agreement was signed in May 2019.", fontsize=11
    )
    scan = doc.new_page(width=612, height=792)
    scan.insert_image(scan.rect, filename=str(SCAN_PNG))
    doc.save(path)
    return path


def test_a_mixed_pdf_reads_text_pages_directly_and_scanned_pages_by_ocr(home: Path, mixed_pdf: Path):
    runner = CliRunner()
    out = runner.invoke(app, ["ingest", str(mixed_pdf), "--json"])
    assert out.exit_code == 0, out.output
    summary = json.loads(out.stdout)["summary"]
    assert (summary["pages"], summary["ocr_pages"]) == (2, 1)

    shown = json.loads(runner.invoke(app, ["docs", "show", "mixed.pdf", "--pages", "--json"]).stdout)
    first, second = shown["page_details"]
    assert (first["page"], first["reader"], first["confidence"]) == (1, "pymupdf", None)
    assert second["reader"] == "tesseract" and second["route"] == "no-text-layer"
    assert 0.5 < second["confidence"] <= 1 and second["dpi"]
    assert "CONSULTING AGREEMENT" in second["text"].upper() or "Consultant" in second["text"]


def test_ocr_never_keeps_an_image_page_textless(home: Path, mixed_pdf: Path):
    out = CliRunner().invoke(app, ["ingest", str(mixed_pdf), "--ocr", "never", "--json"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout)["summary"]["ocr_pages"] == 0


@pytest.mark.parametrize("threshold, flagged", [(0.99, True), (0.05, False)])
def test_answers_resting_on_low_confidence_pages_are_flagged(home: Path, threshold: float, flagged: bool):
    docket = Docket(load_settings(grounding={"low_confidence_threshold": threshold}))
    docket.store.ingest([SCAN_PDF], "scans")
    record = ask(docket, "Who are the parties to the consulting agreement?", AskOptions(collection="scans"))
    assert record.status == "answered", record
    cited = [e for e in record.evidence if e.label in record.citations]
    assert cited and all(e.method == "tesseract" and e.confidence is not None for e in cited)
    assert bool(record.flags) is flagged
    assert all(e.low_confidence is flagged for e in cited)
    payload = docket.audit.get(record.audit_seq).payload
    assert payload["flags"] == record.flags
    if flagged:
        assert "read by OCR with confidence" in record.flags[0] and "check the page image" in record.flags[0]
