"""Migrations: a workspace made before them opens, upgrades, answers, reviews and verifies; PostgreSQL waits to be told.

tests/fixtures/workspace_3aea598/ was made by the code at commit 3aea598 (its README says how): one
contract, one answer, one review cell, a checkpoint; no version tables, no signed heads.
"""

from __future__ import annotations

import re
import shutil
import sqlite3
import sys
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect, text
from typer.testing import CliRunner

from audit.log import AuditLog
from audit.migrations import AUDIT, MigrationError
from ingest.migrations import INGEST, INGEST_MIGRATIONS
from ingest.migrations import MigrationError as RegistryMigrationError
from ingest.registry import open_registry
from pipeline.cli import app, main
from pipeline.migrations import PIPELINE, upgrade_registry_url
from test_audit_support import pg_schema_url

FIXTURE = Path(__file__).parent / "fixtures" / "workspace_3aea598"
runner = CliRunner()

CHECKLIST = """\
name: migrations-test
title: One item
version: 1
items:
  - id: governing-law
    title: Governing law
    question: Which state's law governs the agreement?
    requirement: The agreement is governed by the laws of the State of New York or Delaware.
    severity: high
"""


def invoke(*args: str, code: int = 0):
    result = runner.invoke(app, list(args))
    assert result.exit_code == code, result.output
    return result


def leaf_hashes(db: Path) -> list[tuple[int, str, str]]:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT seq, prev_hash, leaf_hash FROM audit_entries ORDER BY seq").fetchall()


