"""Hostile files at ingest: each fails alone with one line naming the file and what to do, exit 1, the
rest of the batch ingested, `--json` still parsable, nothing half-written. The files are made here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pymupdf
import pytest
from typer.testing import CliRunner

from conftest import NETGEAR, REPO, SAMPLES


def raw_pdf(objects: list[bytes]) -> bytes:
    """A PDF of these objects (1 0 obj is the catalog) with a correct cross-reference table."""
    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<</Size %d/Root 1 0 R>>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


PAGE = b"<</Type/Page/Parent 2 0 R/MediaBox[0 0 612 792]>>"


def page_tree_claiming(count: int) -> bytes:
    return raw_pdf([b"<</Type/Catalog/Pages 2 0 R>>", b"<</Type/Pages/Kids[3 0 R]/Count %d>>" % count, PAGE])


def deeply_nested(depth: int = 100_000) -> bytes:
    """A page tree whose object nests arrays deeper than any reader's stack."""
    nested = b"[" * depth + b"]" * depth
    return raw_pdf([b"<</Type/Catalog/Pages 2 0 R>>", b"<</Type/Pages/Kids[3 0 R]/Count 1/X " + nested + b">>", PAGE])


def blank_pdf(path: Path, pages: int) -> Path:
    doc = pymupdf.open()
    for _ in range(pages):
        doc.new_page()
    doc.save(path)
    return path


def text_pdf(path: Path | bytes, text: str) -> None:
    doc = pymupdf.open()
    doc.new_page().insert_text((72, 72), text)
    if isinstance(path, bytes):  # a name that is not UTF-8: PyMuPDF saves only to str names
        with open(path, "wb") as fh:
            fh.write(doc.tobytes())
    else:
        doc.save(path)


def invoke(*args: str):
    from pipeline.cli import app

    return CliRunner().invoke(app, list(args))


def docs(home: Path) -> list[dict]:
    listed = invoke("docs", "list", "--json")
    assert listed.exit_code == 0, listed.output
    return json.loads(listed.stdout)["documents"]


def test_a_page_tree_claiming_200000_pages_is_refused_before_any_page_is_read(home: Path, tmp_path: Path):
    huge = tmp_path / "contracts" / "x.pdf"
    huge.parent.mkdir()
    huge.write_bytes(page_tree_claiming(200_000))
    result = invoke("ingest", str(huge), str(SAMPLES / NETGEAR))
    assert result.exit_code == 1, result.output
    assert f"{huge}: 200000 pages, over ingest.max_pages=5000; raise DOCKET_INGEST__MAX_PAGES or split the file" in result.output
    assert "Traceback" not in result.output and "1 added" in result.output and "1 failed" in result.output
    assert [d["name"] for d in docs(home)] == [NETGEAR]


