"""Replay (issue 19): an answer replayed on its frozen index, and against today's corpus and settings.

Everything is real (PDFs made here, ingested, the packaged encoder, FAISS, BM25, SQLite, the audit log);
only the language model is the local fake server.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import fitz
import pytest
from typer.testing import CliRunner

from fake_llm import TEST_KEY, mistral_2509
from pipeline.cli import app

runner = CliRunner()
QUESTION = "Which state's law governs the agreement?"

ALPHA = """MASTER SERVICES AGREEMENT between Alpha Analytics LLC and Harbor Bank N.A.

1. Services. Alpha Analytics shall provide data reconciliation services to Harbor Bank as described in each
statement of work signed by both parties.

2. Fees. Harbor Bank shall pay the fees set out in each statement of work within thirty (30) days of invoice.

3. Governing Law. This Agreement shall be governed by and construed in accordance with the laws of the State
of New York, without regard to its conflict of laws principles.

4. Termination. Either party may terminate this Agreement on ninety (90) days prior written notice."""

BETA = """CONSULTING AGREEMENT between Beta Advisory Inc. and Northwind Holdings Corp.

1. Engagement. Beta Advisory shall advise Northwind on the integration of its treasury systems.

2. Compensation. Northwind shall pay Beta Advisory a monthly retainer of $12,000.

3. Confidentiality. Each party shall keep the other's confidential information secret for five years.

4. Governing Law. This Agreement is governed by the laws of the State of Delaware."""

GAMMA = """SOFTWARE LICENSE AGREEMENT between Gamma Systems Ltd. and Redwood Insurance Company.

1. License. Gamma grants Redwood a non-exclusive licence to use the software for its internal business.

2. Support. Gamma shall answer support requests within one business day.

3. Term. The licence runs for three years from the effective date and renews for one-year terms."""

ALPHA_V2 = ALPHA.replace("State\nof New York", "State\nof Texas").replace("ninety (90)", "sixty (60)")


def invoke(*args: str, code: int | None = 0, env: dict[str, str] | None = None):
    result = runner.invoke(app, list(args), env=env)
    if code is not None:
        assert result.exit_code == code, result.output
    return result


BOILERPLATE = """{n}. Notices. Notices to {party} shall be in writing and delivered by hand or by courier.

{m}. Assignment. Neither party may assign this Agreement without the prior written consent of the other.

