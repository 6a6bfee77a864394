"""The chain head as a writer holds it under the lock, and its write-back with the signed head.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection

from audit.schema import head, signed_heads
from audit.verification.entries import checkpoint_message
from audit.verification.formats import JSON_SAFE_INT
from audit.verification.tree import Frontier


@dataclass
class Head:
    """The chain head as read under the lock; written back when the transaction commits."""

    log_id: str
    size: int
    head_hash: str
    frontier: Frontier
    checkpoint_size: int
    key_id: str | None
    appended_at: str | None = None  # the time of the newest entry this transaction appended


# The statements that end every write transaction: the head row, and the signed head beside it. They
# run as plain SQL on the driver's cursor: building and compiling them through SQLAlchemy on every
# append cost more than the database spends on them, and the signed head's statement was most of what
# signing added to an append (docs/audit.md, *Measured*).
_HEAD_COLUMNS = ("size", "head_hash", "frontier", "checkpoint_size", "key_id")


_SIGNED_HEAD_COLUMNS = tuple(column.name for column in signed_heads.c)


@dataclass(frozen=True)
class _HeadSQL:
    update_head: str  # parameters: _HEAD_COLUMNS
    insert_signed: str  # parameters: _SIGNED_HEAD_COLUMNS
    signed_then_head: str | None  # both in one statement (PostgreSQL: DML in WITH), signed head's values first

    @classmethod
    def of(cls, postgres: bool) -> _HeadSQL:
        mark = "%s" if postgres else "?"  # psycopg's and sqlite3's parameter styles
        update_head = f"UPDATE {head.name} SET {', '.join(f'{name} = {mark}' for name in _HEAD_COLUMNS)} WHERE id = 1"
        insert_signed = (
            f"INSERT INTO {signed_heads.name} ({', '.join(_SIGNED_HEAD_COLUMNS)}) "
            f"VALUES ({', '.join(mark for _ in _SIGNED_HEAD_COLUMNS)})"
        )
        # One round trip for the head and its signature on PostgreSQL; SQLite has no DML in WITH, and
        # its statements cost no round trip.
        combined = f"WITH signed_head AS ({insert_signed}) {update_head}" if postgres else None
        return cls(update_head, insert_signed, combined)


_HEAD_SQL = {False: _HeadSQL.of(False), True: _HeadSQL.of(True)}


def head_message(fields: dict[str, Any]) -> bytes:
    """`checkpoint_message` of a tree head this log signs, without the general canonical JSON's per-value walk.

    A head's field names are fixed ASCII words and its values strings and one size: for those, RFC
    8785's key order is plain string order and its escaping json.dumps's, so the bytes are json.dumps
    with sorted keys (tests/test_audit_signed_heads.py checks both agree).
    Anything else goes the general way.
    """
    if not all(
        name.isascii() and (type(value) is str or (type(value) is int and 0 <= value <= JSON_SAFE_INT))
        for name, value in fields.items()
    ):
        return checkpoint_message(fields)
    unsigned = {name: value for name, value in fields.items() if name != "signature"}
    return json.dumps(unsigned, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def write_head(conn: Connection, state: Head, signed: dict[str, Any] | None) -> None:
    """Write the head row back, with the transaction's signed head when there is one, in its transaction."""
    sql = _HEAD_SQL[conn.dialect.name == "postgresql"]
    head_values = (
        state.size, state.head_hash, json.dumps([h.hex() for h in state.frontier.hashes]), state.checkpoint_size, state.key_id,
    )
    cursor = conn.connection.driver_connection.cursor()
    try:
        if signed is None:
            cursor.execute(sql.update_head, head_values)
            return
        signed_values = tuple(signed[name] for name in _SIGNED_HEAD_COLUMNS)
        if sql.signed_then_head is not None:
            cursor.execute(sql.signed_then_head, signed_values + head_values)
        else:
            cursor.execute(sql.insert_signed, signed_values)
            cursor.execute(sql.update_head, head_values)
    finally:
        cursor.close()
