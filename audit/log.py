"""`AuditLog`: append, read, verify, checkpoint, prove, annotate and redact on one SQL database.

Every write runs in one transaction holding the writers' lock: ``BEGIN IMMEDIATE`` on SQLite (WAL),
``SELECT ... FOR UPDATE`` on the ``audit_head`` row on PostgreSQL (READ COMMITTED). The next seq is
read from the head inside that lock, so a rollback or a killed writer leaves no gap and no half entry.
"""

from __future__ import annotations

import functools
import importlib
import itertools
import json
import multiprocessing
import os
import re
import threading
import uuid
import weakref
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Connection, Engine, LargeBinary, Select, String, and_, cast, create_engine, event, insert, inspect, select, update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError

from audit.canonical import canonical_payload
from audit.errors import AuditError
from audit.export import export_bundle
from audit.files import read_checkpoint, write_json
from audit.keys import KeyStore, public_hex
from audit.merkle import MerkleTree
from audit.records import (
    DECISION_EVENTS,
    AppendedEntry,
    Entry,
    EntryFilter,
    NewEvent,
    Redaction,
    parse_time,
    utc_now,
)
from audit.schema import create_schema, entries, head, payloads, redactions, subjects
from audit.verify_bundle import (
    CHECKPOINT_FORMAT,
    GENESIS_HASH,
    STRUCTURAL_EVENTS,
    Frontier,
    VerifyReport,
    checkpoint_message,
    handover_message,
    leaf_bytes,
    leaf_hash,
    RangeResult,
    check_range,
    payload_commitment,
    verify_rows,
)

_EVENT_TYPE = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
_SHORT_TEXT = 200


@dataclass
class _Head:
    """The chain head as read under the lock; written back when the transaction commits."""

    log_id: str
    size: int
    head_hash: str
    frontier: Frontier
    checkpoint_size: int
    key_id: str | None


# Reads (verify above all) take pages straight from a memory map instead of copying each one from the
# OS into SQLite's page cache: about 0.5 µs less CPU per ~7 KB entry when verify reads a 100k-entry
# log (docs/audit.md). Writes still go through the journal as before. Capped by SQLite at its
# compile-time maximum (2 GB by default); pages beyond the map are read as usual.
SQLITE_READ_MMAP = "PRAGMA mmap_size = 2147483648"


def _display_url(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url


def _make_engine(url: str, create: bool) -> Engine:
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise AuditError(f"{url!r} is not a database URL (e.g. sqlite:///audit.db)") from None
    if parsed.get_backend_name() == "sqlite":
        path = Path(parsed.database or "")
        if not parsed.database or parsed.database == ":memory:":
            raise AuditError("the audit log needs a file database: use sqlite:///path/audit.db")
        if not path.exists():
            if not create:
                raise AuditError(f"audit database not found: {path} (check --db / the audit_url setting)")
            path.parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(parsed)

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            # Let SQLAlchemy's "begin" event issue BEGIN itself, so writers can ask for IMMEDIATE.
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA busy_timeout = 60000")
            # Payloads are kilobytes of JSON: big pages keep them off long overflow chains, which makes
            # the verifier's full scan about twice as fast. Only takes effect when the file is created.
            cursor.execute("PRAGMA page_size = 16384")
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = FULL")  # durable commits
            cursor.execute(SQLITE_READ_MMAP)
            cursor.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Connection) -> None:
            writer = conn.get_execution_options().get("audit_write", False)
            conn.exec_driver_sql("BEGIN IMMEDIATE" if writer else "BEGIN")

        return engine
    if parsed.get_backend_name() != "postgresql":
        raise AuditError(f"unsupported audit database {parsed.get_backend_name()!r}: use sqlite or postgresql")
    try:
        return create_engine(parsed, isolation_level="READ COMMITTED", pool_pre_ping=True)
    except NoSuchModuleError as error:
        raise AuditError(f"cannot use {_display_url(url)}: {error}") from None


_ROW_KEYS = (
    "seq", "time", "event_type", "actor", "request_id", "subjects", "status",
    "payload_commitment", "prev_hash", "leaf_hash", "salt", "payload",
)


