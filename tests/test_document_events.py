"""What entered and left the corpus is in the audit log: ingest, a new version and `docs remove` are
events with the document's SHA-256 as subject, found by `audit list --document`, and verify stays OK."""

from __future__ import annotations

import json
from pathlib import Path

import pymupdf
import pytest
from typer.testing import CliRunner

from test_audit_support import pg_schema_url


def invoke(*args: str):
    from pipeline.cli import app

    return CliRunner().invoke(app, list(args))


def write_pdf(path: Path, *pages: str) -> str:
    doc = pymupdf.open()
    for text in pages:
        doc.new_page().insert_text((72, 72), text)
    doc.save(path)
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def listed(document: str) -> list[dict]:
    result = invoke("audit", "list", "--document", document, "--json")
    assert result.exit_code == 0, result.output
    return [e for e in json.loads(result.stdout) if e["event_type"] != "read"]


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def audit_backend(request: pytest.FixtureRequest, home: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "sqlite":
        yield "sqlite"
        return
    urls = pg_schema_url()
    monkeypatch.setenv("DOCKET_AUDIT_URL", next(urls))
    yield "postgresql"
    next(urls, None)  # drops the schema


def test_ingest_new_version_and_remove_are_three_events_with_the_right_subjects(audit_backend: str, home: Path, tmp_path: Path):
    path = tmp_path / "nda.pdf"
    first = write_pdf(path, "The receiving party keeps the information confidential for five years.")
    added = invoke("ingest", "--type", "NDA", "--date", "2021-03-01", str(path))
    assert added.exit_code == 0, added.output
    again = invoke("ingest", str(path))  # the same bytes: nothing entered, no event
    assert again.exit_code == 0 and "1 unchanged" in again.output
    second = write_pdf(path, "The receiving party keeps the information confidential for three years.")
    changed = invoke("ingest", str(path))
    assert changed.exit_code == 0 and "1 new versions" in changed.output, changed.output
    removed = invoke("docs", "remove", "nda.pdf")
    assert removed.exit_code == 0, removed.output

    about_first, about_second = listed(first), listed(second)
    assert [e["event_type"] for e in about_first] == ["document_ingested", "document_version"]
    assert [e["event_type"] for e in about_second] == ["document_version", "document_removed"]
    ingested, version = about_first
    _, gone = about_second
    assert ingested["subjects"] == [first]
    assert sorted(version["subjects"]) == sorted([first, second])  # the one that entered and the one it replaced
    assert gone["subjects"] == [second]
    everything = [e for e in json.loads(invoke("audit", "list", "--json").stdout) if e["event_type"].startswith("document_")]
    assert len(everything) == 3  # the unchanged re-ingest is no event

    def payload(entry: dict) -> dict:
        shown = invoke("audit", "show", str(entry["seq"]), "--json")
        assert shown.exit_code == 0, shown.output
        return json.loads(shown.stdout)["payload"]

    p = payload(ingested)
    assert {k: p[k] for k in ("document_sha256", "name", "collection", "version", "pages", "type", "date")} == {
        "document_sha256": first, "name": "nda.pdf", "collection": "default", "version": 1, "pages": 1,
        "type": "NDA", "date": "2021-03-01",
    }
    assert p["actor"] == ingested["actor"] and p["actor"]  # who, as the CLI determines it for ask too
    p = payload(version)
    assert (p["document_sha256"], p["version"], p["replaced_live_sha256"]) == (second, 2, first)
    p = payload(gone)
    assert (p["document_sha256"], p["name"], p["version"], p["was_live"]) == (second, "nda.pdf", 2, True)
    assert len({ingested["request_id"], version["request_id"], gone["request_id"]}) == 3

    verified = invoke("audit", "verify")
    assert verified.exit_code == 0, verified.output


def test_a_batch_records_each_document_it_committed_and_none_it_failed(home: Path, tmp_path: Path):
    folder = tmp_path / "batch"
    folder.mkdir()
    shas = [write_pdf(folder / f"memo{i}.pdf", f"Memo {i}: the notice period is {i + 1} months.") for i in range(2)]
    (folder / "broken.pdf").write_bytes(b"%PDF-1.7\n" + bytes(range(256)) * 8)
    result = invoke("ingest", str(folder))
    assert result.exit_code == 1 and "2 added" in result.output, result.output
    events = [e for e in json.loads(invoke("audit", "list", "--json").stdout) if e["event_type"] == "document_ingested"]
    assert sorted(s for e in events for s in e["subjects"]) == sorted(shas)
    assert len({e["request_id"] for e in events}) == 1  # one command, one request id


def test_removing_a_removed_document_says_nothing_left(home: Path, tmp_path: Path):
    path = tmp_path / "lease.pdf"
    sha = write_pdf(path, "The lease runs for ten years from the commencement date.")
    assert invoke("ingest", str(path)).exit_code == 0
    assert invoke("docs", "remove", "lease.pdf").exit_code == 0
    assert invoke("docs", "remove", "lease.pdf").exit_code == 0
    removals = [e for e in listed(sha) if e["event_type"] == "document_removed"]
    assert len(removals) == 2
    shown = [json.loads(invoke("audit", "show", str(e["seq"]), "--json").stdout)["payload"]["was_live"] for e in removals]
    assert shown == [True, False]
