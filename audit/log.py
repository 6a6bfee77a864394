"""`AuditLog`: append, read, verify, checkpoint, prove, annotate and redact on one SQL database.

Every write runs in one transaction holding the writers' lock: ``BEGIN IMMEDIATE`` on SQLite (WAL),
``SELECT ... FOR UPDATE`` on the ``audit_head`` row on PostgreSQL (READ COMMITTED). The next seq is
read from the head inside that lock, so a rollback or a killed writer leaves no gap and no half entry.
"""

from __future__ import annotations

import functools
import heapq
import importlib
import itertools
import json
import logging
import os
import re
import subprocess
import threading
import uuid
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    Connection, Engine, LargeBinary, Select, String, and_, cast, create_engine, event, exists, func, insert, inspect,
    select, text,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat, load_pem_public_key

from audit.canonical import canonical_payload
from audit.errors import AuditError, AuditLockTimeout
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
from audit.migrations import AUDIT as AUDIT_MIGRATIONS
from audit.schema import entries, head, payloads, redactions, signed_heads, subjects
from audit.verification.chain import (
    ChainProblem,
    ChainVerifier,
    RangeResult,
    TreeHead,
    VerifyReport,
    check_range,
    verify_rows,
)
from audit.verification.entries import (
    KEY_ANNOUNCEMENT_VERSION,
    checkpoint_message,
    endorsement_message,
    handover_message,
    key_id_of,
    leaf_bytes,
    payload_commitment,
)
from audit.verification.formats import CHECKPOINT_FORMAT, GENESIS_HASH, JSON_SAFE_INT, STRUCTURAL_EVENTS
from audit.verification.tree import Frontier, leaf_hash

# Imported where used: appending (every `docket ask`) needs neither verify's worker pool nor
# PostgreSQL's dialect on a SQLite log.
if TYPE_CHECKING:
    from concurrent.futures import ProcessPoolExecutor

_EVENT_TYPE = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
_log = logging.getLogger("audit")
WITNESS_COMMAND_TIMEOUT = 30  # seconds a witness command may take per head before it counts as failed
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
    appended_at: str | None = None  # the time of the newest entry this transaction appended


@dataclass
class _LogKey:
    from_seq: int
    retired_at: int | None = None


@dataclass
class _LogKeys:
    """The keys the log announced, as a writer reads them under the lock (verify checks their signatures).

    Read afresh in each write transaction (a few rows, through the event type index): another writer
    may have enrolled or rotated since, and nothing of a rolled-back transaction must linger.
    """

    keys: dict[str, _LogKey] = field(default_factory=dict)

    @classmethod
    def read(cls, conn: Connection) -> _LogKeys:
        known = cls()
        query = (
            select(entries.c.seq, payloads.c.payload)
            .select_from(entries.join(payloads, payloads.c.seq == entries.c.seq))
            .where(entries.c.event_type == "key_rotation")
            .order_by(entries.c.seq)
        )
        for seq, payload in conn.execute(query):
            try:
                announcement = json.loads(payload)
            except ValueError:
                continue  # verify reports it; a writer only needs the keys it can read
            if isinstance(announcement, dict):
                known.add(seq, announcement)
        return known

    def add(self, seq: int, announcement: dict[str, Any]) -> None:
        previous = self.keys.get(announcement.get("previous_key_id"))  # type: ignore[arg-type]
        if previous is not None and previous.retired_at is None:
            previous.retired_at = seq
        self.keys.setdefault(str(announcement.get("key_id")), _LogKey(seq))

    def valid(self, key_id: str) -> bool:
        known = self.keys.get(key_id)
        return known is not None and known.retired_at is None


def append_witness_line(path: Path, line: str) -> None:
    """Append one line to the witness file and fsync it (and, when it is new, its directory)."""
    created = not path.exists()
    if created:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line.encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)
    if created:
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)


# Reads (verify above all) take pages straight from a memory map instead of copying each one from the
# OS into SQLite's page cache: less CPU per entry when verify reads a large log (docs/audit.md has the
# figures). Writes still go through the journal as before. Capped by SQLite at its
# compile-time maximum (2 GB by default); pages beyond the map are read as usual.
SQLITE_READ_MMAP = "PRAGMA mmap_size = 2147483648"

