"""`AuditLog.verify`'s steps on a stored log beside the chain pass: ranges checked in worker
processes, the signed heads and the witness against the chain, the derived tables against the
chained entries.
"""

from __future__ import annotations

import heapq
import importlib
import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, select, text
from sqlalchemy.exc import DBAPIError

from audit.database import SQLITE_READ_MMAP, first_line
from audit.rows import PG_VERIFY_SETTINGS, range_query, sql_of, stream_row_batches
from audit.schema import entries, payloads, redactions, signed_heads
from audit.verification.chain import ChainProblem, ChainVerifier, RangeResult, TreeHead, check_range
from audit.verification.formats import GENESIS_HASH
from audit.witness import read_witness

if TYPE_CHECKING:
    from concurrent.futures import ProcessPoolExecutor


# One process by default. On a machine whose cores are busy with other work (and, for a local
# PostgreSQL, with the server backends that send the rows), a second worker process adds its own
# connection, snapshot and result traffic but no CPU time: the kernel shares CPU time between
# sessions (autogroups), not between processes. Measured on the 2-core machine of docs/audit.md,
# two workers were slower than one in every round, on both databases.
DEFAULT_VERIFY_WORKERS = 1


VERIFY_RANGE_MIN = 4096  # rows per range by default: fewer cost more in process traffic than they save


