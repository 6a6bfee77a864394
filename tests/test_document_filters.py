"""Document type and date: tagged at ingest or by `docs tag`, filtered on by ask, docs list and review,
recorded in the answer's audit entry; and old registries gain the columns when opened."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, text
from typer.testing import CliRunner

from conftest import DRIVEN, DUOS, NETGEAR, SAMPLES
from ingest.registry import open_registry
from pipeline.cli import app
from test_audit_support import pg_schema_url

runner = CliRunner()


def invoke(*args: str, code: int = 0):
    result = runner.invoke(app, list(args))
    assert result.exit_code == code, result.output
    return result


@pytest.fixture
def tagged(samples_copy: Path) -> Path:
    """The three sample contracts (ingested once per session): two tagged, one left untagged."""
    invoke("docs", "tag", NETGEAR, "-c", "samples", "--type", "distribution", "--date", "2003-04-21")
    invoke("docs", "tag", DRIVEN, "-c", "samples", "--type", "consulting", "--date", "2020-05-22")
    return samples_copy


def listed(*filters: str) -> dict[str, dict]:
    out = invoke("docs", "list", "-c", "samples", "--json", *filters)
    return {d["name"]: d for d in json.loads(out.stdout)["documents"]}


def test_ingest_tags_and_docs_list_filters_by_type_and_date(tagged: Path):
    docs = listed()
    assert (docs[NETGEAR]["type"], docs[NETGEAR]["date"]) == ("distribution", "2003-04-21")
    assert (docs[DRIVEN]["type"], docs[DRIVEN]["date"]) == ("consulting", "2020-05-22")
    assert (docs[DUOS]["type"], docs[DUOS]["date"]) == (None, None)
    assert set(listed("--type", "CONSULTING")) == {DRIVEN}  # types match case-insensitively
    assert set(listed("--type", "consulting", "--type", "distribution")) == {DRIVEN, NETGEAR}
    # A date bound is a promise about every document listed: the undated one never matches.
    assert set(listed("--since", "2010-01-01")) == {DRIVEN}
    assert set(listed("--until", "2020-05-22")) == {DRIVEN, NETGEAR}  # inclusive
    assert set(listed("--since", "2003-04-22", "--until", "2020-05-21")) == set()


def test_ask_draws_only_on_the_documents_the_filter_admits_and_records_it(tagged: Path):
    question = "Which state's law governs the agreement?"
    unfiltered = json.loads(invoke("ask", question, "-c", "samples", "--top-k", "10", "--json").stdout)
    assert len({e["doc_name"] for e in unfiltered["evidence"]}) > 1, "the filter must have something to remove"

    record = json.loads(invoke("ask", question, "-c", "samples", "--top-k", "10", "--type", "Distribution", "--json").stdout)
    assert record["evidence"] and {e["doc_name"] for e in record["evidence"]} == {NETGEAR}
    assert record["document_filter"] == {"types": ["Distribution"]}
    dated = json.loads(invoke("ask", question, "-c", "samples", "--since", "2010-01-01", "--json").stdout)
    assert {e["doc_name"] for e in dated["evidence"]} == {DRIVEN}
    assert dated["document_filter"] == {"since": "2010-01-01"}

    entry = json.loads(invoke("audit", "show", str(record["audit_seq"]), "--json").stdout)
    assert entry["payload"]["document_filter"] == {"types": ["Distribution"]}


def test_a_filter_that_admits_nothing_or_a_bad_date_is_one_clear_line(tagged: Path):
    none = invoke("ask", "Who are the parties?", "-c", "samples", "--type", "lease", "--json", code=1)
    record = json.loads(none.stdout)
    assert record["status"] == "error" and record["evidence"] == []
    assert record["error"].startswith("No documents match --type lease in collection 'samples'")
    # ... and that refusal is on record like every other ask.
    assert json.loads(invoke("audit", "show", str(record["audit_seq"]), "--json").stdout)["payload"]["status"] == "error"

    bad = invoke("ask", "Who are the parties?", "-c", "samples", "--since", "2020-13-01", code=2)
    assert "--since 2020-13-01: expected a date as YYYY-MM-DD" in bad.output
    assert len(bad.output.strip().splitlines()) == 1
    bad_tag = invoke("ingest", str(SAMPLES / DUOS), "-c", "samples", "--date", "21/04/2009", code=2)
    assert "--date 21/04/2009" in bad_tag.output


def test_ingest_tags_a_new_document_in_the_same_commit(home: Path):
    out = json.loads(invoke("ingest", str(SAMPLES / DRIVEN), "-c", "fresh", "--type", "consulting", "--date", "2020-05-22", "--json").stdout)
    assert out["summary"]["added"] == 1
    docs = json.loads(invoke("docs", "list", "-c", "fresh", "--json").stdout)["documents"]
    assert [(d["name"], d["type"], d["date"]) for d in docs] == [(DRIVEN, "consulting", "2020-05-22")]


def test_docs_tag_and_re_ingesting_with_tags_change_what_filters_see(tagged: Path):
    assert json.loads(invoke("docs", "tag", DUOS, "-c", "samples", "--type", "alliance", "--json").stdout)["tagged"] == {
        "id": listed()[DUOS]["id"], "name": DUOS, "type": "alliance", "date": None,
    }
    assert set(listed("--type", "alliance")) == {DUOS}
    # The same bytes again are not re-ingested, but a --date given with them is recorded.
    again = json.loads(invoke("ingest", str(SAMPLES / DUOS), "-c", "samples", "--date", "2009-04-21", "--json").stdout)
    assert again["summary"]["unchanged"] == 1
    assert (listed()[DUOS]["type"], listed()[DUOS]["date"]) == ("alliance", "2009-04-21")
    assert set(listed("--since", "2009-01-01", "--until", "2009-12-31")) == {DUOS}
    invoke("docs", "tag", DUOS, "-c", "samples", code=2)  # nothing to set


def test_review_runs_over_the_documents_the_filter_admits(tagged: Path):
    out = json.loads(invoke("review", "run", "commercial-contract", "-c", "samples", "--type", "consulting", "--json").stdout)
    shown = json.loads(invoke("review", "show", out["review_id"], "--json").stdout)
    assert [d["name"] for d in shown["documents"]] == [DRIVEN]
    missing = invoke("review", "run", "commercial-contract", "-c", "samples", "--type", "lease", code=2)
    assert "match the --type/--since/--until filter" in missing.output


def _drop_tag_columns(conn) -> None:
    """Make the registry one from before the tags (and so before migrations: no version table)."""
    for statement in (
        "DROP INDEX ix_documents_doc_type", "DROP INDEX ix_documents_doc_date",
        "ALTER TABLE documents DROP COLUMN doc_type", "ALTER TABLE documents DROP COLUMN doc_date",
        "DROP TABLE ingest_alembic_version",
    ):
        conn.execute(text(statement))


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_a_registry_from_before_the_tags_gains_them_and_keeps_its_rows(backend: str, tmp_path: Path):
    urls = pg_schema_url() if backend == "postgresql" else iter([f"sqlite:///{tmp_path / 'registry.db'}"])
    url = next(urls)
    try:
        open_registry(url)
        engine = create_engine(url)
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO documents (collection, source_key, name, created_at) "
                              "VALUES ('old', '/x.pdf', 'x.pdf', CURRENT_TIMESTAMP)"))
            _drop_tag_columns(conn)
        assert "doc_type" not in {c["name"] for c in inspect(engine).get_columns("documents")}

        open_registry(url, auto_upgrade=True)  # what every Docket command does first (PostgreSQL: when allowed)
        columns = {c["name"] for c in inspect(engine).get_columns("documents")}
        assert {"doc_type", "doc_date"} <= columns
        assert {i["name"] for i in inspect(engine).get_indexes("documents")} >= {"ix_documents_doc_type", "ix_documents_doc_date"}
        with engine.connect() as conn:
            assert conn.execute(text("SELECT name, doc_type FROM documents")).all() == [("x.pdf", None)]
        open_registry(url)  # idempotent: at head now, nothing to add
        assert {c["name"] for c in inspect(engine).get_columns("documents")} == columns
        engine.dispose()
    finally:
        next(urls, None)  # lets the PostgreSQL schema be dropped