# Seconds a writer waits for another writer's lock (the `audit.lock_timeout` setting) before it gives up
# with an AuditLockTimeout naming the database and the holder, instead of waiting forever (PostgreSQL)
# or printing the driver's traceback (SQLite).
DEFAULT_LOCK_TIMEOUT = 30.0


def _display_url(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url


def _make_engine(url: str, create: bool, lock_timeout: float = DEFAULT_LOCK_TIMEOUT) -> Engine:
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
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            # Created empty (a valid SQLite database) and private: SQLite gives its WAL and SHM files
            # the database file's permissions.
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
        engine = create_engine(parsed)

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            # Let SQLAlchemy's "begin" event issue BEGIN itself, so writers can ask for IMMEDIATE.
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            # A writer waits this long for another's write lock, then fails (`_lock_timeout_error`).
            cursor.execute(f"PRAGMA busy_timeout = {max(1, round(lock_timeout * 1000))}")
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


def _write_head(conn: Connection, state: _Head, signed: dict[str, Any] | None) -> None:
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


class AuditLog:
    """An append-only, hash-chained, Merkle-tree audit log with signed checkpoints."""

    def __init__(self, engine: Engine, url: str, keys_dir: Path | None, checkpoint_every: int | None) -> None:
        self.engine = engine
        self.url = url
        self.keys_dir = keys_dir
        self.checkpoint_every = checkpoint_every
        self.witness: Path | None = None
        self.witness_command: list[str] | None = None
        self.trusted_keys: list[str | Path] = []
        self.sign_heads = True
        self.lock_timeout = DEFAULT_LOCK_TIMEOUT
        self._log_keys = _LogKeys()  # the keys the log announced, as of the last write transaction
        self._signing_key: tuple[str, Ed25519PrivateKey] | None = None  # signed a committed head last
        self._signed_under: str | None = None  # the head row's key_id (last key announced) when it did
        self._writer = threading.Lock()  # this object's writers, one at a time (SQLite: see _one_writer)

    # -- opening ---------------------------------------------------------------------------------
    @classmethod
    def open(
        cls, url: str, keys_dir: Path | None = None, checkpoint_every: int | None = None, *, create: bool = True,
        witness: Path | None = None, witness_command: Sequence[str] | None = None,
        trusted_keys: Sequence[str | Path] = (), sign_heads: bool = True,
        lock_timeout: float = DEFAULT_LOCK_TIMEOUT, auto_upgrade: bool | None = None,
    ) -> AuditLog:
        """Open (and by default create) the log at a SQLAlchemy URL; `create=False` for read-only tools.

        Every committed append transaction signs the tree head with the workspace's key (in
        `keys_dir`, never in the database) and stores it in ``audit_signed_heads``; `witness` is a
        JSONL file outside the database that receives each signed head too (appended and fsynced after
        the commit), and `witness_command` an argv that receives each one as a JSON line on stdin.
        `trusted_keys`: public key files or key ids that `verify` trusts beside the keys directory's
        own. `sign_heads=False` only for measuring what signing costs (bench/audit_bench.py).
        `lock_timeout`: seconds a writer waits for another writer's lock before an AuditError that
        names the database and, where the database can tell, who holds the lock.
        `auto_upgrade`: bring a log made by an older Docket to the current schema on open (None: yes
        on SQLite; on PostgreSQL an AuditError names `docket db upgrade` instead). A new log is made
        at the current schema either way.
        """
        if checkpoint_every is not None and checkpoint_every < 1:
            raise AuditError(f"checkpoint_every must be at least 1, not {checkpoint_every}")
        if witness_command is not None and (isinstance(witness_command, str) or not witness_command):
            raise AuditError("witness_command must be a command as a list of arguments, e.g. ['witness-put', '--log', 'x']")
        if not lock_timeout > 0:
            raise AuditError(f"lock_timeout must be a positive number of seconds, not {lock_timeout}")
        engine = _make_engine(url, create, lock_timeout)
        log = cls(engine, url, keys_dir, checkpoint_every)
        log.lock_timeout = lock_timeout
        log.witness = Path(witness) if witness is not None else None
        log.witness_command = list(witness_command) if witness_command is not None else None
        log.trusted_keys = list(trusted_keys)
        log.sign_heads = sign_heads
        try:
            with log._connection(write=create) as conn, conn.begin():
                if create and conn.dialect.name == "postgresql":
                    # Concurrent openers of a fresh database would race on CREATE TABLE.
                    conn.exec_driver_sql("SELECT pg_advisory_xact_lock(hashtext(current_schema()))")
                # The schema is created in one transaction, so the head row means all of it exists.
                fresh = not inspect(conn).has_table("audit_head")
                if fresh and not create:
                    raise AuditError(f"no audit log in {_display_url(url)} (check --db / the audit_url setting)")
                if AUDIT_MIGRATIONS.current(conn) != AUDIT_MIGRATIONS.head:
                    # New, or made before migrations or before the newest one: the migrations add
                    # tables and triggers only (audit/migrations/), never touching an entry.
                    if conn.dialect.name == "postgresql" and not create:
                        conn.exec_driver_sql("SELECT pg_advisory_xact_lock(hashtext(current_schema()))")
                    allowed = (conn.dialect.name != "postgresql") if auto_upgrade is None else auto_upgrade
                    AUDIT_MIGRATIONS.ensure(conn, auto_upgrade=allowed, fresh=fresh, where=_display_url(url))
                if fresh:
                    conn.execute(
                        insert(head).values(
                            id=1, log_id=uuid.uuid4().hex, size=0, head_hash=GENESIS_HASH,
                            frontier="[]", checkpoint_size=0, key_id=None,
                        )
                    )
        except DBAPIError as error:
            if _is_lock_timeout(error):
                lock_error = log._lock_timeout_error()
                engine.dispose()
                raise lock_error from None
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
    def _lock_timeout_error(self) -> AuditLockTimeout:
        """The one-line error for a writer that waited `lock_timeout` in vain, naming who holds the lock."""
        waited = f"{self.lock_timeout:g} s"
        if self.engine.dialect.name == "sqlite":
            path = Path(self.engine.url.database or "")
            holders = _sqlite_lock_holders(path)
            held = f" (held by {holders})" if holders else ""
            return AuditLockTimeout(
                f"another process holds the write lock on {path}{held}; waited {waited} (audit.lock_timeout): "
                "retry when it has finished, or raise audit.lock_timeout"
            )
        holders = _postgres_lock_holders(self.engine)
        return AuditLockTimeout(
            f"the audit log's write lock on {_display_url(self.url)} is held by {holders or 'another session'}; "
            f"waited {waited} (audit.lock_timeout): end that transaction, or raise audit.lock_timeout"
        )

    @contextmanager
    def _locked(self) -> Iterator[tuple[Connection, _Head]]:
        """One write transaction holding the writers' lock, with the head to extend.

        A transaction that appended signs the new tree head before it commits; the witness gets it after.
        """
        signed = signed_with = state = None
        try:
            with self._one_writer(), self._connection(write=True) as conn, conn.begin():
                if conn.dialect.name == "postgresql":  # SQLite: the busy timeout set on connect
                    conn.exec_driver_sql(f"SET LOCAL lock_timeout = {max(1, round(self.lock_timeout * 1000))}")
                row = conn.execute(select(head).where(head.c.id == 1).with_for_update()).one()
                state = _Head(
                    row.log_id, row.size, row.head_hash,
                    Frontier(row.size, [bytes.fromhex(h) for h in json.loads(row.frontier)]),
                    row.checkpoint_size, row.key_id,
                )
                size_before = state.size
                yield conn, state
                if state.size != size_before:
                    signed, signed_with = self._sign_head_locked(conn, state)
                _write_head(conn, state, signed)
        except (DBAPIError, self.engine.dialect.loaded_dbapi.Error) as error:  # the latter: from `_write_head`
            if _is_lock_timeout(error):
                raise self._lock_timeout_error() from None
            raise AuditError(f"audit write failed on {_display_url(self.url)}: {_first_line(error)}") from None
        if signed is not None:
            cached = self._signing_key
            if (cached is None or cached[0] != signed["key_id"]) and self.keys_dir is not None \
                    and KeyStore(self.keys_dir).has_private(signed["key_id"]):
                self._signing_key = (signed["key_id"], signed_with)
            self._signed_under = state.key_id
            self._send_to_witness(signed)

    @contextmanager
    def _one_writer(self) -> Iterator[None]:
        """On SQLite, this object's threads write one at a time, queued on a thread lock taken before SQLite's.

        A writer waiting for SQLite's lock polls it, asleep up to 100 ms between tries (its busy handler), so
        a dozen threads appending at once (the service's asks) spent most of an append asleep while the lock
        stood free. Other processes still queue on SQLite's lock; PostgreSQL's row lock queues waiters itself."""
        if self.engine.dialect.name != "sqlite":
            yield
            return
        if not self._writer.acquire(timeout=self.lock_timeout):
            raise self._lock_timeout_error()
        try:
            yield
        finally:
            self._writer.release()

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
        state.appended_at = fields["time"]
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

    def _writer_key_locked(
        self, conn: Connection, state: _Head, actor: str, *, announce: bool
    ) -> tuple[str, Ed25519PrivateKey]:
        """This workspace's signing key, valid in the log: the key heads and checkpoints are signed with.

        Several writers' keys can be valid at once. The log's first key is announced lazily (`announce`:
        at the first checkpoint, enrolment or rotation), so that the entries before stay where they are;
        its heads before that are valid (`ChainVerifier.key_valid_at`). A workspace that holds a valid
        key but made another one active hands over from it; one that holds none must be enrolled.

        The key that signed this object's last committed head is used again, with no query, file or PEM
        parse, while the head row names the same last-announced key as then: a key becomes valid or
        retired only by a key_rotation event, and each sets that column. A rotation by another process
        of this workspace (a new ACTIVE) is such an event; an ACTIVE edited by hand takes effect at the
        next key event, checkpoint, or when the log is opened again.
        """
        cached = self._signing_key
        if cached is not None and not announce and state.key_id == self._signed_under:
            return cached
        store = self.key_store()
        key_id, key = store.active()
        known = self._log_keys = _LogKeys.read(conn)
        if known.valid(key_id):
            return key_id, key
        if key_id in known.keys:
            raise AuditError(
                f"signing key {key_id} in {store.directory} was retired at seq {known.keys[key_id].retired_at}; "
                "make the key that replaced it active (keys/ACTIVE) or rotate from a valid one"
            )
        if not known.keys:
            # No key announced yet: the first writer's heads are all signed by one key, so the newest says whose.
            newest = conn.execute(select(signed_heads.c.key_id).order_by(signed_heads.c.size.desc()).limit(1)).scalar()
            if newest not in (None, key_id) and not store.has_private(newest):
                raise AuditError(self._not_enrolled(store, key_id, f"the workspace holding key {newest}"))
            if announce:
                self._announce_locked(conn, state, actor, key_id, key)
            return key_id, key
        own_valid = [k for k in known.keys if known.valid(k) and store.has_private(k)]
        if own_valid:  # ACTIVE names a key the log has not seen: hand over from this workspace's valid key
            self._announce_locked(conn, state, actor, key_id, key, previous=(own_valid[-1], store.private(own_valid[-1])))
            return key_id, key
        raise AuditError(self._not_enrolled(store, key_id, "a workspace whose key is enrolled"))

    def _not_enrolled(self, store: KeyStore, key_id: str, who: str) -> str:
        return (
            f"this workspace's signing key {key_id} is not enrolled in the audit log {_display_url(self.url)}: "
            f"copy {store.directory / (key_id + '.pub')} to {who} and run `docket audit enrol-key FILE` there"
        )

    def _announce_locked(
        self, conn: Connection, state: _Head, actor: str, key_id: str, key: Ed25519PrivateKey, *,
        previous: tuple[str, Ed25519PrivateKey] | None = None, endorser: tuple[str, Ed25519PrivateKey] | None = None,
    ) -> None:
        """Append a key_rotation event (v2): the first key, a handover from `previous`, or a key `endorser` enrols."""
        public = public_hex(key.public_key()) if isinstance(key, Ed25519PrivateKey) else public_hex(key)
        announcement: dict[str, Any] = {
            "v": KEY_ANNOUNCEMENT_VERSION, "log_id": state.log_id, "key_id": key_id, "public_key": public,
            "previous_key_id": previous[0] if previous else None,
        }
        if previous is not None:
            message = handover_message(state.log_id, key_id, public, previous[0])
            announcement["handover_signature"] = previous[1].sign(message).hex()
        if endorser is not None:
            announcement["endorsed_by"] = endorser[0]
            message = endorsement_message(state.log_id, key_id, public, endorser[0])
            announcement["endorsement_signature"] = endorser[1].sign(message).hex()
        self._append_locked(
            conn, state, "key_rotation", canonical_payload(announcement),
            actor=actor, request_id=None, subject_list=(f"key:{key_id}",), status=None,
        )
        self._log_keys.add(state.size, announcement)  # read again by the next transaction
        state.key_id = key_id

    def _sign_head_locked(self, conn: Connection, state: _Head) -> tuple[dict[str, Any] | None, Any]:
        """Sign the transaction's new tree head, to be stored beside the chain; (head, key), or (None, None)."""
        if not self.sign_heads:
            return None, None
        if self.keys_dir is None:
            # A log whose writers sign their heads must not get entries that no head covers.
            if conn.execute(select(signed_heads.c.size).limit(1)).first() is not None:
                raise AuditError(
                    f"the audit log {_display_url(self.url)} signs its head on every append: open it with the "
                    "workspace's keys directory (--keys / DOCKET_AUDIT_KEYS)"
                )
            return None, None
        key_id, key = self._writer_key_locked(conn, state, "docket-audit", announce=False)
        # Timed like its newest entry, microseconds before: one clock reading and formatting fewer per append.
        signed: dict[str, Any] = {
            "format": CHECKPOINT_FORMAT, "log_id": state.log_id, "size": state.size,
            "root": state.frontier.root().hex(), "time": state.appended_at or utc_now(), "key_id": key_id,
        }
        signed["signature"] = key.sign(head_message(signed)).hex()
        return signed, key  # stored by `_locked`, with the head row

    def _send_to_witness(self, signed: dict[str, Any]) -> None:
        """After the commit: the head to the witness file (fsynced) and the witness command.

        The entry is committed whatever happens here; a failure is logged (stderr by default) so
        that someone sees the witness fall behind, and the next head the witness gets covers it.
        """
        if self.witness is None and not self.witness_command:
            return
        line = json.dumps(signed, sort_keys=True, separators=(",", ":")) + "\n"
        if self.witness is not None:
            try:
                append_witness_line(self.witness, line)
            except OSError as error:
                _log.warning("audit witness %s: could not append the signed head of size %s: %s", self.witness, signed["size"], error)
        if self.witness_command:
            try:
                done = subprocess.run(
                    self.witness_command, input=line, text=True, capture_output=True, timeout=WITNESS_COMMAND_TIMEOUT, check=False
                )
            except (OSError, subprocess.TimeoutExpired) as error:
                _log.warning("audit witness command %s failed for the head of size %s: %s", self.witness_command[0], signed["size"], error)
            else:
                if done.returncode != 0:
                    why = (done.stderr.strip().splitlines() or [f"exit code {done.returncode}"])[-1]
                    _log.warning("audit witness command %s failed for the head of size %s: %s", self.witness_command[0], signed["size"], why)

    def enrol_key(self, public_key_file: Path, *, actor: str) -> str:
        """Endorse another writer's public key with this workspace's valid key: it may then sign this log."""
        try:
            loaded = load_pem_public_key(public_key_file.read_bytes())
        except OSError as error:
            raise AuditError(f"cannot read the public key {public_key_file}: {error.strerror or error}") from None
        except ValueError:
            raise AuditError(f"{public_key_file}: not a PEM public key (the .pub file of the other workspace's keys/)") from None
        if not isinstance(loaded, Ed25519PublicKey):
            raise AuditError(f"{public_key_file}: not an Ed25519 public key")
        new_id = key_id_of(loaded)
        with self._locked() as (conn, state):
            own_id, own = self._writer_key_locked(conn, state, actor, announce=True)
            if new_id in self._log_keys.keys:
                raise AuditError(f"key {new_id} is already announced in this log (seq {self._log_keys.keys[new_id].from_seq})")
            self._announce_locked(conn, state, actor, new_id, loaded, endorser=(own_id, own))
        return new_id

    def _checkpoint_locked(self, conn: Connection, state: _Head, actor: str) -> dict[str, Any]:
        key_id, key = self._writer_key_locked(conn, state, actor, announce=True)
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
            # Retires only this writer's own key: the handover is signed by it (other writers' keys stay valid).
            old_id, old = self._writer_key_locked(conn, state, actor, announce=True)
            key_id, key = store.generate()
            self._announce_locked(conn, state, actor, key_id, key, previous=(old_id, old))
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
        """Entries in seq order matching `filters`; a subject is matched in the chained entry, not the index."""
        with self._connection() as conn, conn.begin():
            for row in _filtered_rows(conn, filters, up_to):
                yield _entry(row, self._redaction_of(conn, row.seq) if row.payload is None else None)

    def stored_rows(self, filters: EntryFilter, up_to: int | None = None) -> Iterator[dict[str, Any]]:
        """Entries exactly as stored (payload text and salt included), for export bundles."""
        with self._connection() as conn, conn.begin():
            for row in _filtered_rows(conn, filters, up_to):
                yield _row_to_dict(row)

    # -- verification and proofs -------------------------------------------------------------------
    def verify(
        self, checkpoint: Path | None = None, *, workers: int | None = None, range_size: int | None = None,
        witness: Path | None = None,
    ) -> VerifyReport:
        """Stream the whole log once; OK with size and root, or the first bad seq and why.

        With `workers` > 1 a large log is checked by that many processes, each over ranges of
        `range_size` seqs (a power of two; default: about a quarter of a worker's share, at least
        4096), with the same report as a single pass. The default, one, checks it in this process
        alone: more processes only pay where that many cores sit idle (docs/audit.md, *Measured*).

        Then the signed heads (`ChainVerifier.check_tree_heads`): the newest must cover the whole log,
        and each, like each line of the witness file (`witness`, default the one the log was opened
        with), must sign the root the chain has at its size, with a key valid there. Trusted: the keys
        directory's public keys (with the log's first key, pinned there on first sight) and `trusted_keys`.
        """
        outside = read_checkpoint(checkpoint) if checkpoint is not None else None
        trusted, heads_expected = self._trust_anchors()
        witness = witness if witness is not None else self.witness
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
                        after_chain=_checks_in_turn(
                            functools.partial(_check_signed_heads, conn, witness, heads_expected),
                            functools.partial(_check_derived_tables, conn, state.size),
                        ),
                    )

    def _trust_anchors(self) -> tuple[dict[str, Ed25519PublicKey] | None, bool]:
        """The keys `verify` trusts (None: none given, trust what the log announces), and whether heads are due.

        The log's first key is pinned into the keys directory the first time this workspace sees it
        (trust on first use, like SSH): a log rewritten later under another first key then fails.
        Heads are due when this workspace holds a private key but the log announces none: such a
        workspace signs a head with every append, so a log of its without heads lost them.
        """
        with self._connection() as conn, conn.begin():
            log_id = conn.execute(select(head.c.log_id)).scalar_one()
            announcements = _key_announcements(conn)
        if self.keys_dir is None and not self.trusted_keys:
            return None, False
        anchors: dict[str, Ed25519PublicKey] = {}
        holds_private = False
        if self.keys_dir is not None:
            store = self.key_store()
            anchors.update(store.public_keys())
            holds_private = self.keys_dir.is_dir() and any(self.keys_dir.glob("*.key"))
            if announcements:
                _pin_first_key(self.keys_dir, log_id, announcements[0], anchors)
        for item in self.trusted_keys:
            anchors.update(_trusted_key(item, announcements))
        return anchors, holds_private and not announcements

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


