"""Reviews through the Magistral path, against the fake OpenAI-compatible server (the only fake):
parsed and unparseable verdicts, a 429 storm mid-review, diff and sign-off through the CLI, a
document that fails to ingest or vanishes mid-review, and resume after a SIGKILLed run."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from conftest import DRIVEN, DUOS, NETGEAR, REPO, SAMPLES
from fake_llm import FakeLLM, RecordedRequest, Reply, mistral_2509, rate_limited
from pipeline.app import Docket
from pipeline.grounding import REFUSAL_SENTENCE
from pipeline.review import load_checklist, parse_checklist, run_review
from pipeline.cli.review import make_review_app
from pipeline.review.runner import FINDING_EVENT, RunHooks, review_state
from pipeline.settings import load_settings

CHECKLIST = """\
name: sample-contracts
title: Sample contract checks
items:
  - id: governing-law
    title: Governing law
    question: Which state's law governs the agreement?
    requirement: The agreement is governed by California law.
    severity: high
  - id: renewal-notice
    title: Renewal notice
    question: What notice period is required to terminate renewal?
    requirement: Renewal can be stopped with at least 60 days' notice.
  - id: termination
    title: Termination for convenience
    question: Can a party terminate this contract without cause, solely by giving notice?
    requirement: Termination without cause needs at least 60 days' notice.
"""

# An answer with the kind each item asks for (a law, a clause on terminating, a duration), so grounding
# lets its verdict line through; it names no figure, so any sample contract "supports" it.
ADDRESSES_ALL = (
    "The agreement is governed by California law, either party may terminate it on written notice, and its "
    "renewal term is one year [S1].\nVERDICT: "
)

Responder = Callable[[str, str], str | Reply]  # (item title, document name) -> answer text or a Reply


class ReviewServer(FakeLLM):
    """The fake server, answering each request from what it asks (which item, which document), so
    that concurrent cells get their own answers whatever order they arrive in."""

    def __init__(self, respond: Responder, latency_s: float = 0.0):
        self.respond, self.latency_s = respond, latency_s
        self.storm: list[Reply] = []  # replies served first, in order, to whichever requests come
        self.served: Counter[int] = Counter()
        super().__init__()

    def _handler(self):
        fake = self
        base = super()._handler()

        class Handler(base):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
                with fake._lock:
                    fake.requests.append(RecordedRequest(self.path, dict(self.headers), body, time.monotonic()))
                    reply = fake.storm.pop(0) if fake.storm else None
                if reply is None:
                    time.sleep(fake.latency_s)
                    prompt = body["messages"][-1]["content"]
                    title = re.search(r"Compliance check: (.+)", prompt).group(1).strip()
                    document = re.search(r'document="([^"]+)"', prompt)
                    answer = fake.respond(title, document.group(1) if document else "")
                    reply = answer if isinstance(answer, Reply) else mistral_2509("I read the sources.", answer)
                with fake._lock:
                    fake.served[reply.status] += 1
                self._send(reply)

        return Handler


def _answers(title: str, document: str) -> str:
    """What the 'model' says, from the contracts' real terms (see samples/ATTRIBUTION.md)."""
    law = "Florida" if document.startswith("DUOS") else "California"
    if title == "Governing law":
        verdict = "non-compliant" if law == "Florida" else "compliant"
        return f"The agreement is governed by {law} law [S1].\nVERDICT: {verdict}"
    if title == "Renewal notice":
        if document.startswith("DRIVEN"):
            return REFUSAL_SENTENCE
        return "The agreement states a notice period for renewal [S1]."  # no verdict line
    return "Either party may terminate on notice.\nVERDICT: compliant"  # cites nothing


@pytest.fixture
def serve():
    servers: list[ReviewServer] = []

    def start(respond: Responder = _answers, latency_s: float = 0.0) -> ReviewServer:
        server = ReviewServer(respond, latency_s)
        server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def _docket(home: Path, server: ReviewServer, **llm) -> Docket:
    return Docket(load_settings(home=home, reasoner="magistral", llm=server.llm_settings(**llm)))


