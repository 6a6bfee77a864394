"""Schema migrations (Alembic) of the registry database: documents, review state and identity tables.

They share one environment (this directory, version table ``docket_alembic_version``) because they
share one database. The audit log has its own (audit/migrations/). ``upgrade_registry`` is what
every open of the registry or the review state calls; docs/architecture.md ("Migrations") says how to
add a revision.
"""

from __future__ import annotations

import threading
import weakref
from pathlib import Path

from sqlalchemy import Engine, inspect

from audit.migrations import MigrationEnvironment, MigrationError

__all__ = ["REGISTRY", "MigrationError", "auto_upgrade_default", "upgrade_registry", "upgrade_registry_url"]

REGISTRY = MigrationEnvironment(
    name="registry",
    script_location=Path(__file__).parent,
    version_table="docket_alembic_version",
    head="0003",
    upgrade_command="docket db upgrade",
)

_at_head: weakref.WeakSet[Engine] = weakref.WeakSet()  # engines already brought to head in this process
_lock = threading.Lock()


def auto_upgrade_default(url: str) -> bool:
    """A workspace's own SQLite file upgrades itself; a shared PostgreSQL database waits for `docket db upgrade`.

    Other clients of a shared database may still run the older Docket, so its upgrade is the
    operator's decision; a new, empty database is created at head either way.
    """
    return not url.startswith("postgresql")


def upgrade_registry(engine: Engine, auto_upgrade: bool | None = None) -> bool:
    """Bring the registry database to head (see MigrationEnvironment.ensure); returns True when a migration ran."""
    with _lock:
        if engine in _at_head:
            return False
        allowed = auto_upgrade_default(engine.url.drivername) if auto_upgrade is None else auto_upgrade
        with engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                # Concurrent openers of one database would race on CREATE TABLE; the lock ends with the transaction.
                conn.exec_driver_sql("SELECT pg_advisory_xact_lock(hashtext(current_schema() || '.docket_registry'))")
            fresh = not inspect(conn).has_table("documents") and not inspect(conn).has_table("review_runs")
            ran = REGISTRY.ensure(conn, auto_upgrade=allowed, fresh=fresh, where=_display(engine))
        _at_head.add(engine)
        return ran


def _display(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=True)


def upgrade_registry_url(url: str, auto_upgrade: bool | None = None) -> bool:
    """``upgrade_registry`` on a URL (an engine of its own, disposed after)."""
    from ingest.registry import make_engine

    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    engine = make_engine(url)
    try:
        return upgrade_registry(engine, auto_upgrade)
    finally:
        engine.dispose()
