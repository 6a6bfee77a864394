"""Many writers at once, and writers killed mid-append, on SQLite (WAL) and PostgreSQL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from test_audit_support import db_url, keys_dir  # noqa: F401

from audit import AuditLog

REPO = Path(__file__).resolve().parents[1]
PROCESSES, THREADS, APPENDS = 8, 3, 6

WRITER = textwrap.dedent(
    """
    import sys, threading
    from pathlib import Path
    from audit import AuditLog

    url, keys, tag, threads, appends = sys.argv[1], Path(sys.argv[2]), sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
    log = AuditLog.open(url, keys, checkpoint_every=20)

    def work(thread):
        for i in range(appends):
            log.append("answer", {"writer": tag, "thread": thread, "i": i}, actor=tag, request_id=f"{tag}-{thread}-{i}")

    workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for w in workers: w.start()
    for w in workers: w.join()
    """
)

# Stops a writer inside its append transaction and waits to be killed. The pause is installed with
# SQLAlchemy's own events, from outside the audit package, at the point named on the command line.
STALLED_WRITER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from sqlalchemy import event
    from audit import AuditLog

    url, keys, point = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
    log = AuditLog.open(url, keys)

    def stall():
        print("STALLED", flush=True)
        time.sleep(120)

    if point == "after_entry_insert":
        @event.listens_for(log.engine, "after_cursor_execute")
        def after(conn, cursor, statement, *args):
            if statement.startswith("INSERT INTO audit_entries"):
                stall()
    else:
        @event.listens_for(log.engine, "commit")
        def before_commit(conn):
            stall()

    log.append("answer", {"doomed": True}, actor="doomed", request_id="doomed")
    """
)


def _python(*args: str) -> list[str]:
    return [sys.executable, "-c", *args]


@pytest.mark.slow
def test_many_processes_and_threads_append_a_contiguous_chain(db_url: str, keys_dir: Path) -> None:
    AuditLog.open(db_url, keys_dir).close()  # schema first, so the writers race on appends only
    writers = [
        subprocess.Popen(
            _python(WRITER, db_url, str(keys_dir), f"w{p}", str(THREADS), str(APPENDS)),
            cwd=REPO, stderr=subprocess.PIPE, text=True,
        )
        for p in range(PROCESSES)
    ]
    for writer in writers:
        _, err = writer.communicate(timeout=300)
        assert writer.returncode == 0, err
    with AuditLog.open(db_url, keys_dir) as log:
        all_entries = list(log.entries())
        seqs = [e.seq for e in all_entries]
        assert seqs == list(range(1, len(seqs) + 1))
        requests = [e.request_id for e in all_entries if e.event_type == "answer"]
        expected = {f"w{p}-{t}-{i}" for p in range(PROCESSES) for t in range(THREADS) for i in range(APPENDS)}
        assert sorted(requests) == sorted(expected)  # every request exactly once
        assert any(e.event_type == "checkpoint" for e in all_entries)
        report = log.verify()
        assert report.ok, report.problem
        assert report.size == len(seqs)


@pytest.mark.parametrize("point", ["after_entry_insert", "before_commit"])
def test_writer_killed_mid_append_leaves_no_gap(db_url: str, keys_dir: Path, point: str) -> None:
    with AuditLog.open(db_url, keys_dir) as log:
        log.append("answer", {"n": 1}, actor="alice")
        log.checkpoint()
        before = log.size
    writer = subprocess.Popen(
        _python(STALLED_WRITER, db_url, str(keys_dir), point), cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    try:
        assert writer.stdout is not None and writer.stdout.readline().strip() == "STALLED"
    finally:
        os.kill(writer.pid, signal.SIGKILL)
        writer.wait(timeout=30)
    assert writer.returncode == -signal.SIGKILL
    with AuditLog.open(db_url, keys_dir) as log:
        assert log.size == before
        assert not list(log.entries(actor="doomed"))
        after = log.append("answer", {"n": 2}, actor="alice")
        assert after.seq == before + 1
        report = log.verify()
        assert report.ok and report.size == before + 1, report.problem
