"""Schema migrations (Alembic) of ingest's tables in the registry database: documents, versions, pages, chunks, index state.

The registry database holds the tables of two packages, each with its own environment and version
table: ingest's (this directory, ``ingest_alembic_version``) and pipeline's review and identity tables
(pipeline/migrations/, ``pipeline_alembic_version``). Two environments, so that ingest, which pipeline
builds on, never imports pipeline. ``open_registry`` brings ingest's to head; the composition root
(pipeline.migrations.upgrade_registry) brings both, ingest's first. The runner is ingest's own
(ingest/migrations/runner.py), so ingest imports neither pipeline nor audit.

From dcd0ea4 until the split, one environment in pipeline/migrations/ stamped the whole registry in
``docket_alembic_version`` (revisions 0001-0003). A registry stamped there has each environment's
revision read off it (``RegistryMigrations.from_legacy``) the first time that environment opens it,
and the old table is dropped once both have their own (``retire_legacy``).
"""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from sqlalchemy import Connection, Engine, inspect, text

from ingest.migrations.runner import MigrationEnvironment, MigrationError

__all__ = [
    "INGEST", "INGEST_MIGRATIONS", "LEGACY_VERSION_TABLE", "MigrationEnvironment", "MigrationError", "RegistryMigrations",
    "auto_upgrade_default", "ensure_at_head", "legacy_revision", "upgrade_ingest",
]

# The registry's one version table before ingest and pipeline had one each.
LEGACY_VERSION_TABLE = "docket_alembic_version"


@dataclass(frozen=True)
class RegistryMigrations:
    """One environment of the registry database and what it needs to open a database made before it."""

    environment: MigrationEnvironment
    # Any of these present: the database already has this environment's tables (so it is not new).
    tables: tuple[str, ...]
    # A revision of docket_alembic_version -> the revision of this environment it stood for.
    from_legacy: dict[str, str] = field(default_factory=dict)


INGEST = MigrationEnvironment(
    name="registry",
    script_location=Path(__file__).parent,
    version_table="ingest_alembic_version",
    head="i0003",
    upgrade_command="docket db upgrade",
)

INGEST_MIGRATIONS = RegistryMigrations(
    environment=INGEST,
    tables=("documents", "document_versions", "pages", "chunks", "index_state"),
    # 0001 made the document tables, 0002 added type and date; 0003 (identity tables) was pipeline's.
    from_legacy={"0001": "i0001", "0002": "i0002", "0003": "i0002"},
)

_at_head: weakref.WeakKeyDictionary[Engine, set[str]] = weakref.WeakKeyDictionary()  # version tables at head, per engine
_lock = threading.Lock()


def auto_upgrade_default(url: str) -> bool:
    """A workspace's own SQLite file upgrades itself; a shared PostgreSQL database waits for `docket db upgrade`.

    Other clients of a shared database may still run the older Docket, so its upgrade is the
    operator's decision; a new, empty database is created at head either way.
    """
    return not url.startswith("postgresql")


def legacy_revision(conn: Connection) -> str | None:
    """The revision in docket_alembic_version, or None when the database has no such table."""
    if not inspect(conn).has_table(LEGACY_VERSION_TABLE):
        return None
    return conn.execute(text(f"SELECT version_num FROM {LEGACY_VERSION_TABLE}")).scalar()


def ensure_at_head(
    engine: Engine,
    migrations: Sequence[RegistryMigrations],
    auto_upgrade: bool | None = None,
    *,
    retire_legacy: bool = False,
) -> bool:
    """Bring each environment of the registry on `engine` to head, in order, in one transaction; True when one ran.

    `auto_upgrade` None means ``auto_upgrade_default``. `retire_legacy`: the caller runs every
    environment of the registry, so once each has its own version row docket_alembic_version is dropped.
    Each engine is checked once per process and environment: the question path pays one query.
    """
    with _lock:
        done = _at_head.setdefault(engine, set())
        pending = [m for m in migrations if m.environment.version_table not in done]
        if not pending:
            return False
        allowed = auto_upgrade_default(engine.url.drivername) if auto_upgrade is None else auto_upgrade
        where = engine.url.render_as_string(hide_password=True)
        ran = False
        with engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                # Concurrent openers of one database would race on CREATE TABLE; the lock ends with the transaction.
                conn.exec_driver_sql("SELECT pg_advisory_xact_lock(hashtext(current_schema() || '.docket_registry'))")
            for m in pending:
                ran |= _adopt_legacy_stamp(conn, m, allowed, where)
                fresh = not any(inspect(conn).has_table(table) for table in m.tables)
                ran |= m.environment.ensure(conn, auto_upgrade=allowed, fresh=fresh, where=where)
            if retire_legacy and legacy_revision(conn) is not None:
                conn.exec_driver_sql(f"DROP TABLE {LEGACY_VERSION_TABLE}")
                ran = True
        done.update(m.environment.version_table for m in pending)
        return ran


def _adopt_legacy_stamp(conn: Connection, m: RegistryMigrations, allowed: bool, where: str) -> bool:
    """Stamp `m`'s version table at the revision docket_alembic_version stands for; True when it did.

    Counts as an upgrade (an older Docket sharing the database no longer finds its version row), so
    it runs only when upgrades are allowed.
    """
    env = m.environment
    if env.current(conn) is not None or (legacy := legacy_revision(conn)) is None:
        return False
    if legacy not in m.from_legacy:
        raise MigrationError(
            f"the {env.name} database {where} is at revision {legacy} (in {LEGACY_VERSION_TABLE}), which this "
            "Docket does not know: it was upgraded by a newer Docket; upgrade Docket to open it"
        )
    if not allowed:
        raise MigrationError(
            f"the {env.name} database {where} is at revision {legacy} in {LEGACY_VERSION_TABLE}, the version table "
            f"before ingest and pipeline had one each; this Docket needs {env.version_table}: "
            f"run `{env.upgrade_command}`"
        )
    from alembic import command

    command.stamp(env.config(conn), m.from_legacy[legacy])
    return True


def upgrade_ingest(engine: Engine, auto_upgrade: bool | None = None) -> bool:
    """Bring ingest's tables of the registry on `engine` to head (what ``open_registry`` runs)."""
    return ensure_at_head(engine, (INGEST_MIGRATIONS,), auto_upgrade)
