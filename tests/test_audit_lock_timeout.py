"""A writer that cannot take the log's lock within `lock_timeout` fails with one line naming the database
and who holds the lock, on SQLite and PostgreSQL, through the API and through both CLIs.

The lock is held the way a stuck writer holds it: on SQLite another process in `BEGIN IMMEDIATE`, on
PostgreSQL another session with the head row `FOR UPDATE` (idle in its transaction).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url
from test_audit_support import db_url, fill, keys_dir  # noqa: F401

from audit import AuditLog
from audit.errors import AuditLockTimeout

REPO = Path(__file__).resolve().parents[1]
HOLDER_APP = "docket-lock-holder"
# Generous: the timeout is 1 s; the bound only proves the wait ends (PostgreSQL waited forever before).
BOUND_SECONDS = 20


@contextmanager
def lock_held(url: str) -> Iterator[None]:
    """The log's write lock held by someone else until the block ends."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        holder = subprocess.Popen(
            [
                sys.executable, "-c",
                "import sqlite3, sys\n"
                f"c = sqlite3.connect({parsed.database!r}, isolation_level=None)\n"
                "c.execute('BEGIN IMMEDIATE')\nprint('held', flush=True)\nsys.stdin.read()\n",
            ],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        try:
            assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
            yield
        finally:
            assert holder.stdin is not None
            holder.stdin.close()
            holder.wait(timeout=30)
        return
    engine = create_engine(parsed.update_query_dict({"application_name": HOLDER_APP}))
    try:
        with engine.connect() as conn:
            transaction = conn.begin()
            conn.exec_driver_sql("SELECT size FROM audit_head WHERE id = 1 FOR UPDATE").all()
            try:
                yield
            finally:
                transaction.rollback()
    finally:
        engine.dispose()


def _named_holder(url: str, message: str) -> None:
    """The message names the database and, where it can be known, the holder."""
    parsed = make_url(url)
    assert "\n" not in message
    assert "lock_timeout" in message
    if parsed.get_backend_name() == "sqlite":
        assert f"another process holds the write lock on {parsed.database}" in message
        if Path("/proc/locks").exists():
            assert "held by pid " in message
    else:
        assert "127.0.0.1:5432/test" in message
        assert f"application '{HOLDER_APP}'" in message and "idle in transaction since " in message
        assert "pid " in message and "client 127.0.0.1" in message


def test_append_gives_up_after_lock_timeout_naming_the_holder(db_url: str, keys_dir: Path) -> None:
    with AuditLog.open(db_url, keys_dir, lock_timeout=1) as log:
        fill(log, 2)
        with lock_held(db_url):
            began = time.monotonic()
            with pytest.raises(AuditLockTimeout) as caught:
                log.append("answer", {"q": "blocked"}, actor="alice")
            waited = time.monotonic() - began
        assert 0.5 < waited < BOUND_SECONDS
        _named_holder(db_url, str(caught.value))
        # Nothing half-written: once the lock is free the next append takes the next seq.
        appended = log.append("answer", {"q": "after"}, actor="alice")
        assert log.get(appended.seq).payload == {"q": "after"}
        assert log.verify().ok


def test_opening_for_writing_gives_up_too(db_url: str, keys_dir: Path) -> None:
    AuditLog.open(db_url, keys_dir).close()
    with lock_held(db_url):
        began = time.monotonic()
        try:
            # SQLite: opening for writing takes the write lock (it may create or upgrade the schema).
            log = AuditLog.open(db_url, keys_dir, lock_timeout=1)
        except AuditLockTimeout as error:
            _named_holder(db_url, str(error))
        else:
            with log, pytest.raises(AuditLockTimeout) as caught:
                log.checkpoint()
            _named_holder(db_url, str(caught.value))
        assert time.monotonic() - began < BOUND_SECONDS


def test_lock_timeout_must_be_positive(db_url: str) -> None:
    with pytest.raises(Exception, match="lock_timeout must be a positive number of seconds"):
        AuditLog.open(db_url, lock_timeout=0)


def _one_error_line(proc: subprocess.CompletedProcess[str], url: str) -> None:
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ")
    _named_holder(url, lines[0])


def test_python_m_audit_prints_one_line_and_exits_1(db_url: str, keys_dir: Path) -> None:
    with AuditLog.open(db_url, keys_dir) as log:
        fill(log, 1)
    command = [
        sys.executable, "-m", "audit", "--db", db_url, "--keys", str(keys_dir), "--lock-timeout", "1",
        "annotate", "1", "--decision", "approve", "--note", "fine",
    ]
    with lock_held(db_url):
        began = time.monotonic()
        proc = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=120, check=False)
        assert time.monotonic() - began < BOUND_SECONDS + 10  # interpreter start-up included
    _one_error_line(proc, db_url)


def test_docket_cli_uses_the_audit_lock_timeout_setting(db_url: str, home: Path) -> None:
    env = {**os.environ, "DOCKET_AUDIT__LOCK_TIMEOUT": "1", "COLUMNS": "400"}
    if not db_url.startswith("sqlite"):
        env["DOCKET_AUDIT_URL"] = db_url
    url = db_url if not db_url.startswith("sqlite") else f"sqlite:///{home / 'audit.db'}"
    docket = [sys.executable, "-m", "pipeline.cli"]
    with AuditLog.open(url, home / "keys") as log:
        fill(log, 1)
    with lock_held(url):
        proc = subprocess.run(
            [*docket, "audit", "annotate", "1", "--decision", "approve", "--note", "fine"],
            capture_output=True, text=True, cwd=REPO, env=env, timeout=120, check=False,
        )
    _one_error_line(proc, url)
