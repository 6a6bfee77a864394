"""Schema migrations (Alembic) of pipeline's tables in the registry database: review state and identity.

The registry database has two environments (ingest/migrations/ says why): ingest's document tables
(``ingest_alembic_version``) and these (this directory, ``pipeline_alembic_version``). The audit log
has its own (audit/migrations/). ``upgrade_registry`` brings both registry environments to head,
ingest's first; it is what the composition root (pipeline.app), the review state and the identity
tables run on open. docs/architecture.md ("Migrations") says how to add a revision.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine

from ingest.migrations import (
    INGEST_MIGRATIONS, MigrationEnvironment, MigrationError, RegistryMigrations, auto_upgrade_default, ensure_at_head,
)

__all__ = [
    "PIPELINE", "PIPELINE_MIGRATIONS", "REGISTRY_MIGRATIONS", "MigrationError", "auto_upgrade_default",
    "upgrade_registry", "upgrade_registry_url",
]

PIPELINE = MigrationEnvironment(
    name="registry (review, identity)",
    script_location=Path(__file__).parent,
    version_table="pipeline_alembic_version",
    head="p0002",
    upgrade_command="docket db upgrade",
)

PIPELINE_MIGRATIONS = RegistryMigrations(
    environment=PIPELINE,
    tables=(
        "review_runs", "review_documents", "review_cells", "review_signoffs",
        "users", "api_tokens", "access_grants", "browser_sessions",
    ),
    # 0001 made the review tables (with ingest's), 0002 was ingest's alone, 0003 made the identity tables.
    from_legacy={"0001": "p0001", "0002": "p0001", "0003": "p0002"},
)

# Every environment of the registry database, in the order they run.
REGISTRY_MIGRATIONS = (INGEST_MIGRATIONS, PIPELINE_MIGRATIONS)


def upgrade_registry(engine: Engine, auto_upgrade: bool | None = None) -> bool:
    """Bring the registry database to head, ingest's tables then pipeline's; returns True when a migration ran."""
    return ensure_at_head(engine, REGISTRY_MIGRATIONS, auto_upgrade, retire_legacy=True)


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