def _row_to_dict(row: Any) -> dict[str, Any]:
    """A joined entries+payloads row as the verifier's entry mapping (the columns are in _ROW_KEYS order)."""
    entry = dict(zip(_ROW_KEYS, row, strict=True))
    entry["subjects"] = json.loads(entry["subjects"])
    return entry


_ENTRY_WITH_PAYLOAD = select(entries, payloads.c.salt, payloads.c.payload).select_from(
    entries.outerjoin(payloads, payloads.c.seq == entries.c.seq)
)


class AuditLog:
    """An append-only, hash-chained, Merkle-tree audit log with signed checkpoints."""

    def __init__(self, engine: Engine, url: str, keys_dir: Path | None, checkpoint_every: int | None) -> None:
        self.engine = engine
        self.url = url
        self.keys_dir = keys_dir
        self.checkpoint_every = checkpoint_every

    # -- opening ---------------------------------------------------------------------------------
    @classmethod
    def open(
        cls, url: str, keys_dir: Path | None = None, checkpoint_every: int | None = None, *, create: bool = True
    ) -> AuditLog:
        """Open (and by default create) the log at a SQLAlchemy URL; `create=False` for read-only tools."""
        if checkpoint_every is not None and checkpoint_every < 1:
            raise AuditError(f"checkpoint_every must be at least 1, not {checkpoint_every}")
        engine = _make_engine(url, create)
        log = cls(engine, url, keys_dir, checkpoint_every)
        try:
            with log._connection(write=create) as conn, conn.begin():
                if create and conn.dialect.name == "postgresql":
                    # Concurrent openers of a fresh database would race on CREATE TABLE.
                    conn.exec_driver_sql("SELECT pg_advisory_xact_lock(hashtext(current_schema()))")
                # The schema is created in one transaction, so the head row means all of it exists.
                if not inspect(conn).has_table("audit_head"):
                    if not create:
                        raise AuditError(f"no audit log in {_display_url(url)} (check --db / the audit_url setting)")
                    create_schema(conn)
                    conn.execute(
                        insert(head).values(
                            id=1, log_id=uuid.uuid4().hex, size=0, head_hash=GENESIS_HASH,
                            frontier="[]", checkpoint_size=0, key_id=None,
                        )
                    )
        except DBAPIError as error:
            engine.dispose()
            raise AuditError(f"cannot open the audit database {_display_url(url)}: {_first_line(error)}") from None
        except AuditError:
            engine.dispose()
            raise
        return log

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    @contextmanager
    def _connection(self, write: bool = False) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            yield conn.execution_options(audit_write=write)

    # -- writing ---------------------------------------------------------------------------------
    @contextmanager
    def _locked(self) -> Iterator[tuple[Connection, _Head]]:
        """One write transaction holding the writers' lock, with the head to extend."""
        try:
            with self._connection(write=True) as conn, conn.begin():
                row = conn.execute(select(head).where(head.c.id == 1).with_for_update()).one()
                state = _Head(
                    row.log_id, row.size, row.head_hash,
                    Frontier(row.size, [bytes.fromhex(h) for h in json.loads(row.frontier)]),
                    row.checkpoint_size, row.key_id,
                )
                yield conn, state
                conn.execute(
                    update(head)
                    .where(head.c.id == 1)
                    .values(
                        size=state.size, head_hash=state.head_hash,
                        frontier=json.dumps([h.hex() for h in state.frontier.hashes]),
                        checkpoint_size=state.checkpoint_size, key_id=state.key_id,
                    )
                )
        except DBAPIError as error:
            raise AuditError(f"audit write failed on {_display_url(self.url)}: {_first_line(error)}") from None

    def _append_locked(
        self, conn: Connection, state: _Head, event_type: str, payload_json: str, *,
        actor: str, request_id: str | None, subject_list: Sequence[str], status: str | None,
    ) -> AppendedEntry:
        salt = os.urandom(32).hex()
        fields = {
            "seq": state.size + 1,
            "time": utc_now(),
            "event_type": event_type,
            "actor": actor,
            "request_id": request_id,
            "subjects": list(subject_list),
            "status": status,
            "payload_commitment": payload_commitment(salt, payload_json),
            "prev_hash": state.head_hash,
        }
        leaf = leaf_hash(leaf_bytes(fields))
        conn.execute(insert(entries).values({**fields, "subjects": json.dumps(fields["subjects"]), "leaf_hash": leaf.hex()}))
        conn.execute(insert(payloads).values(seq=fields["seq"], salt=salt, payload=payload_json))
        if subject_list:
            conn.execute(insert(subjects), [{"subject": s, "seq": fields["seq"]} for s in sorted(set(subject_list))])
        state.size += 1
        state.head_hash = leaf.hex()
        state.frontier.append(leaf)
        return AppendedEntry(seq=fields["seq"], leaf_hash=leaf.hex(), time=fields["time"])

    def append(
        self, event_type: str, payload: dict[str, Any], *, actor: str, request_id: str | None = None,
        subjects: Sequence[str] = (), status: str | None = None,
    ) -> AppendedEntry:
        """Append one event. Payload: a JSON object without floats (TypeError names the float's path)."""
        if isinstance(subjects, str):
            raise AuditError("subjects must be a list of strings, not one string")
        return self.append_many([NewEvent(event_type, payload, actor, request_id, tuple(subjects), status)])[0]

    def append_many(self, events: Sequence[NewEvent]) -> list[AppendedEntry]:
        """Append several events in one transaction (e.g. the findings of one review): all or none."""
        prepared = []
        for item in events:
            _check_fields(item.event_type, item.actor, item.request_id, item.subjects, item.status)
            prepared.append((item, canonical_payload(item.payload)))
        appended = []
        with self._locked() as (conn, state):
            for item, payload_json in prepared:
                appended.append(
                    self._append_locked(
                        conn, state, item.event_type, payload_json,
                        actor=item.actor, request_id=item.request_id, subject_list=item.subjects, status=item.status,
                    )
                )
                if self.checkpoint_every and state.size - state.checkpoint_size >= self.checkpoint_every:
                    self._checkpoint_locked(conn, state, item.actor)
        return appended

    # -- keys and checkpoints ----------------------------------------------------------------------
    def key_store(self) -> KeyStore:
        """The signing keys (raises when the log was opened without a keys directory)."""
        if self.keys_dir is None:
            raise AuditError("no keys directory: pass keys_dir (--keys) to sign checkpoints")
        return KeyStore(self.keys_dir)

    def _announce_key_locked(self, conn: Connection, state: _Head, actor: str) -> tuple[str, Any]:
        """Make sure the log has announced the active key, handing over from the previous one."""
        store = self.key_store()
        key_id, key = store.active()
        if state.key_id == key_id:
            return key_id, key
        announcement: dict[str, Any] = {
            "log_id": state.log_id, "key_id": key_id,
            "public_key": public_hex(key.public_key()), "previous_key_id": state.key_id,
        }
        if state.key_id is not None:
            if not store.has_private(state.key_id):
                raise AuditError(
                    f"cannot hand over from key {state.key_id}: its private key is not in {store.directory}"
                )
            message = handover_message(state.log_id, key_id, announcement["public_key"], state.key_id)
            announcement["handover_signature"] = store.private(state.key_id).sign(message).hex()
        self._append_locked(
            conn, state, "key_rotation", canonical_payload(announcement),
            actor=actor, request_id=None, subject_list=(f"key:{key_id}",), status=None,
        )
        state.key_id = key_id
        return key_id, key

    def _checkpoint_locked(self, conn: Connection, state: _Head, actor: str) -> dict[str, Any]:
        key_id, key = self._announce_key_locked(conn, state, actor)
        checkpoint: dict[str, Any] = {
            "format": CHECKPOINT_FORMAT, "log_id": state.log_id, "size": state.size,
            "root": state.frontier.root().hex(), "time": utc_now(), "key_id": key_id,
        }
        checkpoint["signature"] = key.sign(checkpoint_message(checkpoint)).hex()
        self._append_locked(
            conn, state, "checkpoint", canonical_payload(checkpoint),
            actor=actor, request_id=None, subject_list=(), status=None,
        )
        state.checkpoint_size = state.size
        return checkpoint

    def checkpoint(self, path: Path | None = None, *, actor: str = "docket-audit") -> dict[str, Any]:
        """Sign the current size and root now; also stored in the log as a checkpoint event.

        Write it to `path` and keep that file outside the database: it is what catches a rewritten
        chain or a truncated tail later.
        """
        with self._locked() as (conn, state):
            checkpoint = self._checkpoint_locked(conn, state, actor)
        if path is not None:
            write_json(path, checkpoint)
        return checkpoint

    def rotate_key(self, *, actor: str) -> str:
        """Create a new signing key; the log records the handover, old checkpoints keep verifying."""
        store = self.key_store()
        with self._locked() as (conn, state):
            if state.key_id is None:
                self._announce_key_locked(conn, state, actor)
            store.generate()
            key_id, _ = self._announce_key_locked(conn, state, actor)
        return key_id

    def export_public_keys(self, destination: Path) -> list[Path]:
        return self.key_store().export_public(destination)

    # -- reading ---------------------------------------------------------------------------------
    @property
    def size(self) -> int:
        with self._connection() as conn, conn.begin():
            return conn.execute(select(head.c.size)).scalar_one()

    @property
    def log_id(self) -> str:
        with self._connection() as conn, conn.begin():
            return conn.execute(select(head.c.log_id)).scalar_one()

    def get(self, seq: int) -> Entry:
        """One entry with its payload (None when redacted, with who/why in `.redaction`)."""
        with self._connection() as conn, conn.begin():
            row = conn.execute(_ENTRY_WITH_PAYLOAD.where(entries.c.seq == seq)).first()
            if row is None:
                size = conn.execute(select(head.c.size)).scalar_one()
                raise AuditError(f"no entry with seq {seq}: the log holds seq 1..{size}")
            redaction = None
            if row.payload is None:
                redaction = self._redaction_of(conn, seq)
            return _entry(row, redaction)

    def _redaction_of(self, conn: Connection, seq: int) -> Redaction | None:
        by = conn.execute(select(redactions.c.redaction_seq).where(redactions.c.seq == seq)).scalar()
        if by is None:
            return None
        event_row = conn.execute(_ENTRY_WITH_PAYLOAD.where(entries.c.seq == by)).one()
        details = json.loads(event_row.payload)
        return Redaction(by, event_row.actor, event_row.time, details["reason"], details["legal_basis"])

    def read(self, seq: int, *, actor: str) -> Entry:
        """`get`, recorded as a read event (who looked at which entry)."""
        entry = self.get(seq)
        self.append("read", {"seq": seq}, actor=actor, subjects=(f"seq:{seq}",))
        return entry

    def entries(
        self, since: Any = None, until: Any = None, actor: str | None = None, event_type: str | None = None,
        subject: str | None = None, status: str | None = None, text: str | None = None,
    ) -> Iterator[Entry]:
        """Entries in seq order that match every given filter (see `EntryFilter`), streamed."""
        yield from self.filtered(EntryFilter(since, until, actor, event_type, subject, status, text))

    def filtered(self, filters: EntryFilter, up_to: int | None = None) -> Iterator[Entry]:
        with self._connection() as conn, conn.begin():
            for row in conn.execution_options(yield_per=1000).execute(_filtered_query(filters, up_to)):
                yield _entry(row, self._redaction_of(conn, row.seq) if row.payload is None else None)

    def stored_rows(self, filters: EntryFilter, up_to: int | None = None) -> Iterator[dict[str, Any]]:
        """Entries exactly as stored (payload text and salt included), for export bundles."""
        with self._connection() as conn, conn.begin():
            for row in conn.execution_options(yield_per=1000).execute(_filtered_query(filters, up_to)):
                yield _row_to_dict(row)

    # -- verification and proofs -------------------------------------------------------------------
    def verify(
        self, checkpoint: Path | None = None, *, workers: int | None = None, range_size: int | None = None
    ) -> VerifyReport:
        """Stream the whole log once; OK with size and root, or the first bad seq and why.

        With `workers` > 1 a large log is checked by that many processes, each over ranges of
        `range_size` seqs (a power of two; default: about a quarter of a worker's share, at least
        4096), with the same report as a single pass. The default, one, checks it in this process
        alone: more processes only pay where that many cores sit idle (docs/audit.md, *Measured*).
        """
        outside = read_checkpoint(checkpoint) if checkpoint is not None else None
        trusted = self.key_store().public_keys() if self.keys_dir is not None else None
        workers = DEFAULT_VERIFY_WORKERS if workers is None else workers
        if range_size is not None and (range_size < 1 or range_size & (range_size - 1)):
            raise AuditError(f"range_size must be a power of two, not {range_size}")
        with self._connection() as conn:
            postgres = conn.dialect.name == "postgresql"
            if postgres:
                conn = conn.execution_options(isolation_level="REPEATABLE READ")  # one snapshot
            with conn.begin():
                state = conn.execute(select(head.c.log_id, head.c.size)).one()
                ranges = _plan_ranges(state.size, workers, range_size)
                # Workers read the very snapshot this transaction reads (PostgreSQL can share it).
                snapshot = conn.exec_driver_sql("SELECT pg_export_snapshot()").scalar_one() if postgres and ranges else None
                mark = outside["size"] if outside is not None else None
                tasks = [_RangeTask(_DriverLink.of(self.engine), after, up_to, mark, snapshot) for after, up_to in ranges]
                with (
                    _range_pool(min(workers, len(tasks))) as pool,
                    _scan_entries(conn, after=ranges[-1][1] if ranges else None) as rest,
                ):
                    return verify_rows(
                        rest, trusted,
                        checked_ranges=pool.map(_check_stored_range, tasks) if tasks else (),
                        # SQLite workers read their own, later snapshots, which may lack a payload
                        # erased by a redaction this snapshot does not hold yet.
                        stored_payload=None if postgres else functools.partial(_stored_payload, conn),
                        log_id=state.log_id, outside_checkpoint=outside, checkpoint_label=str(checkpoint),
                        recorded_size=state.size,
                    )

    def merkle_tree(self, size: int | None) -> MerkleTree:
        """The Merkle tree over the first `size` entries (default: all), for proofs."""
        with self._connection() as conn, conn.begin():
            current = conn.execute(select(head.c.size)).scalar_one()
            size = current if size is None else size
            if not 0 <= size <= current:
                raise AuditError(f"tree size {size} is outside the log (it holds {current} entries)")
            rows = conn.execute(select(entries.c.leaf_hash).where(entries.c.seq <= size).order_by(entries.c.seq))
            return MerkleTree([bytes.fromhex(h) for (h,) in rows])

    def prove(self, seq: int, tree_size: int | None = None) -> dict[str, Any]:
        """RFC 9162 inclusion proof of entry `seq` in the tree of `tree_size` entries (default: all)."""
        tree = self.merkle_tree(tree_size)
        if not 1 <= seq <= tree.size:
            raise AuditError(f"no entry with seq {seq} in a tree of {tree.size} entries")
        return {
            "seq": seq, "leaf_index": seq - 1, "tree_size": tree.size,
            "leaf_hash": tree.levels[0][seq - 1].hex(), "root": tree.root().hex(),
            "path": [h.hex() for h in tree.inclusion_path(seq - 1)],
        }

    def prove_consistency(self, first: int, second: int | None = None) -> dict[str, Any]:
        """RFC 9162 consistency proof that the tree of `first` entries is a prefix of `second`."""
        tree = self.merkle_tree(second)
        if not 0 <= first <= tree.size:
            raise AuditError(f"size {first} is larger than the tree of {tree.size} entries")
        return {
            "first": first, "second": tree.size,
            "first_root": MerkleTree(tree.levels[0][:first]).root().hex(), "second_root": tree.root().hex(),
            "path": [h.hex() for h in tree.consistency_path(first)],
        }

    # -- reviewer actions ----------------------------------------------------------------------------
    def annotate(
        self, seq: int, decision: str, note: str, *, actor: str, request_id: str | None = None
    ) -> AppendedEntry:
        """A reviewer's decision on an entry (approve / reject / correct), appended as a new event."""
        if decision not in DECISION_EVENTS:
            raise AuditError(f"decision {decision!r} is not one of {', '.join(DECISION_EVENTS)}")
        target = self.get(seq)
        return self.append(
            DECISION_EVENTS[decision], {"seq": seq, "decision": decision, "note": note},
            actor=actor, request_id=request_id, subjects=(f"seq:{seq}", *target.subjects),
        )

    def redact(self, seq: int, reason: str, legal_basis: str, actor: str) -> AppendedEntry:
        """Erase an entry's payload and salt; its commitment stays chained and a redaction event says who and why."""
        if not reason.strip() or not legal_basis.strip():
            raise AuditError("redact needs a reason and a legal basis")
        _check_fields("redaction", actor, None, (), None)
        with self._locked() as (conn, state):
            row = conn.execute(_ENTRY_WITH_PAYLOAD.where(entries.c.seq == seq)).first()
            if row is None:
                raise AuditError(f"no entry with seq {seq}: the log holds seq 1..{state.size}")
            if row.event_type in STRUCTURAL_EVENTS:
                raise AuditError(f"seq {seq} is a {row.event_type} event; verification needs it, so it cannot be redacted")
            if row.payload is None:
                raise AuditError(f"seq {seq} is already redacted")
            conn.execute(insert(redactions).values(seq=seq, redaction_seq=state.size + 1))
            conn.execute(payloads.delete().where(payloads.c.seq == seq))
            details = {"seq": seq, "reason": reason, "legal_basis": legal_basis, "payload_commitment": row.payload_commitment}
            return self._append_locked(
                conn, state, "redaction", canonical_payload(details),
                actor=actor, request_id=None, subject_list=(f"seq:{seq}",), status=None,
            )

    def export(
        self, path: Path, filters: EntryFilter | None = None, *, actor: str, checkpoint: Path | None = None
    ) -> dict[str, Any]:
        """Write an audit bundle to the directory `path` (see `audit.export`); logged as an export event."""
        return export_bundle(self, path, filters or EntryFilter(), actor=actor, checkpoint=checkpoint)