def plan_ranges(size: int, workers: int, range_size: int | None) -> list[tuple[int, int]]:
    """Seq ranges (after, up_to] for the worker processes; empty when one process should check it all.

    Each range starts at a multiple of its power-of-two length, so its Merkle subtrees slot into the
    tree unchanged (`Frontier.extended`). The rows after the last range (fewer than width/8) and any
    appended since the head was read are checked by the caller.
    """
    if workers < 2:
        return []
    width = range_size or max(VERIFY_RANGE_MIN, 1 << max(0, (size // (4 * workers)).bit_length() - 1))
    if size < 2 * width:
        return []
    ranges = [(after, after + width) for after in range(0, size - size % width, width)]
    after, piece = ranges[-1][1], width // 2
    while piece >= max(1, width // 8):
        if size - after >= piece:
            ranges.append((after, after + piece))
            after += piece
        piece //= 2
    return ranges


@dataclass(frozen=True)
class DriverLink:
    """How a worker process opens its own DB-API connection to the log (no SQLAlchemy on that side)."""

    module: str
    args: tuple[Any, ...]
    kwargs: tuple[tuple[str, Any], ...]
    postgres: bool

    @classmethod
    def of(cls, engine: Engine) -> DriverLink:
        args, kwargs = engine.dialect.create_connect_args(engine.url)
        plain = tuple((k, v) for k, v in kwargs.items() if isinstance(v, (str, int, float, bool)))  # drop SQLAlchemy's adapters
        return cls(engine.dialect.loaded_dbapi.__name__, tuple(args), plain, engine.dialect.name == "postgresql")

    def connect(self) -> Any:
        return importlib.import_module(self.module).connect(*self.args, **dict(self.kwargs))


@dataclass(frozen=True)
class RangeTask:
    link: DriverLink
    after: int
    up_to: int
    mark: int | None  # size of the checkpoint kept outside
    snapshot: str | None  # PostgreSQL snapshot to read, exported by the verifying transaction


_SNAPSHOT_ID = re.compile(r"^[0-9A-F]+-[0-9A-F]+(-[0-9]+)?$")


def check_stored_range(task: RangeTask) -> RangeResult:
    """In a worker process: check the rows with after < seq <= up_to (the first range also takes seq <= 0)."""
    connection = task.link.connect()
    try:
        cursor = connection.cursor()
        if task.snapshot is not None:
            if not _SNAPSHOT_ID.match(task.snapshot):
                raise ValueError(f"unexpected snapshot id {task.snapshot!r}")
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            cursor.execute(f"SET TRANSACTION SNAPSHOT '{task.snapshot}'")  # cannot be a bound parameter
        for setting in PG_VERIFY_SETTINGS if task.link.postgres else (SQLITE_READ_MMAP,):
            cursor.execute(setting)
        # The chain before the range is assumed to end in the stored leaf hash of seq `after`;
        # ChainVerifier.absorb checks that assumption when the range joins the chain.
        head_hash = GENESIS_HASH
        if task.after:
            cursor.execute(sql_of(select(entries.c.leaf_hash).where(entries.c.seq == task.after), task.link.postgres))
            before = cursor.fetchone()
            head_hash = before[0] if before else GENESIS_HASH  # no such row: absorb reports it missing
        cursor.close()
        sql = range_query(task.after or None, task.up_to, task.link.postgres)
        return check_range(stream_row_batches(connection, sql, task.link.postgres), task.after, head_hash, task.mark)
    finally:
        connection.close()


def check_signed_heads(conn: Connection, witness: Path | None, heads_expected: bool, verifier: ChainVerifier) -> None:
    """`verify`'s last step, in its transaction: the log's signed heads and the witness's, against the chain."""
    witnessed = read_witness(witness) if witness is not None else []
    if witness is not None and not witnessed:
        verifier.notes.append(f"the witness {witness} holds no signed head yet: nothing to compare the log with")
    own = (
        TreeHead(f"signed head of size {row.size}", dict(row._mapping))
        for row in conn.execution_options(yield_per=4096).execute(select(signed_heads).order_by(signed_heads.c.size))
    )
    leaves = (
        bytes.fromhex("".join(leaf for (leaf,) in part))
        for part in conn.execution_options(yield_per=4096).execute(
            select(entries.c.leaf_hash).order_by(entries.c.seq)
        ).partitions()
    )
    merged = heapq.merge(own, witnessed, key=lambda item: (item.head["size"], item.witness is not None))
    verifier.check_tree_heads(
        merged, leaves, heads_expected=heads_expected, newest_witnessed=witnessed[-1] if witnessed else None
    )


def checks_in_turn(*checks: Any) -> Any:
    """One `after_chain` callback running several checks in order (the first ChainProblem is the report)."""

    def run(verifier: ChainVerifier) -> None:
        for check in checks:
            check(verifier)

    return run


# The derived tables are checked against the chained entries in SQL: the server compares sets and sends
# back at most a row or two, so the client's memory stays flat and no row crosses the socket. The
# chained `subjects` column itself was checked against its leaf hash by the chain pass before this runs.
# Index rows that no chained entry names (with the seqs they claim, whether or not the log holds them):
_SUBJECT_EXTRA = {
    "sqlite": """SELECT s.seq, s.subject FROM audit_subjects s WHERE NOT EXISTS (
        SELECT 1 FROM audit_entries e, json_each(e.subjects) j
        WHERE e.seq = s.seq AND e.seq <= :size AND j.type = 'text' AND j.value = s.subject
    ) ORDER BY s.seq, s.subject LIMIT 1""",
    "postgresql": """SELECT s.seq, s.subject FROM audit_subjects s WHERE NOT EXISTS (
        SELECT 1 FROM audit_entries e WHERE e.seq = s.seq AND e.seq <= :size AND CAST(e.subjects AS jsonb) ? s.subject
    ) ORDER BY s.seq, s.subject LIMIT 1""",
}


# With no extra rows, the index equals the chained (seq, subject) pairs exactly when it holds as many
# rows as the entries name subjects: a count on each side, cheap. Only a shortfall (a deleted index row,
# or an entry naming a subject twice) pays for the anti-join below, which finds the first missing one.
_SUBJECT_COUNTS = {
    "sqlite": """SELECT (SELECT count(*) FROM audit_subjects WHERE seq <= :size),
        (SELECT coalesce(sum(json_array_length(subjects)), 0) FROM audit_entries WHERE seq <= :size)""",
    "postgresql": """SELECT (SELECT count(*) FROM audit_subjects WHERE seq <= :size),
        (SELECT coalesce(sum(json_array_length(CAST(subjects AS json))), 0) FROM audit_entries WHERE seq <= :size)""",
}


_SUBJECT_MISSING = {
    "sqlite": """SELECT e.seq, j.value FROM audit_entries e, json_each(e.subjects) j
        WHERE e.seq <= :size AND NOT EXISTS (SELECT 1 FROM audit_subjects s WHERE s.subject = j.value AND s.seq = e.seq)
        ORDER BY e.seq LIMIT 1""",
    "postgresql": """SELECT e.seq, j.value FROM audit_entries e, jsonb_array_elements_text(CAST(e.subjects AS jsonb)) j(value)
        WHERE e.seq <= :size AND NOT EXISTS (SELECT 1 FROM audit_subjects s WHERE s.subject = j.value AND s.seq = e.seq)
        ORDER BY e.seq LIMIT 1""",
}


def check_derived_tables(conn: Connection, size: int, _verifier: ChainVerifier | None = None) -> None:
    """`verify`'s check that the derived tables say what the chained entries say (ChainProblem if not).

    audit_subjects must hold exactly the (seq, subject) pairs of the entries' chained subjects (no row
    missing, none extra); audit_redactions exactly one row per chained redaction event, naming the seq
    that event redacted. A row deleted or added there (triggers dropped) is reported with its seq and table.
    """
    dialect = conn.dialect.name
    bound = {"size": size}
    try:
        if dialect == "postgresql":
            # The chain pass turned these off for its key-ordered scans; these queries want the planner's choice.
            # Through the driver: the connection may be set to stream every statement (yield_per), and a
            # SET cannot run in a server-side cursor.
            for setting in ("enable_sort", "enable_nestloop", "enable_hashjoin"):
                conn.connection.driver_connection.execute(f"SET LOCAL {setting} TO DEFAULT")
        problems = []
        extra = conn.execute(text(_SUBJECT_EXTRA[dialect]), bound).first()
        if extra is not None:
            seq, subject = extra
            if 1 <= seq <= size:
                problems.append((seq, f"seq {seq}: audit_subjects lists subject {subject!r}, which the chained entry does not name (derived index edited)"))
            else:
                problems.append((seq, f"seq {seq}: audit_subjects lists subject {subject!r} for it, but the log holds seq 1..{size} (derived index edited)"))
        indexed, named = conn.execute(text(_SUBJECT_COUNTS[dialect]), bound).one()
        if indexed < named:
            missing = conn.execute(text(_SUBJECT_MISSING[dialect]), bound).first()
            if missing is not None:
                seq, subject = missing
                problems.append((seq, f"seq {seq}: its subject {subject!r} is missing from audit_subjects (derived index edited)"))
        redaction = _redaction_mismatch(conn, size)
        if redaction is not None:
            problems.append(redaction)
    except DBAPIError as error:
        raise ChainProblem(None, f"cannot compare the derived tables with the chain: {first_line(error)}") from None
    if problems:
        seq, problem = min(problems, key=lambda item: item[0])
        raise ChainProblem(seq, problem)


def _redaction_mismatch(conn: Connection, size: int) -> tuple[int, str] | None:
    """The first difference between audit_redactions and the chained redaction events, by redaction event seq.

    Both sides stream in the event's seq order (the events through the event type index; the table,
    a few rows, sorted by the server), so memory stays one row of each.
    """
    events = conn.execute(
        select(entries.c.seq, payloads.c.payload)
        .select_from(entries.outerjoin(payloads, payloads.c.seq == entries.c.seq))
        .where(entries.c.event_type == "redaction", entries.c.seq <= size)
        .order_by(entries.c.seq),
        execution_options={"yield_per": 256},
    )
    chained = ((seq, _redacted_seq(payload)) for seq, payload in events)
    stored = iter(
        conn.execute(
            select(redactions.c.redaction_seq, redactions.c.seq).order_by(redactions.c.redaction_seq, redactions.c.seq),
            execution_options={"yield_per": 256},
        )
    )
    stored = (tuple(row) for row in stored)
    chained_pair, stored_pair = next(chained, None), next(stored, None)
    while chained_pair is not None or stored_pair is not None:
        if chained_pair == stored_pair:
            chained_pair, stored_pair = next(chained, None), next(stored, None)
            continue
        if stored_pair is None or (chained_pair is not None and chained_pair[0] <= stored_pair[0]):
            event, target = chained_pair
            if target is None:
                return event, f"seq {event}: redaction event names no seq it redacted"
            return target, (
                f"seq {target}: its redaction (event seq {event}) is missing from audit_redactions (derived table edited)"
            )
        by, target = stored_pair
        return target, (
            f"seq {target}: audit_redactions says seq {by} redacted it, but no chained redaction event "
            "says so (derived table edited)"
        )
    return None


def _redacted_seq(payload: Any) -> int | None:
    try:
        details = json.loads(payload) if payload is not None else None
    except ValueError:
        return None
    seq = details.get("seq") if isinstance(details, dict) else None
    return seq if isinstance(seq, int) and not isinstance(seq, bool) else None


def stored_payload(conn: Connection, seq: int) -> tuple[Any, Any] | None:
    row = conn.execute(select(payloads.c.salt, payloads.c.payload).where(payloads.c.seq == seq)).first()
    return None if row is None else (row.salt, row.payload)


@contextmanager
def range_pool(workers: int) -> Iterator[ProcessPoolExecutor | None]:
    """Worker processes for `verify`, or None for none; ranges not yet checked are dropped on the way out."""
    if workers < 2:
        yield None
        return
    # fork starts a worker in milliseconds but is only safe while this process runs one thread (a lock
    # held by another thread would stay locked in the child); spawn is safe everywhere.
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    method = "fork" if threading.active_count() == 1 and "fork" in multiprocessing.get_all_start_methods() else "spawn"
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context(method))
    try:
        yield pool
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
