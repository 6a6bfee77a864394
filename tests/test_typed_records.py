"""The typed parts of the answer and finding payloads (issue 14): GroundingRecord, RetrievalInfo, ReviewFinding.

Each names every key Docket writes today (a key it does not type would be an extra: the tests fail on
one), and reading a payload and writing it back gives the payload again, for payloads written now and
for the 3aea598 fixture's, written before these types existed (its grounding has no checks or label).
"""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from conftest import NETGEAR, SAMPLES
from pipeline.grounding import check_grounding
from pipeline.grounding_record import GroundingRecord
from pipeline.payload_model import PayloadModel
from pipeline.reasoning import Evidence
from pipeline.records import AnswerRecord, floats_to_strings
from pipeline.retrieval_info import DocumentFilterInfo, RetrievalInfo
from pipeline.review.findings import ReviewFinding
from pipeline.settings import RetrievalSettings

FIXTURE_LOG = Path(__file__).parent / "fixtures" / "workspace_3aea598" / "audit.db"


def _fixture_payloads(event_type: str) -> list[dict]:
    # immutable: read the committed file as it is, leaving no -wal/-shm beside it
    with closing(sqlite3.connect(f"file:{FIXTURE_LOG}?immutable=1", uri=True)) as conn:
        rows = conn.execute(
            "SELECT p.payload FROM audit_payloads p JOIN audit_entries e ON e.seq = p.seq WHERE e.event_type = ?",
            (event_type,),
        ).fetchall()
    assert rows, f"{FIXTURE_LOG}: no {event_type} entry"
    return [json.loads(payload) for (payload,) in rows]


def _extras(model: PayloadModel, path: str = "$") -> list[str]:
    """Keys anywhere in ``model`` that its type does not name (kept, but not typed)."""
    found = [f"{path}.{key}" for key in model.model_extra or {}]
    for name in model.model_fields_set:
        value = getattr(model, name)
        for index, item in enumerate(value if isinstance(value, list) else [value]):
            if isinstance(item, PayloadModel):
                found += _extras(item, f"{path}.{name}" + (f"[{index}]" if isinstance(value, list) else ""))
    return found


def _sources() -> list[Evidence]:
    text = "Either party may terminate this Agreement on thirty (30) days written notice. The fee is $1,250,000."
    return [Evidence("S1", 1, 7, "sha-a", "supply.pdf", 3, 0, len(text), text, 0.9, "tesseract", confidence=0.41)]


def test_the_grounding_record_types_every_key_of_the_report_and_writes_it_back() -> None:
    report = check_grounding(
        'The Agreement ends on "thirty (30) days written notice" [S1]. The fee is $1.25 million [S1]. '
        "The fee is $2 million [S1].",
        _sources(), low_confidence_threshold=0.6, question="What is the termination notice period?",
    )
    record = report.to_record()
    written = json.loads(json.dumps(report.to_dict()))
    assert record.to_payload() == written
    assert set(written) == set(GroundingRecord.model_fields)
    assert _extras(record) == []  # problems, low_confidence, checks, answer_kind: every key typed
    assert record.problems and record.problems[0].kind == "number_not_found" and record.low_confidence[0].page == 3
    assert record.checks.numbers == "not found" and record.answer_kind.kind == "duration"
    assert record.support == pytest.approx(2 / 3) and record.words == report.label


def test_a_numbers_table_cell_is_typed_and_reads_back_as_logged() -> None:
    from dataclasses import fields

    from ingest.tables import CellMatch
    from pipeline.grounding_record import TableCell

    assert {f.name for f in fields(CellMatch)} == set(TableCell.model_fields)
    logged = {"cells": [{"number": "5,363", "page": 41, "table_title": "CONSOLIDATED BALANCE SHEETS",
                         "units": "(in millions)", "row_label": "Total current assets", "column": "2018",
                         "period": "2018", "cell_text": "$ 5,363", "box": ["401.5", "300.2", "440.0", "309.9"]}]}
    record = GroundingRecord.from_payload(logged)
    assert record.cells[0].box == [401.5, 300.2, 440.0, 309.9] and record.cells[0].row_label == "Total current assets"
    assert floats_to_strings(record.to_payload()) == logged
    match = CellMatch("1,577", 3, "Cash flows", "(in millions)", "Capital expenditure", "2022", "2022", "(1,577)",
                      (72.04, 510.0, 120.55, 519.96))
    assert TableCell.from_payload(match.to_dict()).to_payload() == match.to_dict()


def test_the_retrieval_info_types_every_retrieval_setting() -> None:
    missing = set(RetrievalSettings.model_fields) - set(RetrievalInfo.model_fields)
    assert not missing, f"RetrievalInfo does not type the retrieval settings {sorted(missing)}"


def test_absent_keys_stay_absent_and_unknown_ones_are_kept() -> None:
    assert GroundingRecord.not_checked().to_payload() == {"verdict": "not-applicable"}
    assert GroundingRecord().to_payload() == {} and not GroundingRecord().given
    older = {"review_id": "r1", "item_id": "law", "document": {"name": "a.pdf", "sha256": "ab"}, "verdict": "compliant",
             "grounding": {"verdict": "grounded", "claims": 1}, "written_by_a_newer_docket": {"x": [1, "2"]}}
    finding = ReviewFinding.from_payload(older)
    assert finding.to_payload() == older
    assert finding.answer is None and finding.grounding.label is None and finding.grounding.words == "grounded"
    assert finding.model_copy(update={"supersedes": 4}).to_payload() == {**older, "supersedes": 4}
    assert DocumentFilterInfo.from_payload({"types": ["NDA"], "until": "2020-12-31"}).to_payload() == {
        "types": ["NDA"], "until": "2020-12-31"}
    assert DocumentFilterInfo().to_payload() == {} and DocumentFilterInfo.model_fields.keys() == {"types", "since", "until"}