# One process by default. On a machine whose cores are busy with other work (and, for a local
# PostgreSQL, with the server backends that send the rows), a second worker process adds its own
# connection, snapshot and result traffic but no CPU time: the kernel shares CPU time between
# sessions (autogroups), not between processes. Measured on the 2-core machine of docs/audit.md,
# two workers were slower than one in every round, on both databases.
DEFAULT_VERIFY_WORKERS = 1
VERIFY_RANGE_MIN = 4096  # rows per range by default: fewer cost more in process traffic than they save
# Rows per batch handed to the checks: a batch's payloads stay in the CPU cache until hashed.
_BATCH_ROWS = 64
# Rows per chunk a PostgreSQL stream receives; the server keeps sending while the client hashes.
_PG_CHUNK_ROWS = 256


def _plan_ranges(size: int, workers: int, range_size: int | None) -> list[tuple[int, int]]:
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
class _DriverLink:
    """How a worker process opens its own DB-API connection to the log (no SQLAlchemy on that side)."""

    module: str
    args: tuple[Any, ...]
    kwargs: tuple[tuple[str, Any], ...]
    postgres: bool

    @classmethod
    def of(cls, engine: Engine) -> _DriverLink:
        args, kwargs = engine.dialect.create_connect_args(engine.url)
        plain = tuple((k, v) for k, v in kwargs.items() if isinstance(v, (str, int, float, bool)))  # drop SQLAlchemy's adapters
        return cls(engine.dialect.loaded_dbapi.__name__, tuple(args), plain, engine.dialect.name == "postgresql")

    def connect(self) -> Any:
        return importlib.import_module(self.module).connect(*self.args, **dict(self.kwargs))