def _findings(docket: Docket, review_id: str):
    return [e for e in docket.audit.entries(event_type=FINDING_EVENT, subject=f"review:{review_id}")]


def test_model_verdicts_are_kept_only_when_parsed_and_grounded(samples_copy: Path, serve) -> None:
    server = serve()
    docket = _docket(samples_copy, server, concurrency=3)
    outcome = run_review(docket, parse_checklist(CHECKLIST), collection="samples")
    review = outcome.review
    by_doc = {d.name: d.sha256 for d in review.documents}
    name_of = {sha: name for name, sha in by_doc.items()}
    verdict = {(i, name_of[sha]): cell.verdict for (i, sha), cell in review.cells.items()}

    assert verdict[("governing-law", NETGEAR)] == verdict[("governing-law", DRIVEN)] == "compliant"
    assert verdict[("governing-law", DUOS)] == "non-compliant"
    assert verdict[("renewal-notice", DRIVEN)] == "not-addressed"  # the model's refusal sentence
    assert verdict[("renewal-notice", NETGEAR)] == "needs-review"  # no parseable verdict
    assert {verdict[("termination", d)] for d in by_doc} == {"needs-review"}  # says compliant, cites nothing
    cell = review.cells[("termination", by_doc[NETGEAR])]
    # Issue 17: an answer that fails grounding is withheld, and a withheld answer gives no verdict.
    assert cell.finding.status == "withheld" and "withheld" in cell.finding.basis
    assert "not supported" in cell.finding.basis and cell.finding.grounding.verdict != "grounded"
    law = review.cells[("governing-law", by_doc[DUOS])].finding
    assert law.citations[0].page >= 1 and law.trace == "I read the sources."
    assert float(law.confidence) == 1.0
    # The cell's entry carries the whole answer record (messages, model, evidence); no separate answer entry.
    assert law.answer_record["call"]["messages"] and law.answer_record["evidence"]
    assert not list(docket.audit.entries(event_type="answer"))

    # One audit entry per cell, tied to the review and the document; a signed checkpoint ends it.
    entries = _findings(docket, review.id)
    assert len(entries) == 9 and all(e.request_id == review.id for e in entries)
    assert all({f"review:{review.id}", e.payload["document"]["sha256"]} <= set(e.subjects) for e in entries)
    assert review.checkpoint is not None and Path(review.checkpoint["file"]).is_file()
    assert docket.audit.get(review.checkpoint["size"] + 1).event_type == "checkpoint"
    assert docket.audit.verify().ok
    # Each request asked for the verdict in the parseable form, with retrieval limited to one document.
    for request in server.chat_requests:
        prompt = request.body["messages"][-1]["content"]
        assert "VERDICT: non-compliant" in prompt
        assert len(set(re.findall(r'document="([^"]+)"', prompt))) == 1


def test_a_429_storm_mid_review_is_ridden_out(samples_copy: Path, serve) -> None:
    # An answer that addresses every item (issue 17: "covers this [S1]" no longer earns a verdict).
    server = serve(lambda title, doc: ADDRESSES_ALL + "compliant")
    docket = _docket(samples_copy, server, concurrency=4, max_retries=10)
    storm_started = threading.Event()

    def on_cell(cell, name: str) -> None:
        if not storm_started.is_set():  # after the first recorded cell: ten 429s in a row
            with server._lock:
                server.storm.extend(rate_limited("0") for _ in range(10))
            storm_started.set()

    outcome = run_review(docket, parse_checklist(CHECKLIST), collection="samples", hooks=RunHooks(on_cell=on_cell))
    cells = outcome.review.cells.values()
    assert server.served[429] == 10
    assert len(cells) == 9 and {c.verdict for c in cells} == {"compliant"} and not any(c.failed for c in cells)
    assert sum(c.finding.attempts for c in cells) == 9 + 10  # every 429 retried, none lost
    assert outcome.review.completed_at is not None