def test_the_fixture_workspaces_payloads_read_and_write_back_unchanged() -> None:
    findings = _fixture_payloads("review_finding")
    answers = _fixture_payloads("answer") + [f["answer_record"] for f in findings]
    for payload in answers:
        record = AnswerRecord.model_validate(payload)
        assert "label" not in payload["grounding"] and record.grounding.label is None  # before labels
        assert record.grounding.to_payload() == payload["grounding"]
        assert floats_to_strings(record.retrieval.to_payload()) == payload["retrieval"]  # weights as text, as logged
        assert record.retrieval.index_generation == payload["retrieval"]["index_generation"]
    for payload in findings:
        finding = ReviewFinding.from_payload(payload)
        assert floats_to_strings(finding.to_payload()) == payload
        assert finding.citations[0].page == payload["citations"][0]["page"] and finding.document.name == NETGEAR
        assert _extras(finding) == []
        assert finding.answer_record_model().grounding.grounded


def _review_and_ask(docket) -> None:
    """A review of one item over the collection ``samples``, then an ask: their payloads, typed, read back unchanged."""
    from pipeline.ask import AskOptions, ask
    from pipeline.review import load_checklist, run_review
    from pipeline.review.runner import FINDING_EVENT, cell_failure, review_state

    shipped = load_checklist("commercial-contract")
    checklist = shipped.model_copy(update={"items": [i for i in shipped.items if i.id == "governing-law"]})
    review = run_review(docket, checklist, collection="samples").review
    entries = {e.seq: e.payload for e in docket.audit.entries(event_type=FINDING_EVENT)}
    assert len(entries) == len(review.cells) == len(review.ready_documents)
    state = review_state(docket)
    try:
        stored = state.load(review.id).cells  # the rows as the database gives them back
    finally:
        state.close()
    for key, cell in review.cells.items():
        payload = entries[cell.audit_seq]
        assert floats_to_strings(stored[key].finding.to_payload()) == payload  # the state row holds what the log holds
        assert ReviewFinding.from_payload(payload).to_payload() == payload
        assert _extras(cell.finding) == [], "a key the runner writes is not a field of ReviewFinding"
        assert cell.finding.answer_record is not None and cell.finding.status and cell.finding.citations
    failed = cell_failure(review, checklist.items[0], review.documents[0], "gone").to_payload()
    assert failed["failed"] is True and not {"answer", "answer_record", "status", "attempts"} & set(failed)

    record = ask(docket, "Which state's law governs the distributor agreement?", AskOptions(collection="samples"))
    logged = next(e.payload for e in docket.audit.entries(event_type="answer") if e.seq == record.audit_seq)
    assert record.audit_payload() == logged
    read = AnswerRecord.model_validate(logged)
    assert read.audit_payload() == logged
    assert _extras(read.grounding) == [] and _extras(read.retrieval) == [] and read.document_filter.to_payload() == {}
    assert read.retrieval.top_k == docket.settings.retrieval.top_k and read.retrieval.embedding_model
    assert read.grounding.checks is not None and read.grounding.label == record.grounding.label


def test_a_review_and_an_ask_of_today_write_typed_payloads_that_read_back_unchanged(samples_copy: Path) -> None:
    from pipeline.app import Docket
    from pipeline.settings import load_settings

    _review_and_ask(Docket(load_settings(home=samples_copy, actor="test-analyst")))


@pytest.fixture
def pg_url():
    from test_audit_support import pg_schema_url

    yield from pg_schema_url()


@pytest.mark.postgres
def test_the_same_with_the_registry_review_state_and_log_in_postgres(home: Path, pg_url: str) -> None:
    from pipeline.app import Docket
    from pipeline.settings import load_settings

    docket = Docket(load_settings("postgres", registry_url=pg_url, audit_url=pg_url, actor="test-analyst"))
    assert docket.store.ingest([SAMPLES / NETGEAR], "samples").count("added") == 1
    _review_and_ask(docket)


def test_a_finding_that_does_not_read_is_one_line_naming_the_cell_and_its_entry(samples_copy: Path) -> None:
    from sqlalchemy import update
    from typer.testing import CliRunner

    from pipeline.app import Docket
    from pipeline.cli import app
    from pipeline.review import load_checklist, run_review
    from pipeline.review.state import review_cells
    from pipeline.review.runner import review_state
    from pipeline.settings import load_settings

    docket = Docket(load_settings(home=samples_copy))
    shipped = load_checklist("commercial-contract")
    checklist = shipped.model_copy(update={"items": [i for i in shipped.items if i.id == "governing-law"]})
    review = run_review(docket, checklist, collection="samples").review
    cell = next(iter(review.cells.values()))
    state = review_state(docket)
    try:
        with state.engine.begin() as conn:  # a row whose finding lost its item (a damaged or foreign database)
            conn.execute(update(review_cells).where(review_cells.c.audit_seq == cell.audit_seq)
                         .values(finding={**cell.finding.to_payload(), "item_id": None}))
    finally:
        state.close()
    result = CliRunner().invoke(app, ["review", "report", review.id, "-f", "json"])
    assert result.exit_code == 2, result.output
    line = " ".join(result.output.split())
    assert f"review {review.id}, cell governing-law x {cell.doc_sha256[:12]}: the review finding does not read" in line
    assert "(item_id: Input should be a valid string)" in line and f"docket audit show {cell.audit_seq}" in line
    assert "Traceback" not in result.output
