"""`AuditLog`: append, read, verify, checkpoint, prove, annotate and redact on one SQL database.

Every write runs in one transaction holding the writers' lock: ``BEGIN IMMEDIATE`` on SQLite (WAL),
``SELECT ... FOR UPDATE`` on the ``audit_head`` row on PostgreSQL (READ COMMITTED). The next seq is
read from the head inside that lock, so a rollback or a killed writer leaves no gap and no half entry.

This module is the log's interface; the parts it is built from each have a module of their own:
`database` (the engine, lock and connection errors), `fields` (an event's fields), `head` (the head
under the lock and its write-back with the signed head), `log_keys` (the keys the log announces and
the ones verify trusts), `witness`, `queries` (reading entries back), `rows` (rows for verification,
straight from the driver) and `log_checks` (verify's steps beside the chain pass).
"""

from __future__ import annotations

import functools
import json
import logging
import os
import subprocess
import threading
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import Connection, Engine, insert, inspect, select
from sqlalchemy.exc import DBAPIError

from audit.canonical import canonical_payload
from audit.database import (
    DEFAULT_LOCK_TIMEOUT, display_url, first_line, is_lock_timeout, make_engine, postgres_lock_holders,
    sqlite_lock_holders,
)
from audit.errors import AuditError, AuditLockTimeout
from audit.export import export_bundle
from audit.fields import check_fields
from audit.files import read_checkpoint, write_json
from audit.head import Head, head_message, write_head
from audit.keys import KeyStore, public_hex
from audit.log_checks import (
    DEFAULT_VERIFY_WORKERS, DriverLink, RangeTask, check_derived_tables, check_signed_heads,
    check_stored_range, checks_in_turn, plan_ranges, range_pool, stored_payload,
)
from audit.log_keys import LogKeys, key_announcements, pin_first_key, read_public_key_file, trusted_key
from audit.merkle import MerkleTree
from audit.migrations import AUDIT as AUDIT_MIGRATIONS
from audit.queries import ENTRY_WITH_PAYLOAD, entry_of, filtered_rows, row_to_dict
from audit.records import AppendedEntry, DECISION_EVENTS, Entry, EntryFilter, NewEvent, Redaction, utc_now
from audit.rows import scan_entries
from audit.schema import entries, head, payloads, redactions, signed_heads, subjects
from audit.verification.chain import VerifyReport, verify_rows
from audit.verification.entries import (
    KEY_ANNOUNCEMENT_VERSION, checkpoint_message, endorsement_message, handover_message, key_id_of,
    leaf_bytes, payload_commitment,
)
from audit.verification.formats import CHECKPOINT_FORMAT, GENESIS_HASH, STRUCTURAL_EVENTS
from audit.verification.tree import Frontier, leaf_hash
from audit.witness import WITNESS_COMMAND_TIMEOUT, append_witness_line


# Names that other modules, benches and tests import from here (where they were defined before the
# log's parts got modules of their own).
from audit.database import SQLITE_READ_MMAP  # noqa: E402,F401
from audit.rows import PG_VERIFY_SETTINGS, range_query, stream_row_batches  # noqa: E402,F401