{k}. Entire Agreement. This Agreement is the entire agreement of the parties about its subject matter."""


def pdf(path: Path, text: str) -> Path:
    """A two-page contract: its own clauses, then boilerplate naming its first party (two chunks at least)."""
    party = text.split(" between ", 1)[1].split(" and ", 1)[0]
    document = fitz.open()
    document.new_page().insert_textbox(fitz.Rect(72, 72, 540, 760), text, fontsize=11)
    document.new_page().insert_textbox(fitz.Rect(72, 72, 540, 760), BOILERPLATE.format(n=5, m=6, k=7, party=party), fontsize=11)
    document.save(path)
    return path


@pytest.fixture
def deals(home: Path, tmp_path: Path) -> Path:
    """Three contracts ingested into collection `deals` (with their document events)."""
    folder = tmp_path / "deals"
    folder.mkdir()
    pdf(folder / "alpha.pdf", ALPHA)
    pdf(folder / "beta.pdf", BETA)
    pdf(folder / "gamma.pdf", GAMMA)
    invoke("ingest", str(folder), "-c", "deals")
    return folder


def ask_json(*args: str) -> dict:
    return json.loads(invoke("ask", *args, "--json", code=None).stdout)


def replay_json(seq: int, *args: str, code: int | None = None) -> dict:
    return json.loads(invoke("audit", "replay", str(seq), *args, "--json", code=code).stdout)


def entry(seq: int) -> dict:
    return json.loads(invoke("audit", "show", str(seq), "--json").stdout)


def test_frozen_replay_is_identical_after_a_new_version_and_a_setting_change_and_current_says_why(deals: Path, monkeypatch):
    original = ask_json(QUESTION, "-c", "deals")
    assert original["status"] == "answered" and "New York" in original["answer"]
    # Format 2 added what a replay needs (3 moved the call's sources and attempts into fields of their own).
    assert original["payload_version"] >= 2 and original["settings_sha256"] and original["corpus"]["versions"] == 3
    cited = {e["doc_name"] for e in original["evidence"] if e["label"] in original["citations"]}
    assert "alpha.pdf" in cited

    # The cited document gets a new version, and a retrieval setting changes.
    pdf(deals / "alpha.pdf", ALPHA_V2)
    ingested = invoke("ingest", str(deals / "alpha.pdf"), "-c", "deals", "--json")
    assert json.loads(ingested.stdout)["files"][0]["outcome"] == "new-version"
    monkeypatch.setenv("DOCKET_RETRIEVAL__TOP_K", "3")

    frozen = replay_json(original["audit_seq"], code=0)
    assert frozen["outcome"] == "identical" and frozen["missing"] == []
    assert frozen["index"].startswith("rebuilt:")  # today's corpus is another: FAISS and BM25 built for the old one
    rows = frozen["evidence"]["rows"]
    assert len(rows) == len(original["evidence"]) == 5
    for row, recorded in zip(rows, original["evidence"]):
        assert row["same"]
        assert row["replayed"]["chunk_id"] == recorded["chunk_id"]
        assert row["replayed"]["text_sha256"] == recorded["text_sha256"]
        assert row["replayed"]["score"] == recorded["score"]  # the same float: same vectors, same BM25 corpus
    # The extractive answerer's answer, byte for byte, and its trace.
    assert frozen["record"]["answer"] == original["answer"] and frozen["record"]["trace"] == original["trace"]
    assert frozen["record"]["grounding"] == json.loads(json.dumps(original["grounding"]))
    assert all(text["same"] for text in frozen["texts"])

    # The replay is an audit entry that names the entry it replays and its outcome.
    logged = entry(frozen["audit_seq"])
    assert logged["event_type"] == "replay" and logged["status"] == "identical"
    assert f"seq:{original['audit_seq']}" in logged["subjects"]
    assert logged["payload"]["replays_seq"] == original["audit_seq"] and logged["payload"]["against"] == "frozen"

    # A second frozen replay of the same corpus loads the BM25 it built, and is identical again.
    again = replay_json(original["audit_seq"], code=0)
    assert again["index"].startswith("rebuilt, BM25 from the replay cache")
    assert again["record"]["answer"] == original["answer"]

    current = replay_json(original["audit_seq"], "--against", "current", code=1)
    assert current["outcome"] == "evidence-changed"
    assert "Texas" in current["record"]["answer"] and len(current["record"]["evidence"]) == 3
    versions = current["changes"]["versions"]
    assert [(v["name"], v["change"], v["from_version"], v["to_version"]) for v in versions] == [("alpha.pdf", "new-version", 1, 2)]
    assert {"key": "retrieval.top_k", "recorded": 5, "current": 3} in current["changes"]["settings"]
    assert [s["key"] for s in current["changes"]["settings"]] == ["retrieval.top_k"]  # nothing else moved
    answer_diff = next(t for t in current["texts"] if t["field"] == "answer")["diff"]
    assert ["-", "New York,"] in answer_diff and ["+", "Texas,"] in answer_diff

    shown = invoke("audit", "replay", str(original["audit_seq"]), "--against", "current", code=1).stdout
    assert "changed document: alpha.pdf: version 1" in shown and "changed setting: retrieval.top_k: 5 -> 3" in shown
    assert "[-New York,-]{+Texas,+}" in shown
    assert "outcome: evidence-changed" in shown
    assert invoke("audit", "verify").exit_code == 0


def test_the_settings_and_corpus_are_committed_once_and_hold_no_secret(deals: Path, monkeypatch):
    monkeypatch.setenv("DOCKET_LLM_API_KEY", TEST_KEY)
    first = ask_json(QUESTION, "-c", "deals")
    second = ask_json("How much is the monthly retainer?", "-c", "deals")
    assert first["settings_sha256"] == second["settings_sha256"] and first["corpus"] == second["corpus"]
    listed = json.loads(invoke("audit", "list", "--type", "settings", "--json").stdout)
    assert len(listed) == 1 and listed[0]["subjects"] == [f"settings:{first['settings_sha256']}"]
    settings = json.loads(listed[0]["payload"]["settings"])
    assert settings["llm"]["api_key"] == "***" and TEST_KEY not in listed[0]["payload"]["settings"]
    assert "actor" not in settings  # one entry per configuration, not per user
    corpus = json.loads(invoke("audit", "list", "--type", "corpus", "--json").stdout)
    assert len(corpus) == 1 and len(corpus[0]["payload"]["versions"]) == 3
    assert corpus[0]["payload"]["corpus_sha256"] == first["corpus"]["sha256"]


def test_the_fake_llm_is_asked_again_with_the_recorded_messages_model_and_seed(deals: Path, fake_llm, monkeypatch):
    monkeypatch.setenv("DOCKET_REASONER", "magistral")
    monkeypatch.setenv("DOCKET_LLM_BASE_URL", fake_llm.base_url)
    monkeypatch.setenv("DOCKET_LLM_MODEL", "magistral-medium-2509")
    monkeypatch.setenv("MISTRAL_API_KEY", TEST_KEY)
    monkeypatch.setenv("DOCKET_LLM__SEED", "7")
    monkeypatch.setenv("DOCKET_LLM__MAX_RETRIES", "0")
    answer = "The agreement is governed by the laws of the State of New York [S1]."
    fake_llm.script(mistral_2509("S1 names New York law.", answer), mistral_2509("S1 names New York law.", answer))
    original = ask_json(QUESTION, "-c", "deals")
    assert original["status"] == "answered", original

    monkeypatch.setenv("DOCKET_LLM_MODEL", "mistral-medium-3-5")  # today's model is another: frozen asks the recorded one
    frozen = replay_json(original["audit_seq"], code=0)
    assert frozen["outcome"] == "identical" and frozen["seed"] == 7 and frozen["prompt_rebuilt_same"] is True
    first, replayed = (r.body for r in fake_llm.chat_requests)
    assert replayed["messages"] == first["messages"] == original["call"]["messages"]
    assert replayed["model"] == "magistral-medium-2509" and replayed["random_seed"] == 7 == first["random_seed"]
    assert (replayed["temperature"], replayed["top_p"], replayed["max_tokens"]) == (first["temperature"], first["top_p"], first["max_tokens"])
    assert TEST_KEY not in json.dumps(entry(frozen["audit_seq"])["payload"])

    # The model answers otherwise this time: the replay says so, as a word diff.
    fake_llm.script(mistral_2509("S1 names Delaware.", "The agreement is governed by Delaware law [S1]."))
    changed = replay_json(original["audit_seq"], code=1)
    assert changed["outcome"] == "answer-changed" and changed["evidence"]["same"]
    assert "answer" in changed["fields_changed"] and "trace" in changed["fields_changed"]
    diff = next(t for t in changed["texts"] if t["field"] == "answer")["diff"]
    assert ["+", "Delaware"] in [[op, text.strip()] for op, text in diff]


def test_chunks_redacted_or_removed_and_a_redacted_entry_are_reported_not_substituted(deals: Path, home: Path):
    original = ask_json(QUESTION, "-c", "deals")
    pdf(deals / "alpha.pdf", ALPHA_V2)
    invoke("ingest", str(deals / "alpha.pdf"), "-c", "deals")
    registry = sqlite3.connect(home / "registry.db")
    cited = next(e for e in original["evidence"] if e["doc_name"] == "alpha.pdf" and e["label"] in original["citations"])

    # A chunk's text redacted in place (its hash no longer matches).
    registry.execute("UPDATE chunks SET text = '[redacted]' WHERE id = ?", (cited["chunk_id"],))
    registry.commit()
    redacted = replay_json(original["audit_seq"], code=1)
    assert redacted["outcome"] == "incomplete" and redacted["record"] is None
    assert [m["what"] for m in redacted["missing"]] == ["text"]
    assert f"chunk {cited['chunk_id']}" in redacted["missing"][0]["detail"]

    # The old version's chunks removed (as a retention rule would).
    old_version = registry.execute("SELECT version_id FROM chunks WHERE id = ?", (cited["chunk_id"],)).fetchone()[0]
    count = registry.execute("SELECT count(*) FROM chunks WHERE version_id = ?", (old_version,)).fetchone()[0]
    registry.execute("DELETE FROM chunks WHERE version_id = ?", (old_version,))
    registry.commit()
    removed = replay_json(original["audit_seq"], code=1)
    assert removed["outcome"] == "incomplete"
    assert any(m["what"] == "chunks" and f"alpha.pdf version 1" in m["detail"] and f"0 of its {count} chunks" in m["detail"]
               for m in removed["missing"]), removed["missing"]
    shown = invoke("audit", "replay", str(original["audit_seq"]), code=1).stdout
    assert "missing chunks: alpha.pdf version 1" in shown and "nothing was substituted" in shown
    assert entry(removed["audit_seq"])["status"] == "incomplete"

    # The entry itself redacted: nothing to replay, and it says by whom and why.
    invoke("audit", "redact", str(original["audit_seq"]), "--reason", "client request", "--legal-basis", "GDPR Art. 17")
    gone = replay_json(original["audit_seq"], code=1)
    assert gone["outcome"] == "incomplete" and "redacted by" in gone["missing"][0]["detail"]
    assert "GDPR Art. 17" in gone["missing"][0]["detail"]


def test_bad_replay_requests_are_one_line_and_exit_2(deals: Path):
    assert "only answer entries and review findings" in invoke("audit", "replay", "1", code=2).stderr
    assert "no entry with seq 999" in invoke("audit", "replay", "999", code=2).stderr
    assert "expected frozen or current" in invoke("audit", "replay", "1", "--against", "yesterday", code=2).stderr


FIXTURE = Path(__file__).parent / "fixtures" / "workspace_3aea598"
FORMAT_2_FIELDS = ("payload_version", "settings_sha256", "corpus", "searched_document_ids")


def test_a_format_1_payload_replays_from_its_own_fields_and_the_document_events(deals: Path):
    from pipeline.app import Docket
    from pipeline.settings import load_settings

    original = ask_json(QUESTION, "-c", "deals", "--doc", "alpha.pdf")
    # The same answer as a Docket from before replay wrote it: without the format 2 fields.
    docket = Docket(load_settings())
    stored = docket.audit.get(original["audit_seq"])
    old = {k: v for k, v in stored.payload.items() if k not in FORMAT_2_FIELDS}
    seq = docket.audit.append("answer", old, actor=stored.actor, subjects=list(stored.subjects), status=stored.status).seq
    pdf(deals / "alpha.pdf", ALPHA_V2)
    invoke("ingest", str(deals / "alpha.pdf"), "-c", "deals")

    frozen = replay_json(seq, code=0)
    assert frozen["replays"]["payload_version"] == 1 and frozen["outcome"] == "identical"
    assert "derived from the document events" in frozen["replays"]["corpus_source"]
    assert "payload format 1 stored no settings" in frozen["replays"]["settings_source"]
    assert any("--doc refs were resolved today" in note for note in frozen["notes"])
    assert frozen["record"]["answer"] == original["answer"]
    assert [r["replayed"]["chunk_id"] for r in frozen["evidence"]["rows"]] == [e["chunk_id"] for e in original["evidence"]]


def test_a_log_written_before_replay_still_verifies_shows_and_says_what_it_cannot_replay(home: Path):
    import shutil

    shutil.copytree(FIXTURE, home)
    assert invoke("audit", "verify").stdout.startswith("OK")
    assert entry(1)["payload"]["question"] == QUESTION
    frozen = replay_json(1, code=1)
    assert frozen["outcome"] == "incomplete" and frozen["replays"]["payload_version"] == 1
    assert [m["what"] for m in frozen["missing"]] == ["corpus"]
    assert "no document event before #1 made live" in frozen["missing"][0]["detail"]
    current = replay_json(1, "--against", "current", code=None)
    assert current["outcome"] in ("identical", "evidence-changed", "answer-changed")
    assert current["changes"]["versions"] is None and "payload format 1" in current["changes"]["settings_compared"]
    assert invoke("audit", "verify").stdout.startswith("OK")


CHECKLIST = """name: replay-check
title: Replay check
version: 1
items:
  - id: governing-law
    title: Governing law
    question: Which state's law governs the agreement?
    requirement: The agreement is governed by the laws of the State of New York or Delaware.
    severity: high
    rule: {kind: jurisdiction_in, allowed: [New York, Delaware]}
  - id: termination-notice
    title: Termination notice
    question: How much prior written notice does termination require?
    requirement: Termination requires written notice of at least 60 days.
    severity: medium
    rule: {kind: min_duration_days, value: 60}
