"""Schema migrations (Alembic) of the audit log, and their small runner (ingest/migrations/runner.py is its twin).

The audit log keeps a migration environment of its own (this directory, version table
``audit_alembic_version``) because an auditor runs ``audit/`` alone, with nothing of ``ingest/`` or
``pipeline/``. Audit migrations only ever add: CREATE TABLE, INDEX, TRIGGER. None rewrites, moves or
deletes an entry, since a changed byte would break the chain that verify recomputes.

Opening a database reads its version row with one plain query and imports Alembic only when the
database is behind, so the question path pays nothing for migrations.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Connection, inspect, text

from audit.errors import AuditError


class MigrationError(AuditError):
    """A database is behind (and may not be upgraded here) or ahead of this Docket: the message says what to run."""


@dataclass(frozen=True)
class MigrationEnvironment:
    name: str  # what the messages call the database: "audit", "registry"
    script_location: Path
    version_table: str
    head: str  # the newest revision; a test checks that it is the script directory's head
    upgrade_command: str  # what an operator runs to upgrade, named in the messages

    def current(self, conn: Connection) -> str | None:
        """The database's revision, or None when it has no version table (new, or made before migrations)."""
        if not inspect(conn).has_table(self.version_table):
            return None
        return conn.execute(text(f"SELECT version_num FROM {self.version_table}")).scalar()

    def config(self, conn: Connection | None = None, url: str | None = None):
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(self.script_location))
        cfg.set_main_option("version_table", self.version_table)
        if url is not None:
            cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
        cfg.attributes["connection"] = conn
        return cfg

    def ensure(self, conn: Connection, *, auto_upgrade: bool, fresh: bool, where: str) -> bool:
        """Bring the database on `conn` to head when allowed; returns True when a migration ran.

        `fresh`: the database holds none of this environment's tables, so creating them is never a
        surprise to anyone and runs even when `auto_upgrade` is off. Otherwise a database behind head
        with `auto_upgrade` off raises a MigrationError naming the command to run.
        """
        current = self.current(conn)
        if current == self.head:
            return False
        if current is not None and current not in self.known_revisions():
            raise MigrationError(
                f"the {self.name} database {where} is at revision {current}, which this Docket does not know "
                f"(its newest is {self.head}): it was upgraded by a newer Docket; upgrade Docket to open it"
            )
        if not (auto_upgrade or fresh):
            raise MigrationError(
                f"the {self.name} database {where} is at revision {current or 'none (made before migrations)'}, "
                f"this Docket needs {self.head}: run `{self.upgrade_command}` (or `{self.upgrade_command} --sql` "
                "to print the SQL for a database administrator)"
            )
        self.upgrade(conn)
        return True

    def known_revisions(self) -> set[str]:
        from alembic.script import ScriptDirectory

        return {script.revision for script in ScriptDirectory.from_config(self.config()).walk_revisions()}

    def upgrade(self, conn: Connection) -> None:
        from alembic import command

        command.upgrade(self.config(conn), "head")

    def upgrade_sql(self, url: str, current: str | None) -> str:
        """The SQL that upgrades a database at `current` to head (Alembic's offline mode), as text."""
        import contextlib
        import io

        from alembic import command

        cfg = self.config(url=url)
        out = io.StringIO()
        cfg.output_buffer = out
        with contextlib.redirect_stdout(out):
            command.upgrade(cfg, f"{current}:head" if current else "head", sql=True)
        return out.getvalue()


AUDIT = MigrationEnvironment(
    name="audit",
    script_location=Path(__file__).parent,
    version_table="audit_alembic_version",
    head="a0002",
    upgrade_command="docket db upgrade",
)