def _key_announcements(conn: Connection) -> list[dict[str, Any]]:
    """The payloads of the log's key_rotation events that parse as JSON objects, in seq order."""
    query = (
        select(payloads.c.payload)
        .select_from(entries.join(payloads, payloads.c.seq == entries.c.seq))
        .where(entries.c.event_type == "key_rotation")
        .order_by(entries.c.seq)
    )
    found = []
    for (payload,) in conn.execute(query):
        try:
            parsed = json.loads(payload)
        except ValueError:
            continue  # verify reports it at its seq
        if isinstance(parsed, dict):
            found.append(parsed)
    return found


def _announced_key(announcement: dict[str, Any]) -> Ed25519PublicKey | None:
    try:
        return Ed25519PublicKey.from_public_bytes(bytes.fromhex(announcement.get("public_key", "")))
    except (TypeError, ValueError):
        return None


def _pin_first_key(keys_dir: Path, log_id: str, first: dict[str, Any], anchors: dict[str, Ed25519PublicKey]) -> None:
    """Record the log's first key in the keys directory the first time it is seen, unless it is this workspace's own."""
    key = _announced_key(first)
    if key is None or key_id_of(key) in anchors:
        return
    pin = keys_dir / f"genesis-{log_id}.pub"
    if pin.exists():
        return  # pinned before: `public_keys()` already holds that key, and a different first key fails
    keys_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(pin, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo))
    anchors[key_id_of(key)] = key