@dataclass(frozen=True)
class _RangeTask:
    link: _DriverLink
    after: int
    up_to: int
    mark: int | None  # size of the checkpoint kept outside
    snapshot: str | None  # PostgreSQL snapshot to read, exported by the verifying transaction


_SNAPSHOT_ID = re.compile(r"^[0-9A-F]+-[0-9A-F]+(-[0-9]+)?$")


def _check_stored_range(task: _RangeTask) -> RangeResult:
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
            cursor.execute(_sql(select(entries.c.leaf_hash).where(entries.c.seq == task.after), task.link.postgres))
            before = cursor.fetchone()
            head_hash = before[0] if before else GENESIS_HASH  # no such row: absorb reports it missing
        cursor.close()
        sql = range_query(task.after or None, task.up_to, task.link.postgres)
        return check_range(stream_row_batches(connection, sql, task.link.postgres), task.after, head_hash, task.mark)
    finally:
        connection.close()


def _stored_payload(conn: Connection, seq: int) -> tuple[Any, Any] | None:
    row = conn.execute(select(payloads.c.salt, payloads.c.payload).where(payloads.c.seq == seq)).first()
    return None if row is None else (row.salt, row.payload)


@contextmanager
def _range_pool(workers: int) -> Iterator[ProcessPoolExecutor | None]:
    """Worker processes for `verify`, or None for none; ranges not yet checked are dropped on the way out."""
    if workers < 2:
        yield None
        return
    # fork starts a worker in milliseconds but is only safe while this process runs one thread (a lock
    # held by another thread would stay locked in the child); spawn is safe everywhere.
    method = "fork" if threading.active_count() == 1 and "fork" in multiprocessing.get_all_start_methods() else "spawn"
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context(method))
    try:
        yield pool
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


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
    return _sql(query, postgres)


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