def test_max_pages_is_a_setting_and_caps_a_3000_page_blank_pdf(home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    blank = blank_pdf(tmp_path / "blank.pdf", 3000)
    monkeypatch.setenv("DOCKET_INGEST__MAX_PAGES", "1000")
    result = invoke("ingest", "--json", str(blank), str(SAMPLES / NETGEAR))
    assert result.exit_code == 1, result.output
    report = json.loads(result.stdout)
    by_path = {f["path"]: f for f in report["files"]}
    assert by_path[str(blank)]["outcome"] == "failed"
    assert by_path[str(blank)]["error"] == (
        f"{blank}: 3000 pages, over ingest.max_pages=1000; raise DOCKET_INGEST__MAX_PAGES or split the file"
    )
    assert by_path[str(SAMPLES / NETGEAR)]["outcome"] == "added"
    shown = invoke("config", "show", "--json")
    assert json.loads(shown.stdout)["ingest"] == {"max_pages": 1000, "document_timeout_s": 600.0}


def test_a_document_over_its_time_limit_fails_alone_and_leaves_nothing(home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """3000 blank pages all go to OCR (no text layer): minutes of work, stopped by the deadline between
    pages. The small file after it is ingested within the same limit (loading the encoder is not counted)."""
    blank = blank_pdf(tmp_path / "blank.pdf", 3000)
    small = tmp_path / "memo.pdf"
    text_pdf(small, "Payment is due within thirty days of the invoice date.")
    monkeypatch.setenv("DOCKET_INGEST__DOCUMENT_TIMEOUT_S", "8")
    monkeypatch.setenv("DOCKET_OCR__WORKERS", "1")
    result = invoke("ingest", str(blank), str(small))
    assert result.exit_code == 1, result.output
    line = next(line for line in result.output.splitlines() if str(blank) in line)
    assert line.startswith(f"failed: {blank}: not done after ingest.document_timeout_s=8 s (stopped ")
    assert line.endswith("nothing of it was stored; raise DOCKET_INGEST__DOCUMENT_TIMEOUT_S or split the file")
    assert [d["name"] for d in docs(home)] == ["memo.pdf"]  # the blank one left no version, page or chunk
    from ingest.registry import ChunkRow, DocumentVersion, PageRow, open_registry
    from sqlalchemy import func, select

    with open_registry(f"sqlite:///{home / 'registry.db'}")() as session:
        assert session.execute(select(func.count(DocumentVersion.id))).scalar_one() == 1
        assert session.execute(select(func.count(PageRow.id))).scalar_one() == 1
        assert session.execute(select(func.count(ChunkRow.id))).scalar_one() >= 1


def test_deeply_nested_objects_are_named_as_the_problem(home: Path, tmp_path: Path):
    nested = tmp_path / "nested.pdf"
    nested.write_bytes(deeply_nested())
    result = invoke("ingest", "--json", str(nested))
    assert result.exit_code == 1
    [entry] = json.loads(result.stdout)["files"]
    assert entry["error"].startswith(f"{nested}: the PDF's objects are nested too deeply to be read (MuPDF: ")
    assert "no pages" not in entry["error"] and "\n" not in entry["error"]


def test_names_with_terminal_escapes_and_non_utf8_bytes_are_escaped_everywhere(home: Path, tmp_path: Path):
    folder = tmp_path / "in"
    folder.mkdir()
    text_pdf(folder / "a\x1b[31mred.pdf", "The red contract is governed by the laws of Delaware.")
    text_pdf(os.fsencode(folder) + b"/\xff\xfeterms.pdf", "The other contract is governed by the laws of Texas.")
    (folder / "b\x1b]0;owned\x07.pdf").write_bytes(page_tree_claiming(200_000))  # fails: its line is escaped too
    result = invoke("ingest", str(folder))
    assert result.exit_code == 1, result.output
    assert "\x1b" not in result.output and "\x07" not in result.output
    assert f"failed: {folder}/b\\x1b]0;owned\\x07.pdf: 200000 pages" in result.output
    assert "2 added" in result.output
    names = sorted(d["name"] for d in docs(home))
    assert names == ["\\xff\\xfeterms.pdf", "a\\x1b[31mred.pdf"]
    listed = invoke("docs", "list")
    assert "\x1b" not in listed.output and "a\\x1b[3" in listed.output
    asked = invoke("ask", "Which state's law governs the red contract?")
    assert asked.exit_code == 0, asked.output
    assert "\x1b" not in asked.output and "a\\x1b[31mred.pdf" in asked.output


@pytest.mark.slow  # a subprocess that loads the encoder
def test_json_stays_parsable_through_a_hostile_batch(tmp_path: Path):
    """Through the real process: MuPDF prints its errors to the process's stdout unless told not to,
    which a CliRunner would not see. Every hostile file fails alone and stdout is one JSON document."""
    folder = tmp_path / "batch"
    folder.mkdir()
    (folder / "huge.pdf").write_bytes(page_tree_claiming(200_000))
    (folder / "nested.pdf").write_bytes(deeply_nested())
    # A page object nested too deeply: MuPDF complains (on stdout by default) but finds the page.
    (folder / "odd.pdf").write_bytes(raw_pdf([
        b"<</Type/Catalog/Pages 2 0 R>>", b"<</Type/Pages/Kids[3 0 R]/Count 1>>",
        b"<</Type/Page/Parent 2 0 R/MediaBox[0 0 612 792]/X " + b"<<" * 50_000 + b"/A 1" + b">>" * 50_000 + b">>",
    ]))
    text_pdf(os.fsencode(folder) + b"/\xff.pdf", "Notices go to the registered office.")
    (folder / NETGEAR).write_bytes((SAMPLES / NETGEAR).read_bytes())
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKET_")} | {"HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "--home", str(tmp_path / "home"), "ingest", "--json", "--ocr", "never", str(folder)],
        capture_output=True, env=env, cwd=REPO, timeout=600,
    )
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert b"Traceback" not in proc.stderr and b"MuPDF error" not in proc.stdout + proc.stderr
    report = json.loads(proc.stdout.decode("utf-8"))  # the whole of stdout is the report
    outcome = {Path(f["path"]).name: f["outcome"] for f in report["files"]}
    assert outcome == {"huge.pdf": "failed", "nested.pdf": "failed", "odd.pdf": "added", "\\xff.pdf": "added", NETGEAR: "added"}
    odd = next(f for f in report["files"] if f["path"].endswith("odd.pdf"))
    assert any(w.startswith("MuPDF: ") for w in odd["warnings"])  # kept for the record, not printed
