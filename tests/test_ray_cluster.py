"""Docket on a real two-node Ray cluster (a head and a worker node on this host, one CPU each), with the
registry and the audit log in PostgreSQL, against the local engine on SQLite:

- ingest: the same versions, pages, chunks and vectors (to the bit), also when the driver is SIGKILLed
  mid-run and the same command is run again, and when the worker node dies mid-run (its raylet killed);
- the LLM concurrency limit holds across both nodes (the fake OpenAI-compatible server counts);
- a review and a question batch give the local engine's cells and answers, one audit entry each, and
  a review whose worker node dies mid-run still records every cell exactly once.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import create_engine, func, select
from sqlalchemy.orm import Session

from conftest import DRIVEN, NETGEAR, REPO, SAMPLES
from ingest.models import display_path
from ingest.store import iter_input_files
from test_audit_support import pg_schema_url
from test_ray_support import ray_nodes  # noqa: F401 - the module's cluster fixture
from test_review_magistral import ADDRESSES_ALL, CHECKLIST, ReviewServer

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

SCAN = REPO / "samples" / "scans" / "consulting_agreement_scan.pdf"
FILES = [SAMPLES / NETGEAR, SAMPLES / DRIVEN, SCAN]  # two text PDFs, and a two-page scan: a Ray task a page
OCR = {"dpi": 150}  # enough for the scan, and half the CPU of 300 on a two-core machine


def settings(home: Path, **overrides):
    from pipeline.settings import load_settings

    return load_settings(home=home, ocr=OCR, **overrides)


def ray_settings(home: Path, pg_url: str, address: str, **overrides):
    compute = {"engine": "ray", "address": address, **overrides.pop("compute", {})}
    return settings(home, registry_url=pg_url, audit_url=pg_url, compute=compute, **overrides)


@pytest.fixture(scope="module")
def local_workspace(tmp_path_factory) -> Path:
    """The reference: the same files ingested by the local engine into SQLite."""
    from pipeline.app import Docket
    from pipeline.documents import ingest_documents

    home = tmp_path_factory.mktemp("local")
    report = ingest_documents(Docket(settings(home)), FILES, "deals")
    assert report.count("added") == 3, report.results
    return home


@pytest.fixture(scope="module")
def pg_url():
    yield from pg_schema_url()


@pytest.fixture(scope="module")
def ray_home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("ray")


def registry_rows(url: str) -> dict[str, dict]:
    """Per document name: its versions, pages and chunks as stored, ids left out (they are the database's)."""
    from ingest.registry import ChunkRow, Document, DocumentVersion, PageRow

    engine = create_engine(url)
    out: dict[str, dict] = {}
    with Session(engine) as session:
        for doc in session.execute(select(Document)).scalars():
            versions = session.execute(select(DocumentVersion).where(DocumentVersion.document_id == doc.id)).scalars().all()
            ids = [v.id for v in versions]
            pages = session.execute(
                select(PageRow.version_id, PageRow.number, PageRow.text, PageRow.method, PageRow.confidence, PageRow.spans)
                .where(PageRow.version_id.in_(ids)).order_by(PageRow.version_id, PageRow.number)
            ).all()
            chunks = session.execute(
                select(ChunkRow.page, ChunkRow.char_start, ChunkRow.char_end, ChunkRow.text, ChunkRow.text_sha256,
                       ChunkRow.context, ChunkRow.token_count, ChunkRow.method, ChunkRow.confidence, ChunkRow.boxes,
                       ChunkRow.embedding_model, ChunkRow.embedding)
                .where(ChunkRow.version_id.in_(ids)).order_by(ChunkRow.id)
            ).all()
            out[doc.name] = {
                "versions": [(v.version, v.sha256, v.status, v.page_count) for v in versions],
                "pages": [tuple(p[1:]) for p in pages],
                "chunks": [tuple(c) for c in chunks],
            }
    engine.dispose()
    return out


def assert_same_corpus(local_home: Path, ray_url: str) -> None:
    local = registry_rows(f"sqlite:///{local_home / 'registry.db'}")
    remote = registry_rows(ray_url)
    assert sorted(remote) == sorted(local)
    for name, expected in local.items():
        got = remote[name]
        assert got["versions"] == expected["versions"], name  # one version each: nothing duplicated
        assert got["pages"] == expected["pages"], name
        assert len(got["chunks"]) == len(expected["chunks"]), name
        for mine, theirs in zip(got["chunks"], expected["chunks"]):
            assert mine[:-1] == theirs[:-1], name
            assert mine[-1] == theirs[-1], f"{name}: a vector differs from the local engine's"  # bit for bit


def assert_index_matches_registry(docket) -> None:
    from ingest.registry import ChunkRow

    store = docket.store
    index = store.vectors()
    live = store.live_chunk_ids()
    assert index.count == len(live)
    with store.sessions() as session:
        rows = dict(session.execute(select(ChunkRow.id, ChunkRow.embedding).where(ChunkRow.id.in_(live))).all())
    stored = np.stack([np.frombuffer(rows[i], dtype=np.float32) for i in live])
    held = index.vectors(live)  # chunk id -> its vector in the FAISS index
    assert np.array_equal(np.stack([held[i] for i in live]), stored)


def cli_env(ray_home: Path, pg_url: str, ray_nodes) -> dict[str, str]:
    """The environment of a `docket` process driving the cluster, on the module's PostgreSQL workspace."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKET_")}
    env.update(
        DOCKET_HOME=str(ray_home), DOCKET_REGISTRY_URL=pg_url, DOCKET_AUDIT_URL=pg_url, DOCKET_OCR__DPI="150",
        DOCKET_COMPUTE__ENGINE="ray", DOCKET_COMPUTE__ADDRESS=ray_nodes.address,
        DOCKET_MIGRATIONS__AUTO_UPGRADE="true", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", **ray_nodes.env,
    )
    return env


def test_ingest_on_two_nodes_equals_local_after_a_killed_driver_and_a_dead_worker_node(
    ray_nodes, local_workspace: Path, pg_url: str, ray_home: Path
):
    from pipeline.app import Docket
    from pipeline.documents import ingest_documents

    # 1. `docket ingest` on the cluster, SIGKILLed once its first document is committed.
    env = cli_env(ray_home, pg_url, ray_nodes)
    docket_cli = [sys.executable, "-m", "pipeline.cli", "ingest", *map(str, FILES), "-c", "deals", "--json"]
    driver = subprocess.Popen(docket_cli, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    engine = create_engine(pg_url)
    try:
        deadline = time.monotonic() + 900
        while _documents(engine) < 1:
            assert driver.poll() is None, driver.communicate()
            assert time.monotonic() < deadline, "the Ray ingest committed nothing in 15 minutes"
            time.sleep(0.2)
        driver.kill()
        driver.communicate(timeout=60)
        committed = _documents(engine)
        assert 1 <= committed < 3, "the driver was to be killed mid-run"
    finally:
        if driver.poll() is None:
            driver.kill()
        engine.dispose()

    # 2. The same ingest again (in this process), the worker node dying after the first file it settles.
    docket = Docket(ray_settings(ray_home, pg_url, ray_nodes.address, migrations={"auto_upgrade": True}))
    killed: list[int] = []

    def on_file(result) -> None:
        if not killed:
            killed.append(len(ray_nodes.alive_nodes()))
            ray_nodes.kill_worker_raylet()

    placements: dict[str, str] = {}
    from pipeline.compute.ingest import ingest_on_ray

    report = ingest_on_ray(docket, FILES, "deals", on_file=on_file, placements=placements)
    assert killed == [2]  # both nodes were up when the worker node was killed, mid-run
    assert report.count("failed") == 0, [r.error for r in report.failed]
    assert report.count("unchanged") == committed and report.count("added") == 3 - committed
    assert [r.path for r in report.results] == [display_path(p) for p in iter_input_files(FILES)]  # local's order

    # Nothing lost, nothing duplicated: the local engine's corpus, vectors to the bit.
    assert_same_corpus(local_workspace, pg_url)
    assert_index_matches_registry(docket)
    assert docket.audit.verify().ok

    # 3. Once more: everything is unchanged, nothing is read.
    again = ingest_documents(docket, FILES, "deals")
    assert again.count("unchanged") == 3

    ray_nodes.wait_for_nodes(1)
    ray_nodes.add_worker()  # for the tests after this one


def _documents(engine) -> int:
    from ingest.registry import Document

    try:
        with Session(engine) as session:
            return session.execute(select(func.count(Document.id))).scalar_one()
    except Exception:  # the tables are being created by the driver's first open
        return 0


# -- reviews and question batches ---------------------------------------------------------------------------


class CountingServer(ReviewServer):
    """The review server, counting the chat requests in flight at once: from a request's arrival until
    its reply is sent. Once the reply is written its client may give its slot back and the next call
    arrive while this handler thread is still returning, so the count ends before the reply, not after
    the handler (counted after, a loaded machine showed one call too many that no client made)."""

    def __init__(self, *args, **kwargs):
        self.active = self.peak = 0
        super().__init__(*args, **kwargs)

    def _handler(self):
        fake, base = self, super()._handler()

        class Handler(base):
            def do_POST(self) -> None:
                with fake._lock:
                    fake.active += 1
                    fake.peak = max(fake.peak, fake.active)
                self._in_flight = True
                try:
                    super().do_POST()
                finally:
                    self._done()

            def _send(self, reply) -> None:
                self._done()
                super()._send(reply)

            def _done(self) -> None:
                if getattr(self, "_in_flight", False):
                    self._in_flight = False
                    with fake._lock:
                        fake.active -= 1

        return Handler


def test_the_llm_concurrency_limit_holds_across_the_cluster(ray_nodes, ray_home: Path, pg_url: str):
    from pipeline.app import Docket
    from pipeline.review import parse_checklist, run_review

    server = CountingServer(lambda title, doc: ADDRESSES_ALL + "compliant", latency_s=0.5)
    server.start()
    try:
        llm = server.llm_settings(concurrency=2)
        docket = Docket(ray_settings(ray_home, pg_url, ray_nodes.address, reasoner="magistral", llm=llm))
        # Two actors (one a node) each take llm.concurrency=2 cells at once: four would reach the server
        # at once without the cluster's slots.
        outcome = run_review(docket, parse_checklist(CHECKLIST), collection="deals", documents=[NETGEAR, DRIVEN])
    finally:
        server.stop()
    cells = outcome.review.cells.values()
    assert len(cells) == 6 and {c.verdict for c in cells} == {"compliant"} and not any(c.failed for c in cells)
    assert len(server.chat_requests) == 6
    assert server.peak == 2  # the limit, reached and never passed


def _cells(outcome) -> dict:
    """Each cell's finding, its citations without their chunk ids.

    A chunk id is the registry's surrogate key: on PostgreSQL a transaction rolled back by the killed
    driver of the ingest test still used up sequence values, so the same chunk (same document, page and
    text hash, which stay compared) can have another id there than in the local workspace."""
    names = {d.sha256: d.name for d in outcome.review.documents}
    keep = ("verdict", "basis", "answer", "citations", "status", "failed", "error", "confidence")

    def finding(cell) -> dict:
        kept = {k: cell.finding.get(k) for k in keep}
        kept["citations"] = [{k: v for k, v in c.items() if k != "chunk_id"} for c in kept["citations"] or []]
        return kept

    return {(item, names[sha]): finding(cell) for (item, sha), cell in outcome.review.cells.items()}


def test_review_and_question_batch_on_ray_equal_local_and_survive_a_dead_worker_node(
    ray_nodes, local_workspace: Path, ray_home: Path, pg_url: str, tmp_path: Path
):
    from pipeline.app import Docket
    from pipeline.cli.batch import run_batch
    from pipeline.compute.questions import BatchDefaults
    from pipeline.review import parse_checklist, run_review
    from pipeline.review.runner import FINDING_EVENT, RunHooks

    checklist = parse_checklist(CHECKLIST)
    local = Docket(settings(local_workspace))
    on_ray = Docket(ray_settings(ray_home, pg_url, ray_nodes.address))
    expected = _cells(run_review(local, checklist, collection="deals"))
    assert len(expected) == 9  # three items over three documents

    review = run_review(on_ray, checklist, collection="deals")
    assert _cells(review) == expected
    findings = list(on_ray.audit.entries(event_type=FINDING_EVENT, subject=f"review:{review.review.id}"))
    assert len(findings) == 9 and len({(f.payload["item_id"], f.payload["document"]["sha256"]) for f in findings}) == 9
    seqs = [e.seq for e in on_ray.audit.entries()]
    assert seqs == list(range(1, len(seqs) + 1))  # the shared log's seqs: contiguous
    assert review.review.completed_at is not None

    # A question batch: the local engine's answers, one answer entry each.
    questions = tmp_path / "questions.jsonl"
    questions.write_text(
        '{"id": "law", "question": "Which state\'s law governs the agreement?", "doc": "%s"}\n'
        '{"id": "notice", "question": "How much notice ends the consulting agreement?", "doc": "%s"}\n'
        '{"id": "fee", "question": "What fee does the consultant receive?"}\n' % (NETGEAR, DRIVEN),
        encoding="utf-8",
    )
    answers_before = len(list(on_ray.audit.entries(event_type="answer")))
    rows = {}
    for name, docket in (("local", local), ("ray", on_ray)):
        out = tmp_path / f"{name}.jsonl"
        run_batch(docket, questions, out, BatchDefaults(collection="deals"))
        rows[name] = [json.loads(line) for line in out.read_text().splitlines()]
    keep = ("id", "status", "answer", "grounding", "sources", "error")
    assert [{k: r[k] for k in keep} for r in rows["ray"]] == [{k: r[k] for k in keep} for r in rows["local"]]
    assert len(list(on_ray.audit.entries(event_type="answer"))) == answers_before + 3

    # The same review again as a new one, the worker node dying after the first cell is recorded.
    killed: list[int] = []

    def on_cell(cell, name: str) -> None:
        if not killed:
            killed.append(len(ray_nodes.alive_nodes()))
            ray_nodes.kill_worker_raylet()

    again = run_review(on_ray, checklist, collection="deals", new=True, hooks=RunHooks(on_cell=on_cell))
    assert killed == [2] and again.review.id != review.review.id
    assert _cells(again) == expected  # nothing lost
    redone = list(on_ray.audit.entries(event_type=FINDING_EVENT, subject=f"review:{again.review.id}"))
    assert len(redone) == 9  # nothing recorded twice
    assert on_ray.audit.verify().ok


def _named_corpus(payload: dict) -> str:
    record = payload.get("answer_record", payload)  # a finding carries its answer record
    return record["corpus"]["sha256"]


def test_a_corpus_changed_mid_run_is_one_entry_the_driver_appends_before_the_answers_naming_it(
    ray_nodes, ray_home: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
):
    """Two ingests, each committed while a question batch and a review run on the cluster: the
    answers computed after it name the new corpus, whose entry the driver appends once (though several
    results bring it), before the first answer naming it; workers write nothing; the seqs stay contiguous."""
    from conftest import SAMPLES as CONTRACTS
    from pipeline.app import Docket
    from pipeline.compute import snapshots as snapshot_module
    from pipeline.compute.questions import BatchDefaults, answer_questions
    from pipeline.compute.questions_file import Question
    from pipeline.documents import ingest_documents
    from pipeline.replay.snapshots import CORPUS_EVENT, SETTINGS_EVENT
    from pipeline.review import parse_checklist, run_review
    from pipeline.review.runner import FINDING_EVENT, RunHooks

    duos = "DUOSTECHNOLOGIESGROUP_INC_04_21_2009-EX-10.1-STRATEGIC_ALLIANCE_AGREEMENT.pdf"
    on_ray = Docket(ray_settings(ray_home, pg_url, ray_nodes.address, compute={"max_in_flight": 2}))
    other = Docket(ray_settings(ray_home, pg_url, ray_nodes.address, compute={"engine": "local"}))  # another command
    brought: list[str] = []  # the snapshot subjects results brought back to the driver
    real_before = snapshot_module.DriverSnapshots.before

    def before(self, found):
        brought.extend(s.subject for s in found)
        return real_before(self, found)

    monkeypatch.setattr(snapshot_module.DriverSnapshots, "before", before)
    first_seq = len(list(on_ray.audit.entries())) + 1

    # 1. A question batch; after its first answer, another document is ingested (another collection).
    asks = ["Which state's law governs the agreement?", "How much notice ends the agreement?",
            "What fee does the consultant receive?", "Who are the parties?", "Can the agreement be assigned?",
            "When does the agreement end?"]
    answered: list[int] = []

    def on_answer(question, record) -> None:
        answered.append(record.audit_seq)
        if len(answered) == 1:
            assert ingest_documents(other, [CONTRACTS / duos], "late").count("added") == 1

    questions = [Question(position=i, id=str(i), question=q) for i, q in enumerate(asks, start=1)]
    answer_questions(on_ray, questions, BatchDefaults(collection="deals"), on_answer)
    assert len(answered) == len(asks)

    # 2. A review; after its first cell, one more document is ingested (a PDF made here).
    import pymupdf

    note = tmp_path / "late-note.pdf"
    with pymupdf.open() as pdf:
        pdf.new_page().insert_text((72, 72), "Side letter: the parties extend the term by twelve months.")
        pdf.save(note)
    added: list = []

    def on_cell(cell, name: str) -> None:
        if not added:
            added.append(ingest_documents(other, [note], "late").count("added"))

    review = run_review(on_ray, parse_checklist(CHECKLIST), collection="deals", new=True,
                        hooks=RunHooks(on_cell=on_cell))
    assert added == [1] and len(review.review.cells) == 9 and not any(c.failed for c in review.review.cells.values())

    entries = list(on_ray.audit.entries())
    assert [e.seq for e in entries] == list(range(1, len(entries) + 1))  # contiguous
    run = [e for e in entries if e.seq >= first_seq]
    corpus_seq: dict[str, list[int]] = {}
    for e in entries:
        if e.event_type == CORPUS_EVENT:
            corpus_seq.setdefault(e.payload["corpus_sha256"], []).append(e.seq)
    assert all(len(seqs) == 1 for seqs in corpus_seq.values()), corpus_seq  # one entry per distinct corpus
    settings_named = [e.payload["settings_sha256"] for e in entries if e.event_type == SETTINGS_EVENT]
    assert len(settings_named) == len(set(settings_named))  # one entry per distinct settings, the earlier tests' too
    answers = [e for e in run if e.event_type == "answer" or (e.event_type == FINDING_EVENT
                                                             and e.payload.get("answer_record"))]
    assert len(answers) == len(asks) + 9
    named = [_named_corpus(e.payload) for e in answers]
    (run_settings,) = {(e.payload.get("answer_record") or e.payload)["settings_sha256"] for e in answers}
    (settings_entry,) = [e for e in entries if e.event_type == SETTINGS_EVENT and e.payload["settings_sha256"] == run_settings]
    assert settings_entry.seq < answers[0].seq
    for e, corpus in zip(answers, named):
        assert corpus_seq[corpus][0] < e.seq, f"entry #{e.seq} names a corpus entry written after it"
    assert len(set(named)) == 3, "each ingest was to be seen mid-run"  # before, after the first, after the second
    # The new corpora came back from the workers, with every result naming them, and were written once.
    new_subjects = {f"corpus:{c}" for c in set(named) - {named[0]}}
    assert new_subjects <= set(brought) and len(brought) > len(set(brought))
    assert on_ray.audit.verify().ok


def test_a_review_whose_driver_is_killed_mid_run_continues_when_the_same_command_runs_again(
    ray_nodes, ray_home: Path, pg_url: str, tmp_path: Path
):
    """`docket review run` on the cluster through the fake model, SIGKILLed once a finding is in the shared
    log, then the same command again: every cell recorded exactly once, the review complete."""
    from pipeline.app import Docket
    from pipeline.review.runner import FINDING_EVENT

    checklist = tmp_path / "crash-review.yaml"
    checklist.write_text(CHECKLIST.replace("name: sample-contracts", "name: crash-review"), encoding="utf-8")
    server = ReviewServer(lambda title, doc: ADDRESSES_ALL + "compliant", latency_s=1.0)
    server.start()
    llm = server.llm_settings(concurrency=1)
    env = cli_env(ray_home, pg_url, ray_nodes)
    env.update(
        DOCKET_REASONER="magistral", DOCKET_LLM__PROVIDER=llm.provider, DOCKET_LLM__BASE_URL=llm.base_url,
        DOCKET_LLM__MODEL=llm.model, DOCKET_LLM__API_KEY=llm.api_key.get_secret_value(), DOCKET_LLM__SEED="7",
        DOCKET_LLM__CONCURRENCY="1", DOCKET_LLM__TIMEOUT_S="10",
    )
    command = [sys.executable, "-m", "pipeline.cli", "review", "run", str(checklist), "-c", "deals",
               "--doc", NETGEAR, "--doc", DRIVEN, "--json"]
    docket = Docket(ray_settings(ray_home, pg_url, ray_nodes.address))

    first_seq = len(list(docket.audit.entries())) + 1

    def findings() -> list:  # this test's: the log's other writers are done
        return [e for e in docket.audit.entries(event_type=FINDING_EVENT) if e.seq >= first_seq]

    try:
        driver = subprocess.Popen(command, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 600
            while not findings():
                assert driver.poll() is None, driver.communicate()
                assert time.monotonic() < deadline, "the review on Ray recorded no finding in 10 minutes"
                time.sleep(0.2)
            driver.kill()
            driver.communicate(timeout=60)
        finally:
            if driver.poll() is None:
                driver.kill()
        before = len(findings())
        assert 1 <= before < 6, "the driver was to be killed mid-run"

        again = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, timeout=900)
    finally:
        server.stop()
    assert again.returncode == 0, again.stderr
    shown = json.loads(again.stdout)
    assert shown["resumed"] and shown["ran"] == 6 - before  # the cells not in the log, and only those
    assert shown["summary"]["cells"] == shown["summary"]["expected_cells"] == 6 and not shown["summary"]["failed_cells"]
    recorded = [e for e in findings() if e.payload["review_id"] == shown["review_id"]]
    cells = [(e.payload["item_id"], e.payload["document"]["sha256"]) for e in recorded]
    assert len(cells) == 6 and len(set(cells)) == 6  # every cell once: none lost, none recorded twice
    assert {e.payload["verdict"] for e in recorded} == {"compliant"}
    seqs = [e.seq for e in docket.audit.entries()]
    assert seqs == list(range(1, len(seqs) + 1))
