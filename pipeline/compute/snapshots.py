"""The settings and corpus entries of a run on Ray: written by the driver alone, once each.

An answer (a question's, a review cell's) names by hash the settings and the live corpus it was computed
over, and ``ask`` appends those two entries first when the log lacks them (pipeline/replay/snapshots.py).
On Ray:

- the driver appends both before the workers start (``write_first``) and hands the workers their subjects;
- each worker's Docket gets a ``SnapshotLog`` where its audit log would be: ``ask``'s lookup finds there
  the entries the driver wrote, and an entry ``ask`` would append (the corpus changed during the run: an
  ingest committed meanwhile) is kept there instead of written;
- a worker returns its result with the kept entries the result names (``WorkerResult``); the driver
  appends each that the log lacks, once per distinct snapshot, before the entry that names it
  (``DriverSnapshots.before``).

So workers never write to the audit log (its signing key stays on the driver's host), a snapshot seen by
several workers is one entry, and every entry of the run is the driver's, in the order it recorded them.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from pipeline.replay.snapshots import (
    CORPUS_EVENT, SETTINGS_EVENT, CorpusSnapshot, SnapshotError, commit_snapshots, corpus_snapshot, find_entry,
    settings_sha256, sha256_text,
)


@dataclass(frozen=True)
class Snapshot:
    """A settings or corpus entry a worker's ``ask`` would have appended."""

    event_type: str
    subject: str
    payload: dict[str, Any]
    request_id: str | None


@dataclass
class WorkerResult:
    """What a worker returns for one item: the answer record or finding, and the snapshots it names that
    the driver did not write before the run."""

    value: Any
    snapshots: list[Snapshot] = field(default_factory=list)


def named_subjects(answer_payload: dict[str, Any] | None) -> list[str]:
    """The snapshot subjects an answer record's payload names (none for a cell that asked nothing)."""
    if not answer_payload:
        return []
    subjects = []
    if answer_payload.get("settings_sha256"):
        subjects.append(f"settings:{answer_payload['settings_sha256']}")
    corpus = answer_payload.get("corpus") or {}
    if corpus.get("sha256"):
        subjects.append(f"corpus:{corpus['sha256']}")
    return subjects


class SnapshotLog:
    """A worker's stand-in for the audit log, with just what ``commit_snapshots`` calls: ``entries`` finds
    the entries the driver wrote; ``append_many`` keeps the others for the driver."""

    def __init__(self, written: Iterable[str]):
        self.written = frozenset(written)
        self.kept: dict[str, Snapshot] = {}
        self._lock = threading.Lock()  # a worker takes several items at once, on threads

    def entries(self, event_type: str | None = None, subject: str | None = None, **_: Any) -> Iterator[str]:
        if subject in self.written:
            yield subject

    def append_many(self, events) -> list:
        with self._lock:
            for event in events:
                subject = event.subjects[0]
                self.kept.setdefault(subject, Snapshot(event.event_type, subject, event.payload, event.request_id))
        return []

    def append(self, *args: Any, **kwargs: Any):
        raise RuntimeError("a Ray worker records nothing in the audit log; the driver does")

    def result(self, value: Any, answer_payload: dict[str, Any] | None) -> WorkerResult:
        """``value`` with the kept snapshots ``answer_payload`` names."""
        with self._lock:
            return WorkerResult(value, [self.kept[s] for s in named_subjects(answer_payload) if s in self.kept])


def write_first(docket) -> frozenset[str]:
    """Append, from the driver, the settings and corpus entries the run's answers will name (unless the log
    has them); their subjects, which the workers are given."""
    s = docket.settings
    corpus = corpus_snapshot(docket.store)
    commit_snapshots(docket.audit, s.actor, s, corpus)
    return frozenset({f"settings:{settings_sha256(s)}", f"corpus:{corpus.sha256}"})


def check_content(snapshot: Snapshot) -> None:
    """A snapshot's content must hash to the name it carries: the driver signs what it appends."""
    _, _, digest = snapshot.subject.partition(":")
    if snapshot.event_type == SETTINGS_EVENT:
        text = snapshot.payload.get("settings")
        ok = isinstance(text, str) and sha256_text(text) == digest and snapshot.payload.get("settings_sha256") == digest
    elif snapshot.event_type == CORPUS_EVENT:
        try:
            ok = CorpusSnapshot.from_payload(snapshot.payload, 0).sha256 == digest
        except SnapshotError:
            ok = False
    else:
        ok = False
    if not ok:
        shown = json.dumps(snapshot.payload, sort_keys=True)[:80]
        raise SnapshotError(f"a Ray worker's {snapshot.event_type} snapshot {snapshot.subject[:20]} does not hash to its name ({shown})")


class DriverSnapshots:
    """The driver's side: the snapshot subjects in the log, and the appending of those a worker brings."""

    def __init__(self, docket, written: Iterable[str]):
        self.docket = docket
        self.written = set(written)

    def before(self, snapshots: list[Snapshot]) -> None:
        """Append the snapshots the log lacks (one entry each), before the answer or finding naming them."""
        from audit import NewEvent

        missing = []
        for snapshot in snapshots:
            if snapshot.subject in self.written or any(m.subject == snapshot.subject for m in missing):
                continue
            check_content(snapshot)
            if find_entry(self.docket.audit, snapshot.event_type, snapshot.subject) is None:
                missing.append(snapshot)
            else:
                self.written.add(snapshot.subject)
        if missing:
            actor = self.docket.settings.actor
            self.docket.audit.append_many([
                NewEvent(m.event_type, m.payload, actor, m.request_id, (m.subject,), "snapshot") for m in missing
            ])
            self.written.update(m.subject for m in missing)