def tables(db: Path) -> set[str]:
    with sqlite3.connect(db) as conn:
        return {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


@pytest.fixture
def old_workspace(home: Path) -> Path:
    shutil.copytree(FIXTURE, home)
    return home


@pytest.mark.parametrize("env", [INGEST, PIPELINE, AUDIT], ids=lambda env: env.version_table)
def test_each_runner_names_its_script_directorys_head(env):
    assert ScriptDirectory.from_config(env.config()).get_current_head() == env.head


def test_the_audit_migrations_import_nothing_of_the_rest_of_docket():
    for path in (Path(AUDIT.script_location)).rglob("*.py"):
        source = path.read_text()
        assert not re.search(r"^\s*(from|import) (ingest|pipeline)\b", source, re.M), path


@pytest.mark.parametrize("dialect_url", ["sqlite:///x.db", "postgresql+psycopg://u@h/d"])
def test_the_audit_migrations_only_create(dialect_url: str):
    """Audit migrations never rewrite entries: their SQL is CREATE statements and the version row, nothing else."""
    sql = AUDIT.upgrade_sql(dialect_url, None)
    without_comments = "\n".join(line for line in sql.splitlines() if not line.startswith("--"))
    statements = [s.strip() for s in re.split(r";\n\s*\n", without_comments) if s.strip()]
    assert any(s.startswith("CREATE TABLE audit_signed_heads") for s in statements)
    for statement in statements:
        assert re.match(r"(CREATE |INSERT INTO audit_alembic_version|UPDATE audit_alembic_version|BEGIN|COMMIT)", statement), statement


def test_an_old_workspace_upgrades_on_open_and_asks_reviews_and_verifies(old_workspace: Path, tmp_path: Path):
    before = leaf_hashes(old_workspace / "audit.db")
    assert len(before) == 7
    assert "audit_signed_heads" not in tables(old_workspace / "audit.db")
    status = invoke("db", "status", code=1).output
    assert status.count("made before migrations") == 3, status  # the registry's two environments and the log

    asked = invoke("ask", "Which state's law governs the agreement?", "-c", "samples", "--json").stdout
    assert "California" in asked
    checklist = tmp_path / "one-item.yaml"
    checklist.write_text(CHECKLIST)
    invoke("review", "run", str(checklist), "-c", "samples")
    verified = invoke("audit", "verify").output
    assert verified.startswith("OK"), verified

    after = leaf_hashes(old_workspace / "audit.db")
    assert after[: len(before)] == before  # the upgrade rewrote no entry
    assert len(after) > len(before)
    assert {"users", "api_tokens", "ingest_alembic_version", "pipeline_alembic_version"} <= tables(old_workspace / "registry.db")
    assert "audit_signed_heads" in tables(old_workspace / "audit.db")
    status = invoke("db", "status").output
    assert status.count("at head") == 3, status
    # the old review is still there beside the new one
    assert len(invoke("review", "list", "--json").stdout.split('"id"')) - 1 >= 2


def test_a_new_workspace_is_made_at_head(home: Path):
    invoke("db", "upgrade")
    status = invoke("db", "status", "--json").stdout
    assert status.count('"state": "at head"') == 3, status
    with sqlite3.connect(home / "registry.db") as conn:
        assert conn.execute("SELECT version_num FROM ingest_alembic_version").fetchall() == [(INGEST.head,)]
        assert conn.execute("SELECT version_num FROM pipeline_alembic_version").fetchall() == [(PIPELINE.head,)]
    assert "docket_alembic_version" not in tables(home / "registry.db")


def test_a_database_from_a_newer_docket_is_refused_with_what_to_do(old_workspace: Path, monkeypatch, capsys):
    invoke("db", "upgrade")
    with sqlite3.connect(old_workspace / "registry.db") as conn:
        conn.execute("UPDATE ingest_alembic_version SET version_num = '9999'")
    monkeypatch.setattr(sys, "argv", ["docket", "ask", "Which state's law governs the agreement?", "-c", "samples"])
    with pytest.raises(SystemExit) as exit_:
        main()  # the entry point: its error handling, not the test runner's
    assert exit_.value.code == 2
    error = capsys.readouterr().err
    assert "revision 9999" in error and "upgrade Docket" in error and "Traceback" not in error


def _stamp_as_before_the_split(conn, revision: str, drop: tuple[str, ...] = ()) -> None:
    """Make a registry at head one that the single registry environment (dcd0ea4 until ingest got its own)
    stamped at `revision`: its one version table, as Alembic creates it, and none of the new ones."""
    for table in ("ingest_alembic_version", "pipeline_alembic_version", *drop):
        conn.execute(text(f"DROP TABLE {table}"))
    conn.execute(text("CREATE TABLE docket_alembic_version (version_num VARCHAR(32) NOT NULL, "
                      "CONSTRAINT docket_alembic_version_pkc PRIMARY KEY (version_num))"))
    conn.execute(text("INSERT INTO docket_alembic_version (version_num) VALUES (:v)"), {"v": revision})


def _version(engine, table: str) -> str | None:
    with engine.connect() as conn:
        if not inspect(engine).has_table(table):
            return None
        return conn.execute(text(f"SELECT version_num FROM {table}")).scalar()


IDENTITY_TABLES = ("browser_sessions", "api_tokens", "access_grants", "users")


@pytest.mark.parametrize(
    ("legacy", "ingest_at", "pipeline_at", "drop"),
    [("0002", "i0002", "p0001", IDENTITY_TABLES), ("0003", "i0002", "p0002", ())],
)
def test_a_registry_stamped_before_the_split_gets_each_environments_revision(
    tmp_path: Path, legacy: str, ingest_at: str, pipeline_at: str, drop: tuple[str, ...]
):
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    upgrade_registry_url(url)
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO documents (collection, source_key, name, created_at) "
                          "VALUES ('old', '/x.pdf', 'x.pdf', CURRENT_TIMESTAMP)"))
        _stamp_as_before_the_split(conn, legacy, drop)

    open_registry(url)  # ingest alone: takes its own revision, leaves the old table to pipeline's
    assert INGEST_MIGRATIONS.from_legacy[legacy] == ingest_at  # the revision read off the old table, then
    assert _version(engine, "ingest_alembic_version") == INGEST.head  # upgraded past it (i0003: page tables)
    assert _version(engine, "pipeline_alembic_version") is None
    assert _version(engine, "docket_alembic_version") == legacy

    # Both (what every Docket command does): pipeline's is read off the old table, upgraded, the old table dropped.
    assert upgrade_registry_url(url)
    assert _version(engine, "ingest_alembic_version") == INGEST.head
    assert _version(engine, "pipeline_alembic_version") == PIPELINE.head
    assert not inspect(engine).has_table("docket_alembic_version")
    assert all(inspect(engine).has_table(table) for table in IDENTITY_TABLES)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT name FROM documents")).all() == [("x.pdf",)]
    engine.dispose()


def test_db_status_names_the_old_version_table_and_db_upgrade_replaces_it(home: Path):
    invoke("db", "upgrade")
    engine = create_engine(f"sqlite:///{home / 'registry.db'}")
    with engine.begin() as conn:
        _stamp_as_before_the_split(conn, "0003")
    engine.dispose()
    status = invoke("db", "status", code=1).output
    assert status.count("stamped 0003 in docket_alembic_version: upgrade") == 2, status
    invoke("db", "upgrade")
    status = invoke("db", "status").output
    assert status.count("at head") == 3, status
    assert "docket_alembic_version" not in tables(home / "registry.db")


