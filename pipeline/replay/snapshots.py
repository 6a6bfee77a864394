"""What a replay needs that an answer entry only names: the resolved settings and the corpus it searched.

An answer entry carries its ``config_hash`` and a ``corpus`` reference (payload format 2). Both name
content that is written to the audit log once, as its own entry, and found again by its hash:

- a ``settings`` entry, subject ``settings:H``: ``{"settings_sha256": H, "settings": TEXT}``, where TEXT
  is the canonical JSON of the public settings (secrets masked, ``DocketSettings.public_dict``) without
  ``actor``, and H = SHA-256(TEXT) is the answer's ``settings_sha256``. The actor is left out because it
  answers nothing (the entry names it anyway) and the service runs every user on the same settings under
  their own actor: one entry per configuration, not per user. (``config_hash`` stays what it was, the
  hash of the public settings with the actor.) The text is kept as a string, not as an object: the log
  keeps floats out of its payloads, and the text is what the hash covers.
- a ``corpus`` entry, subject ``corpus:C``: ``{"corpus_sha256": C, "generation": G, "versions": [[version
  id, document id, version, document SHA-256, chunks], ...]}``, the document versions live at index
  generation G (every collection: BM25's statistics are the whole live corpus's), C = SHA-256 of the
  canonical JSON of that list.

A reader checks the hash of what it finds, so an entry whose content was altered is not used.
"""

from __future__ import annotations

import hashlib
import json
import threading
import weakref
from contextlib import closing
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

from ingest.registry import ChunkRow, DocumentVersion, IndexState

if TYPE_CHECKING:
    from audit import AuditLog
    from ingest.store import DocumentStore
    from pipeline.settings import DocketSettings

SETTINGS_EVENT = "settings"
CORPUS_EVENT = "corpus"
# Answer payloads reference these snapshots from format 2 on (pipeline.records.ANSWER_PAYLOAD_VERSION).


class SnapshotError(ValueError):
    """A snapshot entry whose content does not match its hash (the message names the entry)."""


def settings_text(settings: DocketSettings) -> str:
    """The canonical JSON of the public settings without the actor (``DocketSettings.config_hash``'s
    serialisation, of the same dict less ``actor``)."""
    public = {k: v for k, v in settings.public_dict().items() if k != "actor"}
    return json.dumps(public, sort_keys=True, separators=(",", ":"), default=str)


def settings_sha256(settings: DocketSettings) -> str:
    return sha256_text(settings_text(settings))


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class CorpusVersion:
    version_id: int
    document_id: int
    version: int
    sha256: str
    chunks: int

    def row(self) -> list[Any]:
        return [self.version_id, self.document_id, self.version, self.sha256, self.chunks]


@dataclass(frozen=True)
class CorpusSnapshot:
    """The live document versions at one index generation, and their chunk counts."""

    sha256: str
    generation: int
    versions: tuple[CorpusVersion, ...]

    @property
    def chunks(self) -> int:
        return sum(v.chunks for v in self.versions)

    def reference(self) -> dict[str, Any]:
        """What an answer record carries (its ``corpus`` field)."""
        return {"sha256": self.sha256, "generation": self.generation, "versions": len(self.versions),
                "chunks": self.chunks}

    def payload(self) -> dict[str, Any]:
        return {"corpus_sha256": self.sha256, "generation": self.generation,
                "versions": [v.row() for v in self.versions]}

    @classmethod
    def of(cls, generation: int, versions: list[CorpusVersion]) -> CorpusSnapshot:
        ordered = tuple(sorted(versions, key=lambda v: v.version_id))
        return cls(corpus_digest(ordered), generation, ordered)

    @classmethod
    def from_payload(cls, payload: dict[str, Any], seq: int) -> CorpusSnapshot:
        try:
            versions = tuple(CorpusVersion(int(a), int(b), int(c), str(d), int(e)) for a, b, c, d, e in payload["versions"])
            claimed, generation = str(payload["corpus_sha256"]), int(payload["generation"])
        except (KeyError, TypeError, ValueError) as exc:
            raise SnapshotError(f"corpus entry #{seq}: not a corpus snapshot ({exc})") from None
        if corpus_digest(versions) != claimed:
            raise SnapshotError(f"corpus entry #{seq}: its versions do not hash to {claimed[:12]}; it was altered")
        return cls(claimed, generation, versions)