def _sql(query: Select[Any], postgres: bool) -> str:
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
# (16 kB for ~7 kB rows) and never shrinks. Streaming 100k such rows then costs a poll and a recv
# per two rows (50k of each, strace), each recv also running the loopback TCP acknowledgements in
# this process. After one message this large, a recv takes whatever the socket holds: about 1.3 CPU
# µs less per entry on verify's 100k bench log, for this much memory kept by the connection.
_PG_INPUT_BUFFER = 4 << 20
_widened: weakref.WeakSet[Any] = weakref.WeakSet()  # psycopg connections whose buffer is that large


def _widen_input_buffer(connection: Any) -> None:
    """Have the server send one message of `_PG_INPUT_BUFFER` bytes, once per connection, and drop it."""
    if connection in _widened:
        return
    cursor = connection.cursor()
    try:
        # The whole value is one DataRow message: libpq enlarges its buffer to hold it. psycopg does not
        # turn it into a Python object unless it is fetched, which it is not.
        cursor.execute(f"SELECT repeat('x', {_PG_INPUT_BUFFER})")
    finally:
        cursor.close()
    _widened.add(connection)


@contextmanager
def _scan_entries(conn: Connection, after: int | None) -> Iterator[Iterator[list[tuple[Any, ...]]]]:
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


