"""Group commit (pipeline/service/group_commit.py): appends from many threads committed in batches by one
writer thread, on SQLite and PostgreSQL; each request answered only after its batch committed.

The writer is made to batch deterministically by holding the log's write lock from another connection
(as another process appending would) while the requests queue; nothing in the log is faked. A failed
commit is injected with a database trigger that refuses inserts into the entries table.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, func, select, text
from test_audit_support import db_url, keys_dir  # noqa: F401 (fixtures)

from audit import AuditError, AuditLog, NewEvent
from audit.schema import signed_heads
from pipeline.service.group_commit import GroupCommitLog

REQUESTS = 16
QUEUE_TIMEOUT_S = 120.0


@contextmanager
def write_lock_held(url: str) -> Iterator[None]:
    """The audit log's write lock, held by another connection until the block ends."""
    if url.startswith("sqlite"):
        conn = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            conn.execute("ROLLBACK")
            conn.close()
        return
    engine = create_engine(url)
    try:
        with engine.connect() as conn, conn.begin() as transaction:
            conn.execute(text("SELECT size FROM audit_head WHERE id = 1 FOR UPDATE"))
            yield
            transaction.rollback()
    finally:
        engine.dispose()


@contextmanager
def inserts_refused(url: str) -> Iterator[None]:
    """A trigger that makes every insert into the entries table fail, as a failing commit would."""
    engine = create_engine(url)
    sqlite = url.startswith("sqlite")
    with engine.begin() as conn:
        if sqlite:
            conn.exec_driver_sql("CREATE TRIGGER injected_failure BEFORE INSERT ON audit_entries "
                                 "BEGIN SELECT RAISE(ABORT, 'injected failure'); END")
        else:
            conn.exec_driver_sql("CREATE FUNCTION injected_failure() RETURNS trigger AS $$ BEGIN "
                                 "RAISE EXCEPTION 'injected failure'; END $$ LANGUAGE plpgsql")
            conn.exec_driver_sql("CREATE TRIGGER injected_failure BEFORE INSERT ON audit_entries "
                                 "FOR EACH ROW EXECUTE FUNCTION injected_failure()")
    try:
        yield
    finally:
        with engine.begin() as conn:
            conn.exec_driver_sql("DROP TRIGGER injected_failure" + ("" if sqlite else " ON audit_entries"))
            if not sqlite:
                conn.exec_driver_sql("DROP FUNCTION injected_failure()")
        engine.dispose()


def queued_behind_the_lock(log: GroupCommitLog, url: str, work: list[Callable[[], object]]) -> list[Future]:
    """Run ``work`` on threads while the write lock is held; release it once all of them have been
    handed to the writer (it holds the first batch it took behind the lock, the rest wait in its queue)."""
    pool = ThreadPoolExecutor(len(work))
    with write_lock_held(url):
        futures = [pool.submit(job) for job in work]
        deadline = time.monotonic() + QUEUE_TIMEOUT_S
        while log.waiting < len(work) and not any(f.done() for f in futures):
            assert time.monotonic() < deadline, f"only {log.waiting} of {len(work)} appends reached the writer"
            time.sleep(0.01)
    pool.shutdown(wait=True)
    return futures


def heads(url: str) -> int:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(signed_heads)).scalar_one()
    finally:
        engine.dispose()


def event(actor: str, n: int, **payload) -> NewEvent:
    return NewEvent("answer", {"question": f"q{n}", **payload}, actor, f"req-{actor}-{n}", (f"doc-{n % 3}",), "answered")


def test_queued_appends_commit_in_one_batch_contiguous_with_their_actors(db_url: str, keys_dir: Path) -> None:
    log = AuditLog.open(db_url, keys_dir=keys_dir)
    log.append("settings", {"first": True}, actor="setup")
    group = GroupCommitLog(log)
    heads_before, size_before = heads(db_url), log.size
    try:
        work = [lambda i=i: group.append_many([event(f"token:user{i}", 0), event(f"token:user{i}", 1)])
                for i in range(REQUESTS)]
        results = [f.result() for f in queued_behind_the_lock(group, db_url, work)]
        # Each request's two events are next to each other, the batch has no gap, and each names its actor.
        seqs = sorted(entry.seq for appended in results for entry in appended)
        assert seqs == list(range(size_before + 1, size_before + 2 * REQUESTS + 1))
        for i, (first, second) in enumerate(results):
            assert second.seq == first.seq + 1
            assert log.get(first.seq).actor == log.get(second.seq).actor == f"token:user{i}"
        # Queued while the lock was held: the writer's first batch, then all the rest in one more.
        assert heads(db_url) - heads_before <= 2
        assert log.verify().ok
    finally:
        group.close()
        log.close()