def corpus_digest(versions: tuple[CorpusVersion, ...] | list[CorpusVersion]) -> str:
    return sha256_text(json.dumps([v.row() for v in versions], separators=(",", ":")))


# One snapshot per store object and generation: an ask reads the generation anyway, and the list is
# read again only when an ingest or removal has changed it.
_corpus_cache: weakref.WeakKeyDictionary[Any, CorpusSnapshot] = weakref.WeakKeyDictionary()


def corpus_snapshot(store: DocumentStore) -> CorpusSnapshot:
    """The live versions now. Read between two reads of the generation, again if an ingest committed
    in between (SQLite runs each SELECT in its own snapshot, so one session is not one view)."""
    for _ in range(5):
        with store.sessions() as session:
            generation = session.get(IndexState, 1, populate_existing=True).generation
            cached = _corpus_cache.get(store)
            if cached is not None and cached.generation == generation:
                return cached
            rows = session.execute(
                select(DocumentVersion.id, DocumentVersion.document_id, DocumentVersion.version,
                       DocumentVersion.sha256, func.count(ChunkRow.id))
                .outerjoin(ChunkRow, ChunkRow.version_id == DocumentVersion.id)
                .where(DocumentVersion.status == "current")
                .group_by(DocumentVersion.id, DocumentVersion.document_id, DocumentVersion.version, DocumentVersion.sha256)
            ).all()
            after = session.get(IndexState, 1, populate_existing=True).generation
        if after == generation:
            snapshot = CorpusSnapshot.of(generation, [CorpusVersion(*row) for row in rows])
            _corpus_cache[store] = snapshot
            return snapshot
    raise RuntimeError("the index generation kept changing while the live documents were read; try again")


# Subjects known to be in each log (this process wrote or found them): looked up once per process.
_written: weakref.WeakKeyDictionary[Any, set[str]] = weakref.WeakKeyDictionary()
_lock = threading.Lock()  # review cells ask on worker threads: one check-then-append at a time


def commit_snapshots(audit: AuditLog, actor: str, settings: DocketSettings, corpus: CorpusSnapshot | None,
                     request_id: str | None = None) -> None:
    """Append the settings and corpus entries an answer is about to reference, unless the log has them."""
    from audit import NewEvent

    text = settings_text(settings)
    wanted = [(SETTINGS_EVENT, f"settings:{sha256_text(text)}",
               lambda: {"settings_sha256": sha256_text(text), "settings": text})]
    if corpus is not None:
        wanted.append((CORPUS_EVENT, f"corpus:{corpus.sha256}", corpus.payload))
    with _lock:
        known = _written.setdefault(audit, set())
        events = [
            NewEvent(event_type, make(), actor, request_id, (subject,), "snapshot")
            for event_type, subject, make in wanted
            if subject not in known and find_entry(audit, event_type, subject) is None
        ]
        if events:
            audit.append_many(events)
        known.update(subject for _, subject, _ in wanted)


def find_entry(audit: AuditLog, event_type: str, subject: str):
    """The first entry of ``event_type`` naming ``subject``, or None."""
    with closing(audit.entries(event_type=event_type, subject=subject)) as found:
        return next(found, None)


def stored_settings(audit: AuditLog, sha256: str) -> tuple[dict[str, Any], int] | None:
    """(the public settings an answer with ``settings_sha256`` ran with, the seq that holds them), or None."""
    entry = find_entry(audit, SETTINGS_EVENT, f"settings:{sha256}")
    if entry is None or entry.payload is None:
        return None
    text = entry.payload.get("settings")
    if not isinstance(text, str) or sha256_text(text) != sha256:
        raise SnapshotError(f"settings entry #{entry.seq}: its text does not hash to {sha256[:12]}; it was altered")
    return json.loads(text), entry.seq


def stored_corpus(audit: AuditLog, sha256: str) -> tuple[CorpusSnapshot, int] | None:
    entry = find_entry(audit, CORPUS_EVENT, f"corpus:{sha256}")
    if entry is None or entry.payload is None:
        return None
    return CorpusSnapshot.from_payload(entry.payload, entry.seq), entry.seq