"""


def test_a_review_cell_replays_and_a_whole_review_replays_into_a_new_review(deals: Path, tmp_path: Path):
    checklist = tmp_path / "replay-check.yaml"
    checklist.write_text(CHECKLIST)
    run = json.loads(invoke("review", "run", str(checklist), "-c", "deals", "--doc", "alpha.pdf", "--doc", "beta.pdf",
                            "--json", code=None).stdout)
    review_id = run["review_id"]
    pdf(deals / "alpha.pdf", ALPHA_V2)  # the reviewed document changes after the review
    invoke("ingest", str(deals / "alpha.pdf"), "-c", "deals")

    cell = json.loads(invoke("review", "replay", review_id, "--item", "governing-law", "--doc", "alpha.pdf",
                             "--json", code=0).stdout)
    assert cell["outcome"] == "identical" and cell["replays"]["event_type"] == "review_finding"
    assert cell["verdict"]["recorded"] == cell["verdict"]["replayed"] == "compliant"  # New York, on the frozen index
    today = json.loads(invoke("review", "replay", review_id, "--item", "governing-law", "--doc", "alpha.pdf",
                              "--against", "current", "--json", code=1).stdout)
    assert today["verdict"]["replayed"] == "non-compliant" and "Texas" in today["record"]["answer"]
    assert [v["name"] for v in today["changes"]["versions"]] == ["alpha.pdf"]

    whole = json.loads(invoke("review", "replay", review_id, "--all", "--json", code=0).stdout)
    assert whole["replays_review"] == review_id and whole["outcomes"] == {"identical": 4}
    diff = json.loads(invoke("review", "diff", review_id, whole["review_id"], "--json").stdout)
    assert diff["counts"] == {"same": 4, "changed": 0, "only-a": 0, "only-b": 0}
    started = json.loads(invoke("audit", "list", "--type", "review_started", "--subject", f"review:{whole['review_id']}",
                                "--json").stdout)
    assert started[0]["payload"]["replays_review"] == review_id

    assert "no such item" in invoke("review", "replay", review_id, "--item", "nope", "--doc", "alpha.pdf", code=2).stderr
    assert "reviewed no such document" in invoke("review", "replay", review_id, "--item", "governing-law", "--doc",
                                                 "gamma.pdf", code=2).stderr
    assert "--item ITEM and --doc DOC" in invoke("review", "replay", review_id, code=2).stderr
