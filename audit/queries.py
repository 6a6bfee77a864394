"""Reading entries back: one by seq, or filtered, as `Entry` records or as stored rows.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from sqlalchemy import Connection, Select, cast, exists, func, select
from sqlalchemy.exc import DBAPIError

from audit.database import display_url, first_line
from audit.errors import AuditError
from audit.records import Entry, EntryFilter, Redaction, parse_time
from audit.schema import entries, payloads


ROW_KEYS = (
    "seq", "time", "event_type", "actor", "request_id", "subjects", "status",
    "payload_commitment", "prev_hash", "leaf_hash", "salt", "payload",
)


def row_to_dict(row: Any) -> dict[str, Any]:
    """A joined entries+payloads row as the verifier's entry mapping (the columns are in ROW_KEYS order)."""
    entry = dict(zip(ROW_KEYS, row, strict=True))
    entry["subjects"] = json.loads(entry["subjects"])
    return entry


ENTRY_WITH_PAYLOAD = select(entries, payloads.c.salt, payloads.c.payload).select_from(
    entries.outerjoin(payloads, payloads.c.seq == entries.c.seq)
)


def filtered_rows(conn: Connection, filters: EntryFilter, up_to: int | None) -> Iterator[Any]:
    """The rows `_filtered_query` selects, each subject match checked again in Python on the chained column."""
    postgres = conn.dialect.name == "postgresql"
    try:
        for row in conn.execution_options(yield_per=1000).execute(_filtered_query(filters, up_to, postgres)):
            # The database's JSON functions chose the row; the entry's own subjects, parsed as the leaf
            # parses them, decide (an entry whose subjects column is not a list of strings never matches).
            if filters.subject is None or _names_subject(row.subjects, filters.subject):
                yield row
    except DBAPIError as error:
        raise AuditError(f"cannot read the audit log {display_url(str(conn.engine.url))}: {first_line(error)}") from None


def _names_subject(subjects_json: str, subject: str) -> bool:
    try:
        named = json.loads(subjects_json)
    except ValueError:
        return False
    return isinstance(named, list) and subject in named


def _chained_subject_match(subject: str, postgres: bool) -> Any:
    """Entries whose chained `subjects` JSON list names `subject`, decided by the database's JSON functions.

    Not through the audit_subjects index: rows deleted from it (with the triggers dropped) would hide
    entries from `list --document` and `export --subject`. The chained column is what the leaf hash
    covers, so an entry cannot leave this filter without failing verify (docs/audit.md, *Derived tables*).
    """
    if postgres:
        from sqlalchemy.dialects.postgresql import JSONB

        return cast(entries.c.subjects, JSONB).has_key(subject)  # `?`: a top-level string element
    named = func.json_each(entries.c.subjects).table_valued("value", "type").alias("named")
    return exists(select(named.c.value).where(named.c.type == "text", named.c.value == subject))


def _filtered_query(filters: EntryFilter, up_to: int | None, postgres: bool) -> Select[Any]:
    query = ENTRY_WITH_PAYLOAD.order_by(entries.c.seq)
    if up_to is not None:
        query = query.where(entries.c.seq <= up_to)
    if filters.since is not None:
        query = query.where(entries.c.time >= parse_time(filters.since, "since"))
    if filters.until is not None:
        query = query.where(entries.c.time < parse_time(filters.until, "until"))
    for column, value in (
        (entries.c.actor, filters.actor), (entries.c.event_type, filters.event_type), (entries.c.status, filters.status),
    ):
        if value is not None:
            query = query.where(column == value)
    if filters.subject is not None:
        query = query.where(_chained_subject_match(filters.subject, postgres))
    if filters.text:
        escaped = filters.text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        query = query.where(payloads.c.payload.ilike(f"%{escaped}%", escape="\\"))
    return query


def entry_of(row: Any, redaction: Redaction | None) -> Entry:
    return Entry(
        seq=row.seq, time=row.time, event_type=row.event_type, actor=row.actor, request_id=row.request_id,
        subjects=tuple(json.loads(row.subjects)), status=row.status,
        payload=json.loads(row.payload) if row.payload is not None else None,
        payload_commitment=row.payload_commitment, prev_hash=row.prev_hash, leaf_hash=row.leaf_hash,
        redaction=redaction,
    )