_KEY_ID = re.compile(r"^[0-9a-f]{16}$")


def _trusted_key(item: str | Path, announcements: list[dict[str, Any]]) -> dict[str, Ed25519PublicKey]:
    """One `audit.trusted_keys` entry: a PEM public key file, or the id of a key the log announces."""
    text = str(item)
    if _KEY_ID.match(text) and not Path(text).exists():
        for announcement in announcements:
            key = _announced_key(announcement)
            if key is not None and key_id_of(key) == text:
                return {text: key}
        raise AuditError(f"trusted key {text}: no key with that id is announced in this log; give its public key file instead")
    path = Path(text).expanduser()
    try:
        key = load_pem_public_key(path.read_bytes())
    except OSError as error:
        raise AuditError(f"trusted key {path}: cannot be read ({error.strerror or error})") from None
    except ValueError:
        raise AuditError(f"trusted key {path}: not a PEM public key file (nor a 16-hex key id)") from None
    if not isinstance(key, Ed25519PublicKey):
        raise AuditError(f"trusted key {path}: not an Ed25519 public key")
    return {key_id_of(key): key}


# A witness line is one signed head of a few hundred bytes; longer is not one, and is not read whole.
_WITNESS_LINE_MAX = 4096


def read_witness(path: Path) -> list[TreeHead]:
    """The signed heads of a witness file, by size; a line that is not one is a ChainProblem naming it."""
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        return []
    except OSError as error:
        raise ChainProblem(None, f"witness {path}: cannot be read ({error.strerror or error})") from None
    items = []
    with handle:
        for number, raw in enumerate(iter(lambda: handle.readline(_WITNESS_LINE_MAX + 1), b""), start=1):
            where = f"witness {path} line {number}"
            if len(raw) > _WITNESS_LINE_MAX:
                raise ChainProblem(None, f"{where}: longer than {_WITNESS_LINE_MAX} bytes, not a signed head")
            if not raw.strip():
                continue
            try:
                signed = json.loads(raw)
            except (ValueError, RecursionError):
                raise ChainProblem(None, f"{where}: not JSON (a torn or edited line)") from None
            if not isinstance(signed, dict):
                raise ChainProblem(None, f"{where}: not a signed head (a JSON object is expected)")
            if type(signed.get("size")) is not int or signed["size"] < 0:
                raise ChainProblem(None, f"{where}: field 'size' is missing or not a whole number")
            items.append(TreeHead(where, signed, witness=str(path)))
    items.sort(key=lambda item: item.head["size"])
    return items


