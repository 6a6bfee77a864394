"""Threads of one process appending to one log (the service's concurrent asks) queue on a thread lock
before SQLite's (``AuditLog._one_writer``): a contiguous chain, and a writer kept waiting by another
thread still gives up after ``lock_timeout`` with the one-line error, then the next append goes on."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from audit import AuditLog
from audit.errors import AuditLockTimeout

THREADS, EACH = 12, 5


def test_concurrent_threads_append_one_contiguous_verified_chain(tmp_path: Path) -> None:
    with AuditLog.open(f"sqlite:///{tmp_path / 'audit.db'}", tmp_path / "keys") as log:
        barrier = threading.Barrier(THREADS)

        def work(n: int) -> list[int]:
            barrier.wait()
            return [log.append("answer", {"thread": n, "i": i}, actor=f"token:user{n}").seq for i in range(EACH)]

        with ThreadPoolExecutor(THREADS) as pool:
            seqs = [seq for got in pool.map(work, range(THREADS)) for seq in got]
        assert sorted(seqs) == list(range(1, THREADS * EACH + 1))
        for seq in seqs:  # each entry under the actor of the thread that wrote it
            entry = log.get(seq)
            assert entry.actor == f"token:user{entry.payload['thread']}"
        assert log.verify().ok


def test_a_writer_waiting_on_another_thread_gives_up_after_lock_timeout(tmp_path: Path) -> None:
    with AuditLog.open(f"sqlite:///{tmp_path / 'audit.db'}", tmp_path / "keys", lock_timeout=0.5) as log:
        log.append("answer", {"q": "first"}, actor="alice")
        holding, release = threading.Event(), threading.Event()

        def hold() -> None:
            with log._locked():  # a write transaction stuck in another thread
                holding.set()
                release.wait(30)

        holder = threading.Thread(target=hold)
        holder.start()
        try:
            assert holding.wait(30)
            began = time.monotonic()
            with pytest.raises(AuditLockTimeout) as caught:
                log.append("answer", {"q": "blocked"}, actor="bob")
            assert 0.4 < time.monotonic() - began < 20
            assert "audit.lock_timeout" in str(caught.value) and "\n" not in str(caught.value)
        finally:
            release.set()
            holder.join(30)
        after = log.append("answer", {"q": "after"}, actor="bob")
        assert after.seq == 2 and log.get(2).payload == {"q": "after"} and log.verify().ok
