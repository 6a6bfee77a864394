"""Fail closed by default: an answer that fails grounding is withheld (kept in the record, exit 1),
printed only on request and marked as withheld; --allow-ungrounded or grounding.allow_ungrounded
turns that off explicitly. Real ingested sample contracts, the real CLI and audit log; the model is
the fake server."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import DRIVEN, NETGEAR
from fake_llm import TEST_KEY, mistral_2509, mistral_medium_3_5
from pipeline.answer_kinds import kind_found
from pipeline.cli import app

runner = CliRunner()
QUESTION = "How much notice ends the consulting agreement without cause?"
INVENTED = "Either party may terminate on 45 days notice [S1]."
GOOD = "Either party may terminate on thirty (30) days prior written notice [S1]."


def run(*args: str, code: int):
    result = runner.invoke(app, list(args))
    assert result.exit_code == code, result.output
    return result


@pytest.fixture
def magistral(samples_copy: Path, fake_llm, monkeypatch):
    monkeypatch.setenv("DOCKET_REASONER", "magistral")
    monkeypatch.setenv("DOCKET_LLM_BASE_URL", fake_llm.base_url)
    monkeypatch.setenv("DOCKET_LLM_MODEL", "mistral-medium-3-5")
    monkeypatch.setenv("MISTRAL_API_KEY", TEST_KEY)
    monkeypatch.setenv("DOCKET_LLM__MAX_RETRIES", "0")
    return fake_llm


def ask_json(*extra: str, code: int) -> dict:
    out = run("ask", QUESTION, "-c", "samples", "--doc", DRIVEN, "--json", *extra, code=code)
    return json.loads(out.stdout)


def test_an_invented_number_is_withheld_by_default_and_kept_in_the_record(magistral):
    magistral.script(mistral_medium_3_5("S1 says thirty days.", INVENTED))
    record = ask_json(code=1)
    assert record["status"] == "withheld" and record["withheld_answer"] == INVENTED
    assert record["answer"].startswith("Answer withheld: not supported:") and "45" not in record["answer"]
    assert record["grounding"]["checks"]["numbers"] == "not found" and record["grounding"]["supported"] is False
    assert "a number or date is not in the cited sources" in record["grounding"]["label"]
    entry = json.loads(run("audit", "show", str(record["audit_seq"]), "--json", code=0).stdout)
    assert entry["status"] == "withheld" and entry["payload"]["withheld_answer"] == INVENTED


def test_the_withheld_answer_is_printed_only_on_request_and_marked(magistral):
    magistral.script(mistral_2509("S1.", INVENTED), mistral_2509("S1.", INVENTED))
    hidden = run("ask", QUESTION, "-c", "samples", "--doc", DRIVEN, code=1).stdout
    assert "45 days" not in hidden and "withheld" in hidden and "--show-withheld" in hidden
    shown = run("ask", QUESTION, "-c", "samples", "--doc", DRIVEN, "--show-withheld", code=1).stdout
    assert "45 days" in shown and "Withheld answer: NOT supported" in shown
    assert "not supported:" in shown  # the status line says which check failed, in the record's words


def test_streaming_shows_the_trace_live_but_never_a_withheld_answer(magistral):
    magistral.script(mistral_medium_3_5("Weighing S1 against the question.", INVENTED))
    out = run("ask", QUESTION, "-c", "samples", "--doc", DRIVEN, "--stream", "--show-trace", code=1).stdout
    assert "Weighing S1" in out and "45 days" not in out


@pytest.mark.parametrize("how", ["flag", "setting"])
def test_allow_ungrounded_shows_it_as_an_answer_flagged_and_exits_0(magistral, monkeypatch, how):
    magistral.script(mistral_2509("S1.", INVENTED))
    if how == "setting":
        monkeypatch.setenv("DOCKET_GROUNDING__ALLOW_UNGROUNDED", "true")
    record = ask_json(*(["--allow-ungrounded"] if how == "flag" else []), code=0)
    assert record["status"] == "answered" and record["answer"] == INVENTED and record["withheld_answer"] is None
    assert record["flags"][0].startswith("shown although not supported:")
    assert "grounding.allow_ungrounded" in record["flags"][0]


def _verbatim_non_answer(evidence: list[dict]) -> tuple[str, str]:
    """A line of the evidence, quoted verbatim, that states no duration (a heading, a definition)."""
    for e in evidence:
        for line in e["text"].splitlines():
            line = " ".join(line.split()).strip(" .")
            words = re.findall(r"[A-Za-z]{2,}", line)
            if 4 <= len(words) <= 20 and not re.search(r"\d|\"|“|”", line) and kind_found("duration", line) is None:
                return line, e["label"]
    raise AssertionError("no line without a duration in the evidence")


def test_a_verbatim_quote_that_does_not_answer_is_withheld_as_not_answering(magistral):
    # Ingest drops running footers from chunks, so the non-answer is a line of the retrieved evidence
    # itself: verbatim on its page, and no duration in it.
    magistral.script(mistral_2509("S1.", GOOD))
    evidence = ask_json(code=0)["evidence"]
    line, label = _verbatim_non_answer(evidence)
    magistral.script(mistral_2509("This line is on the page.", f'"{line}" [{label}]'))
    record = ask_json(code=1)
    assert record["grounding"]["checks"] == {
        "citations": "valid", "quotes": "found", "numbers": "none stated", "addresses_question": "no",
    }
    assert record["grounding"]["verdict"] == "not_answering" and record["status"] == "withheld"
    assert record["grounding"]["label"].endswith("but it does not state a duration")


def test_a_quote_that_is_not_on_its_page_is_caught_and_withheld(magistral):
    magistral.script(mistral_2509("S1.", 'The contract says "either party may walk away at any time with thirty days" [S1].'))
    record = ask_json(code=1)
    assert record["grounding"]["checks"]["quotes"] == "not found" and record["status"] == "withheld"
    assert "a quote is not on the cited page" in record["grounding"]["label"]


def test_a_supported_answer_is_answered_with_the_label_that_says_what_was_checked(magistral):
    magistral.script(mistral_2509("S1 says thirty days.", GOOD), mistral_2509("S1 says thirty days.", GOOD))
    record = ask_json(code=0)
    assert record["status"] == "answered" and record["grounding"]["supported"] is True
    assert record["grounding"]["label"].startswith("supported: citations valid, numbers found, states a duration")
    text = run("ask", QUESTION, "-c", "samples", "--doc", DRIVEN, code=0).stdout
    assert "answered · supported: citations valid" in text


def test_no_strict_is_gone_with_a_message_and_strict_is_accepted(magistral):
    out = run("ask", QUESTION, "-c", "samples", "--no-strict", code=2)
    assert "--allow-ungrounded" in out.output
    magistral.script(mistral_2509("S1.", GOOD))
    assert ask_json("--strict", code=0)["status"] == "answered"


def test_the_extractive_answerer_goes_through_the_same_gate(samples_copy: Path):
    # A clause that states the governing law: answered, every check held, exit 0.
    out = run("ask", "Which state's law governs the agreement?", "-c", "samples", "--doc", NETGEAR, "--json", code=0)
    record = json.loads(out.stdout)
    assert record["status"] == "answered" and record["grounding"]["supported"] is True
    assert record["grounding"]["answer_kind"]["kind"] == "jurisdiction" and record["grounding"]["answer_kind"]["found"]