def _check_signed_heads(conn: Connection, witness: Path | None, heads_expected: bool, verifier: ChainVerifier) -> None:
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


def _checks_in_turn(*checks: Any) -> Any:
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


def _check_derived_tables(conn: Connection, size: int, _verifier: ChainVerifier | None = None) -> None:
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
        raise ChainProblem(None, f"cannot compare the derived tables with the chain: {_first_line(error)}") from None
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
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

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


def _filtered_rows(conn: Connection, filters: EntryFilter, up_to: int | None) -> Iterator[Any]:
    """The rows `_filtered_query` selects, each subject match checked again in Python on the chained column."""
    postgres = conn.dialect.name == "postgresql"
    try:
        for row in conn.execution_options(yield_per=1000).execute(_filtered_query(filters, up_to, postgres)):
            # The database's JSON functions chose the row; the entry's own subjects, parsed as the leaf
            # parses them, decide (an entry whose subjects column is not a list of strings never matches).
            if filters.subject is None or _names_subject(row.subjects, filters.subject):
                yield row
    except DBAPIError as error:
        raise AuditError(f"cannot read the audit log {_display_url(str(conn.engine.url))}: {_first_line(error)}") from None


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
        query = query.where(_chained_subject_match(filters.subject, postgres))
    if filters.text:
        escaped = filters.text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        query = query.where(payloads.c.payload.ilike(f"%{escaped}%", escape="\\"))
    return query


