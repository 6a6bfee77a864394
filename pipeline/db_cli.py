"""``docket db``: where the workspace's databases stand against this Docket's migrations, and upgrading them.

Both databases, three environments: the registry's document tables (ingest/migrations/) and its review
and identity tables (pipeline/migrations/), and the audit log (audit/migrations/). ``--sql`` prints
the SQL instead of running it, for a database administrator who applies changes to a shared
PostgreSQL database by hand.
"""

from __future__ import annotations

from typing import Annotated, Any, Callable

import typer
from sqlalchemy import create_engine, inspect

from pipeline.cli_plumbing import FAILED, JsonFlag, print_json


def _environments(settings) -> list[tuple[Any, tuple[str, ...], str]]:
    """(environment, the tables that say a database already has its schema, the database's URL), in upgrade order."""
    from audit.migrations import AUDIT
    from pipeline.migrations import REGISTRY_MIGRATIONS

    registry = [(m.environment, m.tables, settings.resolved_registry_url) for m in REGISTRY_MIGRATIONS]
    return [*registry, (AUDIT, ("audit_head",), settings.resolved_audit_url)]


def _display(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def _status(env, tables: tuple[str, ...], url: str) -> dict[str, Any]:
    if url.startswith("sqlite:///") and not _sqlite_exists(url):
        return {"database": env.name, "url": _display(url), "revision": None, "head": env.head, "state": "absent"}
    from ingest.migrations import LEGACY_VERSION_TABLE, legacy_revision

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            current = env.current(conn)
            made = any(inspect(conn).has_table(table) for table in tables)
            legacy = legacy_revision(conn) if env.name != "audit" else None
    finally:
        engine.dispose()
    if current == env.head:
        state = "at head"
    elif current is None and legacy is not None:
        state = f"stamped {legacy} in {LEGACY_VERSION_TABLE}: upgrade"
    elif current is None:
        state = "made before migrations: upgrade" if made else "empty: created on first use"
    elif current in env.known_revisions():
        state = "behind: upgrade"
    else:
        state = "ahead: made by a newer Docket"
    return {"database": env.name, "url": _display(url), "revision": current, "head": env.head, "state": state}


def _sqlite_exists(url: str) -> bool:
    from pathlib import Path

    return Path(url.removeprefix("sqlite:///")).is_file()


def make_db_app(settings: Callable[[], Any]) -> typer.Typer:
    app = typer.Typer(help="Show and upgrade the schema of the workspace's databases (registry and audit log).", no_args_is_help=True)

    @app.command("status")
    def status(as_json: JsonFlag = False) -> None:
        """Each database's revision against this Docket's newest; exit 1 when one needs `docket db upgrade`."""
        rows = [_status(env, tables, url) for env, tables, url in _environments(settings())]
        if as_json:
            print_json(rows)
        else:
            for row in rows:
                typer.echo(f"{row['database']:<28} {row['revision'] or '-':<6} head {row['head']:<6} {row['state']}  ({row['url']})")
        if any(row["state"].endswith(": upgrade") or row["state"].startswith("ahead") for row in rows):
            raise typer.Exit(FAILED)

    @app.command("upgrade")
    def upgrade(
        sql: Annotated[bool, typer.Option("--sql", help="Print the SQL that would upgrade each database; change nothing.")] = False,
    ) -> None:
        """Bring the registry and the audit log to this Docket's schema (tables, indexes and triggers only)."""
        s = settings()
        if sql:
            for env, tables, url in _environments(s):
                row = _status(env, tables, url)
                if row["state"] == "at head":
                    typer.echo(f"-- {env.name}: at head ({env.head}), nothing to run")
                    continue
                if row["state"].startswith(("made before migrations", "stamped")):
                    # Made before migrations: its first revisions look at what exists before creating it. Stamped in
                    # the old version table: that is read and dropped on the way. Neither is SQL to print.
                    typer.echo(f"-- {env.name} ({row['url']}) was made before migrations: run `docket db upgrade`")
                    continue
                typer.echo(f"-- {env.name} ({row['url']}): from {row['revision'] or 'nothing'} to {env.head}")
                typer.echo(env.upgrade_sql(url, row["revision"]))
            return
        from audit.log import AuditLog
        from pipeline.migrations import upgrade_registry_url

        upgrade_registry_url(s.resolved_registry_url, auto_upgrade=True)
        AuditLog.open(s.resolved_audit_url, keys_dir=s.keys_dir, auto_upgrade=True).close()
        for env, tables, url in _environments(s):
            typer.echo(f"{env.name}: at {_status(env, tables, url)['revision']} ({_display(url)})")

    return app
