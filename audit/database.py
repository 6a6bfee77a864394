"""The log's database: the engine for a SQLite file or PostgreSQL, and the one-line errors a failed
connection or a lock wait in vain turns into (naming the database and who holds its lock).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError

from audit.errors import AuditError


# Reads (verify above all) take pages straight from a memory map instead of copying each one from the
# OS into SQLite's page cache: less CPU per entry when verify reads a large log (docs/audit.md has the
# figures). Writes still go through the journal as before. Capped by SQLite at its
# compile-time maximum (2 GB by default); pages beyond the map are read as usual.
SQLITE_READ_MMAP = "PRAGMA mmap_size = 2147483648"


# Seconds a writer waits for another writer's lock (the `audit.lock_timeout` setting) before it gives up
# with an AuditLockTimeout naming the database and the holder, instead of waiting forever (PostgreSQL)
# or printing the driver's traceback (SQLite).
DEFAULT_LOCK_TIMEOUT = 30.0


def display_url(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url


def make_engine(url: str, create: bool, lock_timeout: float = DEFAULT_LOCK_TIMEOUT) -> Engine:
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
        raise AuditError(f"cannot use {display_url(url)}: {error}") from None


def is_lock_timeout(error: Exception) -> bool:
    """PostgreSQL's lock_not_available (SET LOCAL lock_timeout ran out), SQLite's busy timeout ran out.

    `error`: SQLAlchemy's DBAPIError, or the driver's own error from a statement run on its cursor.
    """
    orig = getattr(error, "orig", error)
    if getattr(orig, "sqlstate", None) == "55P03":
        return True
    return type(orig).__module__.startswith("sqlite3") and "database is locked" in str(orig)


def postgres_lock_holders(engine: Engine) -> str:
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


def sqlite_lock_holders(path: Path) -> str:
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


def first_line(error: BaseException) -> str:
    text = str(getattr(error, "orig", None) or error).strip()
    return text.splitlines()[0] if text else type(error).__name__