def test_cli_show_diff_sign_off_and_reports(samples_copy: Path, serve, tmp_path: Path) -> None:
    server = serve()
    checklist = tmp_path / "sample.yaml"
    checklist.write_text(CHECKLIST)
    app = typer.Typer()
    docket = _docket(samples_copy, server)
    app.add_typer(make_review_app(lambda: docket), name="review")
    cli = CliRunner()

    first = cli.invoke(app, ["review", str(checklist), "-c", "samples", "--json"])
    assert first.exit_code == 0, first.output
    a = json.loads(first.output)["review_id"]
    again = cli.invoke(app, ["review", str(checklist), "-c", "samples", "--json"])
    assert json.loads(again.output) | {"summary": None} == {"review_id": a, "ran": 0, "restored": 0,
                                                             "resumed": True, "summary": None}

    server.respond = lambda title, doc: ADDRESSES_ALL + "non-compliant"
    second = cli.invoke(app, ["review", str(checklist), "-c", "samples", "--new", "--json"])
    b = json.loads(second.output)["review_id"]
    assert b != a

    diff = json.loads(cli.invoke(app, ["review", "diff", a, b, "--json"]).output)
    changed = {(c["item_id"], c["document"]) for c in diff["cells"] if c["change"] == "changed"}
    assert changed == {("governing-law", NETGEAR), ("governing-law", DRIVEN)} | {
        (i, d) for i in ("renewal-notice", "termination") for d in (NETGEAR, DUOS, DRIVEN)
    }
    assert diff["counts"]["same"] == 1  # DUOS governing law: non-compliant both times

    signed = cli.invoke(app, ["review", "sign-off", b, "--item", "governing-law", "--doc", DUOS,
                              "--decision", "override", "--verdict", "compliant", "--note", "Florida accepted by GC"])
    assert signed.exit_code == 0, signed.output
    whole = cli.invoke(app, ["review", "sign-off", b[:6], "--decision", "accept", "--note", "reviewed all", "--json"])
    assert whole.exit_code == 0, whole.output
    recorded = json.loads(whole.output)["signed_off"]
    assert (recorded["decision"], recorded["item_id"], recorded["note"]) == ("accept", None, "reviewed all")
    assert recorded["audit_seq"] > 0
    bad = cli.invoke(app, ["review", "sign-off", b, "--item", "nope", "--decision", "accept", "--note", "x"])
    assert bad.exit_code == 2 and "--item nope: not an item" in bad.output

    report = json.loads(cli.invoke(app, ["review", "report", b, "-f", "json"]).output)
    duos_law = next(c for c in report["cells"] if c["item_id"] == "governing-law" and c["document"]["name"] == DUOS)
    assert duos_law["verdict"] == "non-compliant" and duos_law["reviewed_verdict"] == "compliant"
    assert [s["decision"] for s in duos_law["signoffs"]] == ["override", "accept"]
    markdown = cli.invoke(app, ["review", "report", b, "-f", "md"]).output
    assert "Florida accepted by GC" in markdown and "✘ → ✔" in markdown
    rows = cli.invoke(app, ["review", "report", b, "-f", "csv"]).output.splitlines()
    assert len(rows) == 1 + 9 and "Florida accepted by GC" in next(r for r in rows if DUOS in r and "governing-law" in r)
    shown = cli.invoke(app, ["review", "show", b])
    assert shown.exit_code == 0 and "✘" in shown.output and "*" in shown.output

    sign_offs = list(docket.audit.entries(event_type="sign_off", subject=f"review:{b}"))
    assert [e.payload["decision"] for e in sign_offs] == ["override", "accept"]
    assert sign_offs[0].payload["finding_verdict"] == "non-compliant"