def _filtered_query(filters: EntryFilter, up_to: int | None) -> Select[Any]:
    query = _ENTRY_WITH_PAYLOAD.order_by(entries.c.seq)
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
        query = query.where(entries.c.seq.in_(select(subjects.c.seq).where(subjects.c.subject == filters.subject)))
    if filters.text:
        escaped = filters.text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        query = query.where(payloads.c.payload.ilike(f"%{escaped}%", escape="\\"))
    return query


def _first_line(error: BaseException) -> str:
    text = str(getattr(error, "orig", None) or error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _check_fields(
    event_type: str, actor: str, request_id: str | None, subject_list: Sequence[str], status: str | None
) -> None:
    if not _EVENT_TYPE.match(event_type):
        raise AuditError(f"event type {event_type!r} must be lowercase letters, digits and _ (max 32)")
    if not actor or len(actor) > _SHORT_TEXT:
        raise AuditError("actor must be a non-empty name of at most 200 characters")
    for name, value in (("request_id", request_id), ("status", status)):
        if value is not None and (not isinstance(value, str) or len(value) > _SHORT_TEXT):
            raise AuditError(f"{name} must be a string of at most 200 characters")
    if isinstance(subject_list, str):
        raise AuditError("subjects must be a list of strings, not one string")
    for subject in subject_list:
        if not isinstance(subject, str) or not subject or len(subject) > _SHORT_TEXT:
            raise AuditError(f"subject {subject!r} must be a non-empty string of at most 200 characters")
    for value in (actor, request_id, status, *subject_list):
        if value is not None and not _encodable(value):
            raise AuditError(f"{value!r} is not valid Unicode text (it holds a lone surrogate)")


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _entry(row: Any, redaction: Redaction | None) -> Entry:
    return Entry(
        seq=row.seq, time=row.time, event_type=row.event_type, actor=row.actor, request_id=row.request_id,
        subjects=tuple(json.loads(row.subjects)), status=row.status,
        payload=json.loads(row.payload) if row.payload is not None else None,
        payload_commitment=row.payload_commitment, prev_hash=row.prev_hash, leaf_hash=row.leaf_hash,
        redaction=redaction,
    )