def test_an_event_the_log_refuses_fails_its_own_request_only(db_url: str, keys_dir: Path) -> None:
    log = AuditLog.open(db_url, keys_dir=keys_dir)
    group = GroupCommitLog(log)
    try:
        bad = REQUESTS // 2
        work = [lambda i=i: group.append("answer", {"score": 0.5} if i == bad else {"i": i}, actor=f"token:user{i}")
                for i in range(REQUESTS)]
        futures = queued_behind_the_lock(group, db_url, work)
        with pytest.raises(TypeError, match="float"):
            futures[bad].result()
        good = [f.result() for i, f in enumerate(futures) if i != bad]
        assert sorted(e.seq for e in good) == list(range(1, REQUESTS))
        assert log.size == REQUESTS - 1 and log.verify().ok
    finally:
        group.close()
        log.close()


def test_a_failed_commit_answers_no_request_and_records_nothing(db_url: str, keys_dir: Path) -> None:
    log = AuditLog.open(db_url, keys_dir=keys_dir)
    log.append("settings", {"first": True}, actor="setup")
    group = GroupCommitLog(log)
    try:
        with inserts_refused(db_url):
            work = [lambda i=i: group.append("answer", {"i": i}, actor=f"token:user{i}") for i in range(REQUESTS)]
            futures = queued_behind_the_lock(group, db_url, work)
            for future in futures:
                with pytest.raises(AuditError, match="injected failure"):
                    future.result()
            assert log.size == 1
        assert group.append("answer", {"after": True}, actor="token:user0").seq == 2  # the writer goes on
        assert log.verify().ok
    finally:
        group.close()
        log.close()


def test_close_commits_what_is_queued_then_appends_go_straight_to_the_log(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    log = AuditLog.open(url, keys_dir=tmp_path / "keys")
    group = GroupCommitLog(log)
    work = [lambda i=i: group.append("answer", {"i": i}, actor="token:a") for i in range(4)]
    with ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(job) for job in work]
        done = [f.result().seq for f in futures]
    group.close()
    assert sorted(done) == [1, 2, 3, 4]
    assert group.append("answer", {"closed": True}, actor="token:a").seq == 5
    assert not any(t.name == "docket-audit-writer" and t.is_alive() for t in threading.enumerate())
    log.close()


# -- through a real `docket serve` -------------------------------------------------------------------------------
def test_asks_whose_entries_cannot_be_committed_get_a_json_error_and_leave_no_entry(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    from service_server import COLLECTION, add_users, copy_workspace, ingested_template, start_server

    home = copy_workspace(ingested_template(tmp_path_factory.getbasetemp()), tmp_path / "home")
    tokens = add_users(home)
    server = start_server(home, tmp_path / "serve.log", DOCKET_SERVICE__RATE_LIMIT_PER_MINUTE="10000")
    server.tokens = tokens
    url = f"sqlite:///{home / 'audit.db'}"
    question = {"question": "How much notice ends the agreement?", "collection": COLLECTION}
    try:
        with server.client("reader") as reader:
            first = reader.post("/ask", json=question)  # the settings and corpus entries are written with it
        assert first.status_code == 200, first.text
        log = AuditLog.open(url, create=False)
        size = log.size
        barrier = threading.Barrier(REQUESTS)

        def ask() -> httpx.Response:
            with server.client("reader") as client:
                barrier.wait()
                return client.post("/ask", json=question)

        with inserts_refused(url):
            with ThreadPoolExecutor(REQUESTS) as pool:
                refused = list(pool.map(lambda _: ask(), range(REQUESTS)))
            with server.client("reader") as reader, reader.stream("POST", "/ask/stream", json=question) as streamed:
                lines = list(streamed.iter_lines())
            # A stream has started before the ask runs: its last event is the error, and no answer event came.
            assert "event: answer" not in lines and lines[-3] == "event: error", lines[-4:]
            assert '"audit_unavailable"' in lines[-2] and "injected" not in lines[-2], lines[-2]
        for response in refused:
            assert response.status_code == 503, response.text
            error = response.json()["error"]
            assert error["code"] == "audit_unavailable" and "not recorded" in error["message"], error
            assert "injected" not in response.text  # the database's words stay in the server's log
        assert log.size == size  # nothing of any of them was written
        with server.client("reader") as reader:
            after = reader.post("/ask", json=question)
        assert after.status_code == 200 and after.json()["audit_seq"] == size + 1, after.text
        assert log.get(size + 1).actor == "token:reader" and log.verify().ok
        log.close()
        assert server.alive()
    finally:
        server.stop()