_log = logging.getLogger("audit")


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
        self._log_keys = LogKeys()  # the keys the log announced, as of the last write transaction
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
        engine = make_engine(url, create, lock_timeout)
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
                    raise AuditError(f"no audit log in {display_url(url)} (check --db / the audit_url setting)")
                if AUDIT_MIGRATIONS.current(conn) != AUDIT_MIGRATIONS.head:
                    # New, or made before migrations or before the newest one: the migrations add
                    # tables and triggers only (audit/migrations/), never touching an entry.
                    if conn.dialect.name == "postgresql" and not create:
                        conn.exec_driver_sql("SELECT pg_advisory_xact_lock(hashtext(current_schema()))")
                    allowed = (conn.dialect.name != "postgresql") if auto_upgrade is None else auto_upgrade
                    AUDIT_MIGRATIONS.ensure(conn, auto_upgrade=allowed, fresh=fresh, where=display_url(url))
                if fresh:
                    conn.execute(
                        insert(head).values(
                            id=1, log_id=uuid.uuid4().hex, size=0, head_hash=GENESIS_HASH,
                            frontier="[]", checkpoint_size=0, key_id=None,
                        )
                    )
        except DBAPIError as error:
            if is_lock_timeout(error):
                lock_error = log._lock_timeout_error()
                engine.dispose()
                raise lock_error from None
            engine.dispose()
            raise AuditError(f"cannot open the audit database {display_url(url)}: {first_line(error)}") from None
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
            holders = sqlite_lock_holders(path)
            held = f" (held by {holders})" if holders else ""
            return AuditLockTimeout(
                f"another process holds the write lock on {path}{held}; waited {waited} (audit.lock_timeout): "
                "retry when it has finished, or raise audit.lock_timeout"
            )
        holders = postgres_lock_holders(self.engine)
        return AuditLockTimeout(
            f"the audit log's write lock on {display_url(self.url)} is held by {holders or 'another session'}; "
            f"waited {waited} (audit.lock_timeout): end that transaction, or raise audit.lock_timeout"
        )

    @contextmanager
    def _locked(self) -> Iterator[tuple[Connection, Head]]:
        """One write transaction holding the writers' lock, with the head to extend.

        A transaction that appended signs the new tree head before it commits; the witness gets it after.
        """
        signed = signed_with = state = None
        try:
            with self._one_writer(), self._connection(write=True) as conn, conn.begin():
                if conn.dialect.name == "postgresql":  # SQLite: the busy timeout set on connect
                    conn.exec_driver_sql(f"SET LOCAL lock_timeout = {max(1, round(self.lock_timeout * 1000))}")
                row = conn.execute(select(head).where(head.c.id == 1).with_for_update()).one()
                state = Head(
                    row.log_id, row.size, row.head_hash,
                    Frontier(row.size, [bytes.fromhex(h) for h in json.loads(row.frontier)]),
                    row.checkpoint_size, row.key_id,
                )
                size_before = state.size
                yield conn, state
                if state.size != size_before:
                    signed, signed_with = self._sign_head_locked(conn, state)
                write_head(conn, state, signed)
        except (DBAPIError, self.engine.dialect.loaded_dbapi.Error) as error:  # the latter: from `write_head`
            if is_lock_timeout(error):
                raise self._lock_timeout_error() from None
            raise AuditError(f"audit write failed on {display_url(self.url)}: {first_line(error)}") from None
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
        self, conn: Connection, state: Head, event_type: str, payload_json: str, *,
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
            check_fields(item.event_type, item.actor, item.request_id, item.subjects, item.status)
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
        self, conn: Connection, state: Head, actor: str, *, announce: bool
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
        known = self._log_keys = LogKeys.read(conn)
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
            f"this workspace's signing key {key_id} is not enrolled in the audit log {display_url(self.url)}: "
            f"copy {store.directory / (key_id + '.pub')} to {who} and run `docket audit enrol-key FILE` there"
        )

    def _announce_locked(
        self, conn: Connection, state: Head, actor: str, key_id: str, key: Ed25519PrivateKey, *,
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

    def _sign_head_locked(self, conn: Connection, state: Head) -> tuple[dict[str, Any] | None, Any]:
        """Sign the transaction's new tree head, to be stored beside the chain; (head, key), or (None, None)."""
        if not self.sign_heads:
            return None, None
        if self.keys_dir is None:
            # A log whose writers sign their heads must not get entries that no head covers.
            if conn.execute(select(signed_heads.c.size).limit(1)).first() is not None:
                raise AuditError(
                    f"the audit log {display_url(self.url)} signs its head on every append: open it with the "
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
        loaded = read_public_key_file(
            public_key_file,
            unreadable="cannot read the public key {path}: {why}",
            not_pem="{path}: not a PEM public key (the .pub file of the other workspace's keys/)",
            not_ed25519="{path}: not an Ed25519 public key",
        )
        new_id = key_id_of(loaded)
        with self._locked() as (conn, state):
            own_id, own = self._writer_key_locked(conn, state, actor, announce=True)
            if new_id in self._log_keys.keys:
                raise AuditError(f"key {new_id} is already announced in this log (seq {self._log_keys.keys[new_id].from_seq})")
            self._announce_locked(conn, state, actor, new_id, loaded, endorser=(own_id, own))
        return new_id

    def _checkpoint_locked(self, conn: Connection, state: Head, actor: str) -> dict[str, Any]:
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
            row = conn.execute(ENTRY_WITH_PAYLOAD.where(entries.c.seq == seq)).first()
            if row is None:
                size = conn.execute(select(head.c.size)).scalar_one()
                raise AuditError(f"no entry with seq {seq}: the log holds seq 1..{size}")
            redaction = None
            if row.payload is None:
                redaction = self._redaction_of(conn, seq)
            return entry_of(row, redaction)

    def _redaction_of(self, conn: Connection, seq: int) -> Redaction | None:
        by = conn.execute(select(redactions.c.redaction_seq).where(redactions.c.seq == seq)).scalar()
        if by is None:
            return None
        event_row = conn.execute(ENTRY_WITH_PAYLOAD.where(entries.c.seq == by)).one()
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
            for row in filtered_rows(conn, filters, up_to):
                yield entry_of(row, self._redaction_of(conn, row.seq) if row.payload is None else None)

    def stored_rows(self, filters: EntryFilter, up_to: int | None = None) -> Iterator[dict[str, Any]]:
        """Entries exactly as stored (payload text and salt included), for export bundles."""
        with self._connection() as conn, conn.begin():
            for row in filtered_rows(conn, filters, up_to):
                yield row_to_dict(row)

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
                ranges = plan_ranges(state.size, workers, range_size)
                # Workers read the very snapshot this transaction reads (PostgreSQL can share it).
                snapshot = conn.exec_driver_sql("SELECT pg_export_snapshot()").scalar_one() if postgres and ranges else None
                mark = outside["size"] if outside is not None else None
                tasks = [RangeTask(DriverLink.of(self.engine), after, up_to, mark, snapshot) for after, up_to in ranges]
                with (
                    range_pool(min(workers, len(tasks))) as pool,
                    scan_entries(conn, after=ranges[-1][1] if ranges else None) as rest,
                ):
                    return verify_rows(
                        rest, trusted,
                        checked_ranges=pool.map(check_stored_range, tasks) if tasks else (),
                        # SQLite workers read their own, later snapshots, which may lack a payload
                        # erased by a redaction this snapshot does not hold yet.
                        stored_payload=None if postgres else functools.partial(stored_payload, conn),
                        log_id=state.log_id, outside_checkpoint=outside, checkpoint_label=str(checkpoint),
                        recorded_size=state.size,
                        after_chain=checks_in_turn(
                            functools.partial(check_signed_heads, conn, witness, heads_expected),
                            functools.partial(check_derived_tables, conn, state.size),
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
            announcements = key_announcements(conn)
        if self.keys_dir is None and not self.trusted_keys:
            return None, False
        anchors: dict[str, Ed25519PublicKey] = {}
        holds_private = False
        if self.keys_dir is not None:
            store = self.key_store()
            anchors.update(store.public_keys())
            holds_private = self.keys_dir.is_dir() and any(self.keys_dir.glob("*.key"))
            if announcements:
                pin_first_key(self.keys_dir, log_id, announcements[0], anchors)
        for item in self.trusted_keys:
            anchors.update(trusted_key(item, announcements))
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
        check_fields("redaction", actor, None, (), None)
        with self._locked() as (conn, state):
            row = conn.execute(ENTRY_WITH_PAYLOAD.where(entries.c.seq == seq)).first()
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
