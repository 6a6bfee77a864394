"""Entries with their payloads read straight from the driver, in seq order, for verification.

SQLAlchemy's row objects cost more than the hashing, so verify reads the driver's own tuples: a
SQLite cursor, or psycopg's binary stream with `text` kept as bytes.
"""

from __future__ import annotations

import itertools
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, LargeBinary, Select, String, and_, cast, select

from audit.schema import entries, payloads


# Rows per batch handed to the checks: a batch's payloads stay in the CPU cache until hashed.
_BATCH_ROWS = 64


# Rows per chunk a PostgreSQL stream receives; the server keeps sending while the client hashes.
_PG_CHUNK_ROWS = 256


def range_query(after: int | None, up_to: int | None, postgres: bool) -> str:
    """Entries with their payloads, in seq order, with after < seq <= up_to (None: unbounded).

    The payload arrives as bytes, which is what gets hashed: no decoding and re-encoding. SQLite
    casts it to a BLOB; PostgreSQL sends text as its bytes in the client encoding (UTF-8, see
    `PG_VERIFY_SETTINGS`), which `stream_row_batches` keeps as bytes, so `subjects`, the one other
    text column, is read as VARCHAR there to stay a str.
    """
    payload = payloads.c.payload if postgres else cast(payloads.c.payload, LargeBinary)
    subjects_column = cast(entries.c.subjects, String).label("subjects") if postgres else entries.c.subjects
    leaf_columns = [subjects_column if column.name == "subjects" else column for column in entries.c]
    # The bounds go on both tables (for payloads in the ON clause, which keeps the outer join): the
    # payloads index is then scanned over the range only, not from its first key (merge join below).
    entry_bounds, payload_bounds = [], []
    if after is not None:
        entry_bounds.append(entries.c.seq > after)
        payload_bounds.append(payloads.c.seq > after)
    if up_to is not None:
        entry_bounds.append(entries.c.seq <= up_to)
        payload_bounds.append(payloads.c.seq <= up_to)
    query = select(*leaf_columns, payloads.c.salt, payload).select_from(
        entries.outerjoin(payloads, and_(payloads.c.seq == entries.c.seq, *payload_bounds))
    ).where(*entry_bounds).order_by(entries.c.seq)
    return sql_of(query, postgres)


# Settings of every PostgreSQL transaction that reads rows for verification (they end with it).
PG_VERIFY_SETTINGS = (
    # The bytes of a stored payload as verification hashes them: its UTF-8 encoding. PostgreSQL sends
    # text in the client encoding, so ask for UTF-8 whatever the session's default.
    "SET LOCAL client_encoding TO 'UTF8'",
    # Walk both primary keys in seq order, so rows flow from the first one on. Without statistics (a
    # fresh log, autovacuum off) the planner may instead sort the whole join, in parallel workers and
    # spilling to disk, and send nothing until the sort ends.
    "SET LOCAL enable_sort TO off",
    "SET LOCAL max_parallel_workers_per_gather TO 0",
    # And join them by merging the two key-ordered scans: a nested loop (the guess for a log without
    # statistics) probes the payloads index once per row, about a tenth of what the server spends per row.
    "SET LOCAL enable_nestloop TO off",
    "SET LOCAL enable_hashjoin TO off",
)


def sql_of(query: Select[Any], postgres: bool) -> str:
    from sqlalchemy.dialects import postgresql, sqlite

    dialect = postgresql.dialect() if postgres else sqlite.dialect()
    return str(query.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))


def stream_row_batches(connection: Any, sql: str, postgres: bool) -> Iterator[list[tuple[Any, ...]]]:
    """Batches of rows straight from the driver's cursor, in `ROW_FIELDS` order.

    Verification spends most of its time here, and SQLAlchemy's row objects cost more than the
    hashing; the driver's own tuples do not. Memory stays flat: SQLite cursors stream anyway, and
    PostgreSQL rows come through psycopg's `stream` (`_stream_psycopg`) or a server-side cursor.
    """
    if postgres and hasattr(connection, "adapters"):  # psycopg 3
        yield from _stream_psycopg(connection, sql)
        return
    cursor = connection.cursor(name="audit_verify") if postgres else connection.cursor()
    try:
        cursor.execute(sql)
        while batch := cursor.fetchmany(_BATCH_ROWS):
            yield batch
    finally:
        cursor.close()


def _stream_psycopg(connection: Any, sql: str) -> Iterator[list[tuple[Any, ...]]]:
    """Rows of one query streamed by psycopg 3 in binary format, `text` values kept as bytes.

    A server-side cursor's FETCH is a round trip: the server waits while the client checks a batch
    and the client waits while the server reads the next, so their times add up. A streamed query
    keeps the server sending (in chunks of `_PG_CHUNK_ROWS` rows where psycopg and libpq allow it,
    else row by row) while the client checks, and the binary format hands integers over unparsed.
    """
    import psycopg
    from psycopg.types.string import ByteaBinaryLoader

    _widen_input_buffer(connection)
    cursor = connection.cursor(binary=True)
    # Binary `text` is the value's bytes in the client encoding: with this cursor's loader they reach
    # the hash as they are, instead of being decoded to str and encoded back.
    cursor.adapters.register_loader("text", ByteaBinaryLoader)
    capabilities = getattr(psycopg, "capabilities", None)  # psycopg 3.2+
    if capabilities is not None and capabilities.has_stream_chunked():
        rows = cursor.stream(sql, size=_PG_CHUNK_ROWS)
    else:
        rows = cursor.stream(sql)  # row by row: psycopg 3.1, or libpq before 17
    try:
        while batch := list(itertools.islice(rows, _BATCH_ROWS)):
            yield batch
    finally:
        rows.close()  # stops the query if the checks stopped early, so the transaction can end
        cursor.close()


# libpq reads the socket into a buffer that grows only to fit the largest message it has received
# and never shrinks. Streaming rows of a few kB then costs a poll and a recv per couple of rows, each
# recv also running the loopback TCP acknowledgements in this process. After one message this large,
# a recv takes whatever the socket holds: less CPU per entry, for this much memory kept by the
# connection (docs/audit.md has the strace counts and the A/B).
_PG_INPUT_BUFFER = 4 << 20


widened_connections: weakref.WeakSet[Any] = weakref.WeakSet()  # psycopg connections whose buffer is that large


def _widen_input_buffer(connection: Any) -> None:
    """Have the server send one message of `_PG_INPUT_BUFFER` bytes, once per connection, and drop it."""
    if connection in widened_connections:
        return
    cursor = connection.cursor()
    try:
        # The whole value is one DataRow message: libpq enlarges its buffer to hold it. psycopg does not
        # turn it into a Python object unless it is fetched, which it is not.
        cursor.execute(f"SELECT repeat('x', {_PG_INPUT_BUFFER})")
    finally:
        cursor.close()
    widened_connections.add(connection)


@contextmanager
def scan_entries(conn: Connection, after: int | None) -> Iterator[Iterator[list[tuple[Any, ...]]]]:
    """The rows after seq `after` (all when None), read in this connection's transaction.

    A context manager: a stream the checks left unfinished is closed before the transaction ends.
    """
    postgres = conn.dialect.name == "postgresql"
    for setting in PG_VERIFY_SETTINGS if postgres else ():
        conn.exec_driver_sql(setting)
    batches = stream_row_batches(conn.connection.driver_connection, range_query(after, None, postgres), postgres)
    try:
        yield batches
    finally:
        batches.close()
