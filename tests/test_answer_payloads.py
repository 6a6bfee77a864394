"""Answer payloads of every format read back as one typed record; logs already written still verify and show.

Format 3 made the call's sources sent and attempts fields of the call record; formats 1 and 2 carried
them in call.parameters. Format 4 (pipeline.records.ANSWER_PAYLOAD_VERSION) keeps the search's passages as
the evidence, with their document id and context, which earlier formats did not record. The 3aea598
fixture holds format 1 entries written by that commit's code; a format 2 payload is the current one as
format 2 laid it out.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from audit.log import AuditLog
from conftest import DRIVEN
from fake_llm import TEST_KEY, mistral_2509
from ingest.passages import Passage
from pipeline.cli import app
from pipeline.records import ANSWER_PAYLOAD_VERSION, AnswerRecord
from pipeline.reasoning import CallRecord

FIXTURE = Path(__file__).parent / "fixtures" / "workspace_3aea598"
QUESTION = "How much notice ends the consulting agreement without cause?"
ANSWER = "Either party may terminate on thirty (30) days prior written notice [S1]."
runner = CliRunner()


def invoke(*args: str, code: int = 0):
    result = runner.invoke(app, list(args))
    assert result.exit_code == code, result.output
    return result


def as_format_2(payload: dict) -> dict:
    """A current payload as format 2 wrote it: the call's sources and attempts inside call.parameters, and
    evidence without the passages' document id and context."""
    call = dict(payload["call"])
    moved = {name: call.pop(name) for name in ("sources_sent", "sources_dropped", "attempts", "retry_waits_ms")}
    evidence = [{k: v for k, v in e.items() if k not in ("document_id", "context")} for e in payload["evidence"]]
    return {**payload, "payload_version": 2, "evidence": evidence,
            "call": {**call, "parameters": {**call["parameters"], **moved}}}


@pytest.fixture
def magistral_answer(samples_copy: Path, fake_llm, monkeypatch) -> dict:
    monkeypatch.setenv("DOCKET_REASONER", "magistral")
    monkeypatch.setenv("DOCKET_LLM_BASE_URL", fake_llm.base_url)
    monkeypatch.setenv("DOCKET_LLM_MODEL", "magistral-medium-2509")
    monkeypatch.setenv("MISTRAL_API_KEY", TEST_KEY)
    monkeypatch.setenv("DOCKET_LLM__MAX_RETRIES", "0")
    fake_llm.script(mistral_2509("S1 says thirty days.", ANSWER))
    record = json.loads(invoke("ask", QUESTION, "-c", "samples", "--doc", DRIVEN, "--json").stdout)
    return json.loads(invoke("audit", "show", str(record["audit_seq"]), "--json").stdout)["payload"]


def test_a_current_payload_has_the_calls_sources_and_attempts_as_fields(magistral_answer: dict):
    payload = magistral_answer
    assert payload["payload_version"] == ANSWER_PAYLOAD_VERSION == 4
    call = payload["call"]
    assert call["sources_sent"] and call["attempts"] == 1 and call["retry_waits_ms"] == []
    assert not {"sources_sent", "sources_dropped", "attempts", "retry_waits_ms"} & set(call["parameters"])
    first = payload["evidence"][0]
    assert first["label"] == "S1" and first["rank"] == 1 and isinstance(first["document_id"], int)
    assert first["context"] is not None and len(first["text_sha256"]) == 64
    record = AnswerRecord.model_validate(payload)
    assert isinstance(record.call, CallRecord) and isinstance(record.evidence[0], Passage)
    assert record.evidence[0].document_id == first["document_id"]
    assert record.call.sources_sent == call["sources_sent"] and record.call.attempts == 1
    assert record.audit_payload() == payload  # read back, it writes the same payload


def test_a_format_2_payload_reads_its_sources_and_attempts_out_of_the_parameters(magistral_answer: dict):
    old = as_format_2(magistral_answer)
    assert old["call"]["parameters"]["sources_sent"] == magistral_answer["call"]["sources_sent"]
    record = AnswerRecord.model_validate(old)
    assert record.payload_version == 2  # read as what it is
    assert record.call.sources_sent == magistral_answer["call"]["sources_sent"]
    assert record.call.attempts == 1 and record.call.retry_waits_ms == []
    assert "sources_sent" not in record.call.parameters and record.call.parameters["seed"] == old["call"]["parameters"]["seed"]
    assert AnswerRecord.model_validate(magistral_answer).call == record.call
    passage = record.evidence[0]
    assert passage.document_id is None and passage.context == ""  # not recorded before format 4
    assert passage.text_sha256 == magistral_answer["evidence"][0]["text_sha256"]


def test_the_format_1_entries_of_a_workspace_from_3aea598_read_show_and_verify(home: Path):
    shutil.copytree(FIXTURE, home)
    with AuditLog.open(f"sqlite:///{home / 'audit.db'}", keys_dir=home / "keys") as log:
        entries = [e for e in log.entries() if e.event_type in ("answer", "review_finding")]
    assert {e.event_type for e in entries} == {"answer", "review_finding"}
    for entry in entries:
        payload = entry.payload if entry.event_type == "answer" else entry.payload["answer_record"]
        assert "payload_version" not in payload  # written before the field existed
        record = AnswerRecord.model_validate(payload)
        assert record.payload_version == 1 and record.evidence and record.question
        assert record.call.provider == "docket-extractive" and record.call.sources_sent is None
        assert record.call.attempts is None
        assert all(isinstance(p, Passage) and p.document_id is None for p in record.evidence)
        assert [p.text_sha256 for p in record.evidence] == [e["text_sha256"] for e in payload["evidence"]]
        shown = invoke("audit", "show", str(entry.seq)).output
        assert record.question in shown
    assert invoke("audit", "verify").output.startswith("OK")
