"""What an audit entry says was done: the answer record, its settings and its corpus, read back.

An ``answer`` entry is an answer record; a ``review_finding`` entry carries one (``answer_record``). Payload
format 2 (``payload_version``) names its settings by ``config_hash`` and its corpus by ``corpus.sha256``,
both found in their own entries (``pipeline.replay.snapshots``). Format 1, written before replay existed,
has neither: its retrieval settings are the record's own ``retrieval`` fields, its model and parameters the
call record's, and its corpus is derived from the document events the log holds before it (every
``document_ingested``/``document_version`` makes a version live, ``document_removed`` takes it out). A
workspace whose documents were ingested without those events (before they existed) cannot be derived,
and replay says so rather than guess.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select

from ingest.registry import ChunkRow, DocumentVersion
from pipeline.app import Docket
from pipeline.replay.frozen import Missing
from pipeline.replay.snapshots import CorpusSnapshot, CorpusVersion, SnapshotError, stored_corpus, stored_settings

REPLAYABLE = ("answer", "review_finding")
DOCUMENT_EVENTS = ("document_ingested", "document_version", "document_removed")


class ReplayError(Exception):
    """An entry that cannot be replayed at all (no such entry, not an answer); ``str()`` is one line."""


@dataclass
class RecordedAnswer:
    seq: int
    event_type: str
    time: str
    actor: str
    payload: dict[str, Any] | None  # the answer record's payload; None when the entry was redacted
    finding: dict[str, Any] | None = None  # the review finding around it
    payload_version: int = 1
    settings: dict[str, Any] | None = None  # the public settings it ran with
    settings_source: str = ""
    corpus: CorpusSnapshot | None = None
    corpus_source: str = ""
    searched_document_ids: list[int] | None = None
    notes: list[str] = field(default_factory=list)
    missing: list[Missing] = field(default_factory=list)

    @property
    def question(self) -> str:
        return self.payload["question"] if self.payload else ""

    def to_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "event_type": self.event_type, "time": self.time, "actor": self.actor,
                "payload_version": self.payload_version, "settings_source": self.settings_source,
                "corpus_source": self.corpus_source,
                "corpus": self.corpus.reference() if self.corpus else None}


def read_recorded(docket: Docket, seq: int) -> RecordedAnswer:
    from audit import AuditError

    try:
        entry = docket.audit.get(seq)
    except AuditError as exc:
        raise ReplayError(str(exc)) from None
    if entry.event_type not in REPLAYABLE:
        raise ReplayError(f"entry #{seq} is a {entry.event_type} event; only answer entries and review findings can "
                          "be replayed (`docket audit list --type answer` lists answers)")
    recorded = RecordedAnswer(seq, entry.event_type, entry.time, entry.actor, None)
    if entry.payload is None:
        r = entry.redaction
        why = f" by {r.actor} at {r.time} ({r.reason}; {r.legal_basis})" if r else ""
        recorded.missing.append(Missing("entry", f"entry #{seq} was redacted{why}: its question, evidence and answer "
                                                 "are gone, so there is nothing to replay"))
        return recorded
    payload = entry.payload
    if entry.event_type == "review_finding":
        recorded.finding = payload
        payload = payload.get("answer_record")
        if not isinstance(payload, dict):
            raise ReplayError(f"entry #{seq} is a review finding without an answer record (the cell was not asked: "
                              f"{recorded.finding.get('error') or recorded.finding.get('basis')}); there is nothing to replay")
    recorded.payload = payload
    recorded.payload_version = int(payload.get("payload_version") or 1)
    _read_settings(docket, recorded)
    _read_corpus(docket, recorded)
    return recorded


def _read_settings(docket: Docket, recorded: RecordedAnswer) -> None:
    sha = recorded.payload.get("settings_sha256") or ""
    try:
        found = stored_settings(docket.audit, sha) if sha else None
    except SnapshotError as exc:
        recorded.missing.append(Missing("settings", str(exc)))
        return
    if found is not None:
        recorded.settings, at = found
        recorded.settings_source = f"settings entry #{at} ({sha[:12]})"
    elif recorded.payload_version >= 2:
        recorded.missing.append(Missing("settings", f"the settings {sha[:12]} that entry #{recorded.seq} names "
                                                    "are in no settings entry of this log"))
    else:
        recorded.settings_source = ("the record's retrieval fields and call parameters (payload format 1 stored "
                                    "no settings; the rest are today's)")


def _read_corpus(docket: Docket, recorded: RecordedAnswer) -> None:
    payload = recorded.payload
    if recorded.payload_version >= 2:
        recorded.searched_document_ids = payload.get("searched_document_ids")
        sha = (payload.get("corpus") or {}).get("sha256")
        try:
            found = stored_corpus(docket.audit, sha) if sha else None
        except SnapshotError as exc:
            recorded.missing.append(Missing("corpus", str(exc)))
            return
        if found is None:
            recorded.missing.append(Missing("corpus", f"the corpus {str(sha)[:12]} that entry #{recorded.seq} names is "
                                                      "in no corpus entry of this log"))
            return
        recorded.corpus, at = found
        recorded.corpus_source = f"corpus entry #{at} (generation {recorded.corpus.generation})"
        return
    recorded.corpus = derived_corpus(docket, recorded)
    if recorded.corpus is not None:
        recorded.corpus_source = (f"derived from the document events before #{recorded.seq} (payload format 1 "
                                  "recorded no corpus)")
    recorded.searched_document_ids = _searched_today(docket, recorded)


def derived_corpus(docket: Docket, recorded: RecordedAnswer) -> CorpusSnapshot | None:
    """The versions live just before ``recorded``, from the document events; None (and a Missing) when
    the events do not account for a document the answer cites."""
    live: dict[int, int] = {}  # document id -> version number
    events = [e for t in DOCUMENT_EVENTS for e in docket.audit.entries(event_type=t) if e.seq < recorded.seq and e.payload]
    for entry in sorted(events, key=lambda e: e.seq):
        p = entry.payload
        if entry.event_type == "document_removed":
            if p.get("was_live", True):
                live.pop(int(p["document_id"]), None)
        else:
            live[int(p["document_id"])] = int(p["version"])
    versions: list[CorpusVersion] = []
    with docket.store.sessions() as session:
        for document_id, number in live.items():
            row = session.execute(
                select(DocumentVersion.id, DocumentVersion.sha256, func.count(ChunkRow.id))
                .outerjoin(ChunkRow, ChunkRow.version_id == DocumentVersion.id)
                .where(DocumentVersion.document_id == document_id, DocumentVersion.version == number)
                .group_by(DocumentVersion.id, DocumentVersion.sha256)
            ).first()
            if row is None:
                recorded.missing.append(Missing("version", f"document {document_id} version {number}, live before "
                                                           f"#{recorded.seq} by the log, is no longer in the registry"))
                continue
            versions.append(CorpusVersion(row[0], document_id, number, row[1], row[2]))
    cited = {e["doc_sha256"] for e in recorded.payload.get("evidence") or []}
    unaccounted = sorted(cited - {v.sha256 for v in versions})
    if unaccounted:
        recorded.missing.append(Missing("corpus", f"the answer cites document {unaccounted[0][:12]}, which no document "
                                                  f"event before #{recorded.seq} made live: its corpus cannot be derived "
                                                  "from the log (documents ingested before document events existed)"))
        return None
    recorded.notes.append("chunk counts of a derived corpus are the registry's today: a chunk removed since cannot "
                          "be told from one that never was")
    return CorpusSnapshot.of(-1, versions)


def _searched_today(docket: Docket, recorded: RecordedAnswer) -> list[int] | None:
    """Payload format 1 did not record which documents were searched: its --doc refs, resolved today."""
    refs = recorded.payload.get("documents") or []
    if not refs:
        if recorded.payload.get("document_filter"):
            recorded.notes.append("payload format 1 did not record the documents its --type/--since/--until filter "
                                  "admitted; the replay searches the whole collection")
        return None
    ids = []
    for ref in refs:
        try:
            ids.append(docket.store.resolve(ref, recorded.payload.get("collection")).id)
        except LookupError:
            recorded.missing.append(Missing("document", f"--doc {ref!r} of entry #{recorded.seq} names no document today"))
    recorded.notes.append("payload format 1 did not record the searched document ids; its --doc refs were resolved today")
    return sorted(ids) or None