def test_failed_and_vanishing_documents_are_reported_and_the_rest_reviewed(samples_copy: Path, serve, tmp_path: Path) -> None:
    server = serve(lambda title, doc: ADDRESSES_ALL + "compliant")
    docket = _docket(samples_copy, server, concurrency=1)
    broken = tmp_path / "BROKEN_AGREEMENT.pdf"
    broken.write_bytes(b"%PDF-1.4\nthis is not really a pdf")
    removed: list[str] = []

    def on_cell(cell, name: str) -> None:
        if not removed:  # mid-review, another process takes the last document out of the index
            Docket(load_settings(home=samples_copy)).store.remove(DRIVEN, "samples")
            removed.append(DRIVEN)

    refs = [str(SAMPLES / NETGEAR), str(broken), str(tmp_path / "MISSING.pdf"), DUOS, DRIVEN]
    outcome = run_review(docket, parse_checklist(CHECKLIST), collection="samples", documents=refs,
                         hooks=RunHooks(on_cell=on_cell))
    review = outcome.review
    failed = {d.name: d.error for d in review.documents if d.status == "failed"}
    assert set(failed) == {"BROKEN_AGREEMENT.pdf", "MISSING.pdf"}
    assert "failed to ingest" in failed["BROKEN_AGREEMENT.pdf"] and "no such file" in failed["MISSING.pdf"]
    by_name = {d.name: d.sha256 for d in review.ready_documents}
    verdicts = {name: {review.cells[(i, sha)].verdict for i in ("governing-law", "renewal-notice", "termination")}
                for name, sha in by_name.items()}
    assert verdicts[NETGEAR] == verdicts[DUOS] == {"compliant"}
    gone = [c for (i, sha), c in review.cells.items() if sha == by_name[DRIVEN]]
    assert all(c.failed and "no longer in the live index" in c.finding.error for c in gone)
    assert review.completed_at is not None  # every cell recorded, failures included


@pytest.mark.slow  # a subprocess that loads the encoder
def test_resume_after_sigkill_loses_and_duplicates_nothing(samples_copy: Path, serve, tmp_path: Path) -> None:
    server = serve(lambda title, doc: "It is covered [S1].\nVERDICT: compliant", latency_s=0.4)
    checklist = tmp_path / "sample.yaml"
    checklist.write_text(CHECKLIST)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKET_")}
    env |= {"DOCKET_HOME": str(samples_copy), "DOCKET_REASONER": "magistral", "DOCKET_LLM__PROVIDER": "openai-compatible",
            "DOCKET_LLM__BASE_URL": server.base_url, "DOCKET_LLM__MODEL": "magistral-medium-2509",
            "DOCKET_LLM__CONCURRENCY": "1", "HF_HUB_OFFLINE": "1"}
    child = subprocess.Popen([sys.executable, "-m", "pipeline.review", str(checklist), "-c", "samples"],
                             cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    db = samples_copy / "registry.db"
    deadline = time.monotonic() + 120
    recorded = 0
    while time.monotonic() < deadline and child.poll() is None:
        time.sleep(0.1)
        try:
            with sqlite3.connect(db, timeout=5) as conn:
                recorded = conn.execute("SELECT count(*) FROM review_cells").fetchone()[0]
        except sqlite3.OperationalError:  # table not created yet
            continue
        if recorded >= 3:
            child.send_signal(signal.SIGKILL)
            break
    child.wait(30)
    assert child.returncode == -signal.SIGKILL, child.stderr.read().decode()[-2000:]

    settings = load_settings(home=samples_copy, reasoner="magistral", llm=server.llm_settings(provider="openai-compatible", api_key=None))
    docket = Docket(settings)
    outcome = run_review(docket, load_checklist(checklist), collection="samples")
    review = outcome.review
    assert outcome.resumed and outcome.ran <= 9 - 3  # the cells recorded before the kill are not redone
    assert len(review.cells) == 9 and review.completed_at is not None
    entries = _findings(docket, review.id)
    keys = Counter((e.payload["item_id"], e.payload["document"]["sha256"]) for e in entries)
    assert len(entries) == 9 and len(keys) == 9  # no cell lost, none recorded twice
    state = review_state(docket)
    with state.engine.connect() as conn:
        rows = conn.exec_driver_sql("SELECT item_id, doc_sha256, count(*) FROM review_cells GROUP BY 1, 2").all()
    state.close()
    assert len(rows) == 9 and {r[2] for r in rows} == {1}
    assert {c.audit_seq for c in review.cells.values()} == {e.seq for e in entries}