@pytest.mark.postgres
def test_a_shared_postgres_registry_stamped_before_the_split_waits_to_be_told():
    urls = pg_schema_url()
    url = next(urls)
    try:
        upgrade_registry_url(url)
        engine = create_engine(url)
        with engine.begin() as conn:
            _stamp_as_before_the_split(conn, "0003")
        with pytest.raises(RegistryMigrationError, match=r"revision 0003 in docket_alembic_version.*run `docket db upgrade`"):
            upgrade_registry_url(url)
        assert _version(engine, "docket_alembic_version") == "0003"  # the refusal changed nothing
        assert upgrade_registry_url(url, auto_upgrade=True)
        assert _version(engine, "ingest_alembic_version") == INGEST.head
        assert _version(engine, "pipeline_alembic_version") == PIPELINE.head
        assert not inspect(engine).has_table("docket_alembic_version")
        engine.dispose()
    finally:
        next(urls, None)


def _make_old_postgres(url: str) -> list[tuple]:
    """A PostgreSQL registry and audit log as Docket made them before migrations: no version rows, no signed heads."""
    upgrade_registry_url(url)
    log = AuditLog.open(url, sign_heads=False)
    log.append("test_event", actor="tester", subjects=["doc:1"], payload={"n": 1})
    log.close()
    engine = create_engine(url)
    with engine.begin() as conn:
        for statement in (
            "DROP TABLE ingest_alembic_version", "DROP TABLE pipeline_alembic_version", "DROP TABLE audit_alembic_version",
            "DROP TABLE audit_signed_heads", "DROP TABLE browser_sessions", "DROP TABLE api_tokens",
            "DROP TABLE access_grants", "DROP TABLE users",
        ):
            conn.execute(text(statement))
        rows = conn.execute(text("SELECT seq, prev_hash, leaf_hash FROM audit_entries ORDER BY seq")).all()
    engine.dispose()
    return rows


@pytest.mark.postgres
def test_a_shared_postgres_database_is_upgraded_only_when_told():
    urls = pg_schema_url()
    url = next(urls)
    try:
        before = _make_old_postgres(url)
        with pytest.raises(RegistryMigrationError, match=r"registry database .* run `docket db upgrade`"):
            upgrade_registry_url(url)
        with pytest.raises(MigrationError, match=r"audit database .* run `docket db upgrade`"):
            AuditLog.open(url)

        assert upgrade_registry_url(url, auto_upgrade=True)
        log = AuditLog.open(url, auto_upgrade=True)
        assert log.verify().ok
        log.close()
        engine = create_engine(url)
        with engine.connect() as conn:
            assert conn.execute(text("SELECT seq, prev_hash, leaf_hash FROM audit_entries ORDER BY seq")).all() == before
            assert conn.execute(text("SELECT version_num FROM audit_alembic_version")).scalar() == AUDIT.head
            assert conn.execute(text("SELECT version_num FROM ingest_alembic_version")).scalar() == INGEST.head
            assert conn.execute(text("SELECT version_num FROM pipeline_alembic_version")).scalar() == PIPELINE.head
            with pytest.raises(Exception, match="append-only"):
                conn.execute(text("TRUNCATE audit_signed_heads"))  # a statement trigger: fires on an empty table too
        engine.dispose()
        open_registry(url)  # at head now: the default opens it
        AuditLog.open(url).close()
    finally:
        next(urls, None)


@pytest.mark.postgres
def test_the_setting_migrations_auto_upgrade_lets_a_docket_upgrade_a_shared_database(home: Path, monkeypatch):
    from pipeline.app import Docket
    from pipeline.settings import load_settings

    urls = pg_schema_url()
    url = next(urls)
    try:
        _make_old_postgres(url)
        refused = Docket(load_settings(registry_url=url, audit_url=url))
        with pytest.raises(RegistryMigrationError, match="docket db upgrade"):
            refused.store
        with pytest.raises(MigrationError, match="docket db upgrade"):
            refused.audit
        monkeypatch.setenv("DOCKET_MIGRATIONS__AUTO_UPGRADE", "true")
        allowed = Docket(load_settings(registry_url=url, audit_url=url))
        assert allowed.settings.migrations.auto_upgrade is True
        allowed.store
        engine = create_engine(url)
        with engine.connect() as conn:
            assert conn.execute(text("SELECT version_num FROM ingest_alembic_version")).scalar() == INGEST.head
            assert conn.execute(text("SELECT version_num FROM pipeline_alembic_version")).scalar() == PIPELINE.head
        engine.dispose()
        assert allowed.audit.verify().ok
        allowed.audit.close()
    finally:
        next(urls, None)
