"""Group commit: the service's appends to the audit log, committed in batches by one writer thread.

Every ask made through the service appends its ``answer`` entry, and each append was its own durable
transaction (SQLite's fsync, or a PostgreSQL commit, and a signed tree head), taken one at a time. At
16 clients the asks queued for that, one commit each. Here a request thread hands its events to one
writer thread and waits; the writer takes everything queued by then and appends it with the log's own
``append_many`` (one transaction, one signed head, one commit), then wakes each waiting request with
its entries. Nothing is held back to make a batch larger: a lone ask is committed at once, and a batch
is whatever queued while the previous one was being committed.

Durability is unchanged: a request gets its entries (its ``audit_seq``) only after the transaction
holding them has committed, and an error when it did not, so no answer leaves the server unrecorded.
One request's events stay together and in order, and each keeps its own actor.

A batch that fails before anything of it is written (the log's size still what this writer's last
commit left) is tried again one request at a time, so an event the log refuses fails its own request
only; a lock timeout, or a failure after which the size has moved (another writer, or a commit whose
outcome is unknown), fails the whole batch with that error and is not tried again, so no entry is
written twice. The size is read only after a failure: every read is statements the writer would wait
for the GIL to run, between the other threads' work.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from audit import AppendedEntry, AuditError, NewEvent
from audit.errors import AuditLockTimeout

if TYPE_CHECKING:
    from audit import AuditLog

MAX_BATCH_EVENTS = 256  # one transaction stays short even when hundreds of asks queued behind a slow commit
_WAKE_CHECK_S = 1.0  # how often a waiting request checks that the writer thread still runs


@dataclass
class _Pending:
    """One request's events, waiting for the writer: settled with its entries or with an error."""

    events: list[NewEvent]
    done: threading.Event = field(default_factory=threading.Event)
    appended: list[AppendedEntry] | None = None
    error: BaseException | None = None

    def settle(self, appended: list[AppendedEntry] | None = None, error: BaseException | None = None) -> None:
        self.appended, self.error = appended, error
        self.done.set()


class GroupCommitLog:
    """An audit log whose appends go through one writer thread in batches; everything else is the log's.

    ``append`` and ``append_many`` take what ``AuditLog``'s take and return the same entries; reads,
    verification, checkpoints and the rest are passed to the wrapped log unchanged."""

    def __init__(self, log: AuditLog, max_batch_events: int = MAX_BATCH_EVENTS) -> None:
        self.log = log
        self.max_batch_events = max_batch_events
        self._queue: queue.SimpleQueue[_Pending | None] = queue.SimpleQueue()
        self._closed = False
        self._waiting = 0
        self._count_lock = threading.Lock()
        self._size: int | None = None  # the log's size after this writer's last commit (None: not known yet)
        self._thread = threading.Thread(target=self._run, name="docket-audit-writer", daemon=True)
        self._thread.start()

    def __getattr__(self, name: str) -> Any:  # only for what this class does not define: the log's own
        return getattr(self.log, name)

    # -- what request threads call -----------------------------------------------------------------------
    def append(
        self, event_type: str, payload: dict[str, Any], *, actor: str, request_id: str | None = None,
        subjects: Sequence[str] = (), status: str | None = None,
    ) -> AppendedEntry:
        if isinstance(subjects, str):  # as AuditLog.append: a string would be taken letter by letter
            raise AuditError("subjects must be a list of strings, not one string")
        return self.append_many([NewEvent(event_type, payload, actor, request_id, tuple(subjects), status)])[0]

    def append_many(self, events: Sequence[NewEvent]) -> list[AppendedEntry]:
        """Append ``events`` in one batch with whatever else is queued; returns once they are committed."""
        events = list(events)
        if not events:
            return []
        if self._closed or threading.current_thread() is self._thread:
            return self.log.append_many(events)
        pending = _Pending(events)
        with self._count_lock:
            self._waiting += 1
        self._queue.put(pending)
        try:
            while not pending.done.wait(_WAKE_CHECK_S):
                if not self._thread.is_alive():
                    raise AuditError("the audit log's writer thread has stopped; restart `docket serve`")
        finally:
            with self._count_lock:
                self._waiting -= 1
        if pending.error is not None:
            raise pending.error
        assert pending.appended is not None
        return pending.appended

    @property
    def waiting(self) -> int:
        """Requests handed to the writer and not answered yet (queued, or in the batch it is committing)."""
        with self._count_lock:
            return self._waiting

    def close(self) -> None:
        """Commit what is queued, then stop the writer; later appends go to the log directly."""
        if self._closed:
            return
        self._closed = True  # first: a request arriving now appends by itself (the log's own lock orders it)
        self._queue.put(None)
        self._thread.join()

    # -- the writer thread ---------------------------------------------------------------------------------
    def _run(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is None:
                return
            batch, count = [first], len(first.events)
            while count < self.max_batch_events:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stopping = True
                    break
                batch.append(item)
                count += len(item.events)
            self._commit(batch)

    def _commit(self, batch: list[_Pending]) -> None:
        if len(batch) == 1:
            self._commit_alone(batch[0])
            return
        if self._size is None:  # once: what "nothing was written" will be compared with
            try:
                self._size = self.log.size
            except Exception as error:  # the log cannot be read: it cannot be written either
                for pending in batch:
                    pending.settle(error=error)
                return
        size_before = self._size
        try:
            appended = self._append(event for pending in batch for event in pending.events)
        except Exception as error:
            if isinstance(error, AuditLockTimeout) or not self._unchanged(size_before):
                for pending in batch:
                    pending.settle(error=error)
            else:  # nothing of it was written: each request alone, so a refused event fails its own only
                for pending in batch:
                    self._commit_alone(pending)
            return
        start = 0
        for pending in batch:
            pending.settle(appended[start:start + len(pending.events)])
            start += len(pending.events)

    def _commit_alone(self, pending: _Pending) -> None:
        try:
            pending.settle(self._append(pending.events))
        except Exception as error:
            pending.settle(error=error)

    def _append(self, events) -> list[AppendedEntry]:
        appended = self.log.append_many(list(events))
        self._size = appended[-1].seq
        return appended

    def _unchanged(self, size_before: int) -> bool:
        """Whether the log is as this writer's last commit left it (False when that is not known)."""
        try:
            return self.log.size == size_before
        except Exception:
            return False
