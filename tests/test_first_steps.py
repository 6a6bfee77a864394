"""What a new user tries right after `make demo` (issue 14): ask without -c, an empty question, --help,
the demo's output piped at 80 columns, and `audit list`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import fitz
import pytest
from typer.testing import CliRunner

from audit.cli import ABOUT_WIDTH, entry_about
from conftest import DRIVEN, DUOS, NETGEAR, REPO
from pipeline.cli import app

runner = CliRunner()
QUESTION = "Which state's law governs the distributor agreement?"


def invoke(*args: str, code: int = 0, env: dict[str, str] | None = None):
    result = runner.invoke(app, list(args), env=env)
    assert result.exit_code == code, result.output
    return result


def audit_size() -> int:
    from pipeline.app import Docket
    from pipeline.settings import load_settings

    return Docket(load_settings()).audit.verify().size


def one_page_pdf(path: Path, text: str) -> Path:
    document = fitz.open()
    document.new_page().insert_textbox(fitz.Rect(72, 72, 540, 720), text, fontsize=11)
    document.save(path)
    return path


def test_ask_without_a_collection_searches_every_collection_and_says_which(samples_copy: Path, tmp_path: Path):
    # The demo ingests into `samples`; a question without -c used to search only `default` and fail.
    out = invoke("ask", QUESTION).output
    assert "searched collection 'samples'" in out
    assert "State of California" in out
    record = json.loads(invoke("ask", QUESTION, "--json").stdout)
    assert record["status"] == "answered" and record["collections_searched"] == ["samples"]
    assert record["collection"] is None  # no one collection: the record says so, not 'default'

    # A second collection is searched too, and named.
    pdf = one_page_pdf(tmp_path / "side-letter.pdf", "Side letter. This letter is governed by the laws of the "
                       "State of Delaware. Either party may end it on ten days' written notice.")
    invoke("ingest", str(pdf), "-c", "other")
    out = invoke("ask", "Which state's law governs the side letter?").output
    assert "searched 2 collections: 'other', 'samples'" in out
    record = json.loads(invoke("ask", "Which state's law governs the side letter?", "--json").stdout)
    assert record["collections_searched"] == ["other", "samples"]
    assert "side-letter.pdf" in {e["doc_name"] for e in record["evidence"]}

    # -c still confines the search to one collection, and then no line is needed.
    out = invoke("ask", "Which state's law governs the side letter?", "-c", "samples").output
    assert "searched" not in out.splitlines()[0]
    record = json.loads(invoke("ask", "Which state's law governs the side letter?", "-c", "samples", "--json").stdout)
    assert record["collections_searched"] == ["samples"] and record["collection"] == "samples"
    assert "side-letter.pdf" not in {e["doc_name"] for e in record["evidence"]}
    # --doc without -c finds the document in whichever collection holds it.
    record = json.loads(invoke("ask", QUESTION, "--doc", NETGEAR, "--json").stdout)
    assert record["collections_searched"] == ["samples"] and {e["doc_name"] for e in record["evidence"]} == {NETGEAR}


def test_ask_with_nothing_ingested_says_so_for_every_collection(home: Path):
    result = invoke("ask", QUESTION, code=1)
    assert "searched every collection (none has documents yet)" in result.output
    assert "No documents are ingested;" in result.output and "None" not in result.output


@pytest.mark.parametrize("question", ["", "   ", "\n\t "])
def test_an_empty_question_is_refused_in_one_line_and_not_logged(samples_copy: Path, question: str):
    before = audit_size()
    result = invoke("ask", question, code=2)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "the question is empty" in lines[0], result.output
    assert "Traceback" not in result.output
    assert audit_size() == before  # nothing logged


@pytest.mark.parametrize("command", [["ask"], ["chat"], ["docs", "list"], ["audit", "list"], ["demo"], []])
def test_flags_show_as_flags_in_help(command: list[str]):
    out = invoke(*command, "--help", env={"COLUMNS": "200"}).output
    assert "--help" in out
    assert "<bool>" not in out, out
    if command == ["ask"]:
        assert "--json" in out and "--show-trace" in out
        assert "<str>" in out and "<int range>" in out  # options that take a value still say what value


@pytest.mark.slow
def test_the_demo_keeps_file_names_whole_at_80_columns_when_piped(samples_copy: Path):
    env = {**os.environ, "DOCKET_HOME": str(samples_copy), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "COLUMNS": "80"}
    proc = subprocess.run([sys.executable, "-m", "pipeline.cli", "demo"], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, env=env, cwd=REPO, timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    for name in (NETGEAR, DUOS, DRIVEN):
        ingest_line = next((line for line in lines if line.strip().startswith("unchanged") and name[:10] in line), "")
        assert name in ingest_line and "pages" in ingest_line, proc.stdout  # the name and its counts on one line
        assert any(name in line and "--doc" in line for line in lines), proc.stdout
    verified = next(line for line in lines if line.startswith("OK: "))
    assert len(verified.rsplit(" ", 1)[1]) == 64  # the whole Merkle root on its line
    assert any(line.startswith("Next: ") and "ask \"" in line and str(samples_copy) in line for line in lines)


def test_audit_list_says_what_each_entry_is_about(samples_copy: Path, tmp_path: Path):
    invoke("ingest", str(one_page_pdf(tmp_path / "side-letter.pdf", "Governed by the laws of Delaware.")), "-c", "other")
    invoke("ask", QUESTION, "-c", "samples")
    out = invoke("audit", "list", env={"COLUMNS": "250"}).output
    assert "about" in out
    row = next(line for line in out.splitlines() if " answer " in line)
    assert "Which state's law governs the distributor agreement?" in row, out
    row = next(line for line in out.splitlines() if " document_ingested " in line)
    assert "side-letter.pdf" in row, out


def test_entry_about_reads_each_kind_of_payload():
    assert entry_about("answer", {"question": "  Which law\ngoverns?  ", "answer": "x"}) == "Which law governs?"
    finding = {"item_id": "governing_law", "document": {"name": NETGEAR, "sha256": "ab"}, "verdict": "present"}
    assert entry_about("review_finding", finding) == f"governing_law · {NETGEAR}"[: ABOUT_WIDTH - 1] + "…"
    assert entry_about("review_finding", {**finding, "document": {"name": "nda.pdf"}}) == "governing_law · nda.pdf"
    assert entry_about("sign_off", {"item_id": "term", "document": None, "decision": "accept"}) == "term · accept"
    assert entry_about("document_ingested", {"name": "nda.pdf", "collection": "samples"}) == "nda.pdf"
    assert entry_about("rejection", {"seq": 12, "decision": "reject", "note": "wrong page"}) == "#12 · wrong page"
    assert entry_about("redaction", {"seq": 3, "reason": "personal data", "legal_basis": "GDPR 17"}) == "#3 · personal data"
    assert entry_about("review_completed", {"review_id": "r1", "cells": 4}) == "review r1"
    assert entry_about("read", {"command": "list", "filters": {}}) == "list"
    assert entry_about("answer", None) == ""  # redacted
    assert entry_about("answer", {"question": "q" * 200}).endswith("…")
    assert len(entry_about("answer", {"question": "q" * 200})) == ABOUT_WIDTH