def _is_lock_timeout(error: Exception) -> bool:
    """PostgreSQL's lock_not_available (SET LOCAL lock_timeout ran out), SQLite's busy timeout ran out.

    `error`: SQLAlchemy's DBAPIError, or the driver's own error from a statement run on its cursor.
    """
    orig = getattr(error, "orig", error)
    if getattr(orig, "sqlstate", None) == "55P03":
        return True
    return type(orig).__module__.startswith("sqlite3") and "database is locked" in str(orig)


def _postgres_lock_holders(engine: Engine) -> str:
    """The sessions holding a write-type lock on audit_head (pid, application, client, state, since when)."""
    query = """
        SELECT a.pid, a.application_name, host(a.client_addr), a.state,
               to_char(a.xact_start AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'), a.wait_event_type = 'Lock'
        FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
        WHERE l.locktype = 'relation' AND l.relation = to_regclass('audit_head') AND l.granted
          AND l.mode <> 'AccessShareLock' AND l.pid <> pg_backend_pid()
        ORDER BY a.xact_start"""
    try:
        with engine.connect() as conn, conn.begin():
            conn.exec_driver_sql("SET LOCAL statement_timeout = 5000")  # a diagnosis must not hang in turn
            rows = conn.exec_driver_sql(query).all()
    except DBAPIError:
        return ""
    # Other waiters hold the same table lock; the holder is the one not waiting for a lock.
    holding = [row for row in rows if not row[5]] or rows
    return "; ".join(
        f"pid {pid} (application {application or '-'!r}, client {client or 'local socket'}, {state or 'unknown state'}"
        f"{f' since {since}' if since else ''})"
        for pid, application, client, state, since, _waiting in holding
    )


def _sqlite_lock_holders(path: Path) -> str:
    """Processes holding the WAL write lock of `path` (byte 120 of its -shm file), read from Linux's /proc/locks."""
    try:
        shm = os.stat(f"{path}-shm")
        lines = Path("/proc/locks").read_text().splitlines()
    except OSError:
        return ""
    device = f"{os.major(shm.st_dev):02x}:{os.minor(shm.st_dev):02x}:{shm.st_ino}"
    pids = []
    for line in lines:
        # "1: POSIX  ADVISORY  WRITE 4242 08:01:1234567 120 120"; a waiting request is prefixed "->".
        parts = line.split()
        if "->" in parts or len(parts) < 8 or parts[3] != "WRITE" or parts[5] != device:
            continue
        start, end = parts[6], parts[7]
        if start.isdigit() and int(start) <= 120 and (end == "EOF" or (end.isdigit() and int(end) >= 120)):
            pids.append(parts[4])
    named = []
    for pid in dict.fromkeys(pids):
        try:
            name = Path(f"/proc/{pid}/comm").read_text().strip()
        except OSError:
            name = ""
        named.append(f"pid {pid}{f' ({name})' if name else ''}{', this process' if pid == str(os.getpid()) else ''}")
    return ", ".join(named)


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
