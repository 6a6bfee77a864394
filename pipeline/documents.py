"""Documents in and out of the corpus, each change an audit event: ingest and `docs remove`.

ingest/ never imports audit/, so this is where the two meet: the CLI, the demo and reviews call these
functions instead of the store's, and each document that enters or leaves the live index is appended
to the audit log (docs/audit.md, "Document events"):

- ``document_ingested``: a document's first version; subjects: its SHA-256.
- ``document_version``: a new version of a document (its bytes changed, or it came back after
  ``docs remove``); subjects: the new SHA-256 and, when it was live until now, the one it replaced.
- ``document_removed``: ``docs remove``; subjects: the SHA-256 that left the live index.

Bytes already current are no event: nothing entered or left, and the event of the version that brought
them is already in the log. Each file's event is appended right after its registry commit, not once
for the whole batch, so an interrupted batch leaves the events of every file it committed.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from ingest.store import DocumentFacts, DocumentTags, FileResult, IngestReport
from pipeline.app import Docket, software_version

DOCUMENT_INGESTED = "document_ingested"
DOCUMENT_VERSION = "document_version"
DOCUMENT_REMOVED = "document_removed"


class UnrecordedChange(RuntimeError):
    """A document changed in the registry but its audit event could not be appended (the message says which)."""


def ingest_documents(
    docket: Docket,
    paths: Iterable[Path],
    collection: str,
    on_file: Callable[[FileResult], None] | None = None,
    tags: DocumentTags | None = None,
) -> IngestReport:
    """``DocumentStore.ingest``, with an audit event for each document added or given a new version.

    All events of one call share a request id, so an auditor sees the batch. If the log cannot take an
    event, the batch stops with ``UnrecordedChange`` naming the file that is in the registry unrecorded."""
    request_id = uuid.uuid4().hex

    def record(result: FileResult) -> None:
        if result.outcome in ("added", "new-version"):
            event_type, payload, subjects = ingest_event(docket, result, collection)
            _append(docket, event_type, payload, subjects, request_id, result.path)
        if on_file:
            on_file(result)

    if docket.settings.compute.engine == "ray":  # the same results, read and encoded on the cluster
        from pipeline.compute.ingest import ingest_on_ray

        return ingest_on_ray(docket, paths, collection, on_file=record, tags=tags)
    return docket.store.ingest(paths, collection, on_file=record, tags=tags)


def remove_document(docket: Docket, ref: str, collection: str | None = None):
    """``DocumentStore.remove`` (LookupError for a ref that names no document), then its audit event."""
    removed = docket.store.remove(ref, collection)  # the document as it was just before the removal
    live = [v for v in removed.versions if v.status == "current"]
    version = live[-1] if live else removed.versions[-1]
    payload = {
        "document_sha256": version.sha256,
        "document_id": removed.id,
        "name": removed.name,
        "collection": removed.collection,
        "source": removed.source_key,
        "version": version.version,
        "pages": version.page_count,
        "was_live": bool(live),  # false: it had been removed already; nothing left the index now
        **_who(docket, removed.doc_type, removed.doc_date),
    }
    _append(docket, DOCUMENT_REMOVED, payload, [version.sha256], uuid.uuid4().hex, removed.name)
    return removed


def ingest_event(docket: Docket, result: FileResult, collection: str) -> tuple[str, dict[str, Any], list[str]]:
    """(event type, payload, subjects) for a file the store added or gave a new version."""
    facts: DocumentFacts = docket.store.document_facts(result.document_id)
    current = facts.versions[-1]
    previous = facts.versions[-2] if len(facts.versions) > 1 else None
    # "superseded" is set only when a newer version is committed: that version was live until this ingest.
    replaced = previous.sha256 if previous is not None and previous.status == "superseded" else None
    payload = {
        "document_sha256": current.sha256,
        "document_id": facts.id,
        "name": facts.name,
        "collection": collection,
        "source": facts.source,
        "version": current.version,
        "previous_sha256": previous.sha256 if previous is not None else None,
        "replaced_live_sha256": replaced,
        "pages": result.pages,
        "ocr_pages": result.ocr_pages,
        "chunks": result.chunks,
        "media_type": current.media_type,
        "size_bytes": current.size_bytes,
        "reader_warnings": list(result.warnings),
        **_who(docket, facts.doc_type, facts.doc_date),
    }
    event_type = DOCUMENT_INGESTED if previous is None else DOCUMENT_VERSION
    subjects = sorted({current.sha256, *([replaced] if replaced else [])})
    return event_type, payload, subjects


def _who(docket: Docket, doc_type, doc_date) -> dict[str, Any]:
    return {
        "type": doc_type,
        "date": doc_date.isoformat() if doc_date else None,
        "actor": docket.settings.actor,
        "software_version": software_version(),
    }


def _append(docket: Docket, event_type: str, payload: dict, subjects: list[str], request_id: str, name: str) -> None:
    from audit import AuditError

    try:
        docket.audit.append(event_type, payload, actor=docket.settings.actor, request_id=request_id, subjects=subjects)
    except AuditError as exc:
        raise UnrecordedChange(
            f"{name}: stored in the registry, but its {event_type} audit event could not be written ({exc}); "
            "fix the audit log, then `docket docs remove` it and ingest it again so that both are recorded"
        ) from exc
