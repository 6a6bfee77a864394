"""Shared fixtures and attacker tools for the audit tests (no tests here).

The PostgreSQL tests run at DOCKET_TEST_PG_URL (default 127.0.0.1:5432/test), each in its own schema
that is dropped afterwards, so parallel runs do not collide. Unreachable PostgreSQL fails the test
when CI=true and skips it (with the reason) otherwise.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, create_engine, insert, select, text
from sqlalchemy.engine import make_url

from audit import AuditLog
from audit.schema import entries, head, payloads, redactions, signed_heads, subjects
from audit.verification.tree import leaf_hash
from audit.verification.entries import leaf_bytes, payload_commitment

PG_URL = os.environ.get("DOCKET_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
TABLES = (entries, payloads, subjects, redactions, signed_heads, head)


def _pg_unreachable() -> str | None:
    engine = create_engine(PG_URL)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as error:  # any failure to connect means "unreachable" here
        return f"PostgreSQL at {PG_URL} is unreachable: {str(error).splitlines()[0]}"
    finally:
        engine.dispose()
    return None


def pg_schema_url() -> Iterator[str]:
    """A URL whose search_path is a fresh schema; the schema is dropped afterwards."""
    problem = _pg_unreachable()
    if problem:
        if os.environ.get("CI") == "true":
            pytest.fail(problem)
        pytest.skip(problem)
    schema = f"audit_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_URL)
    with admin.begin() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    url = make_url(PG_URL).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The same test on a SQLite file and on a PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'audit.db'}"
    else:
        yield from pg_schema_url()


@pytest.fixture
def keys_dir(tmp_path: Path) -> Path:
    return tmp_path / "keys"


def fill(log: AuditLog, count: int, actor: str = "alice") -> None:
    for i in range(count):
        log.append(
            "answer", {"question": f"question {i}", "answer": f"answer {i}", "i": i},
            actor=actor, request_id=f"req-{i}", subjects=(f"doc-{i % 3}",), status="answered",
        )


# -- the attacker: direct database access, triggers bypassed --------------------------------------------


def attack(url: str, edit: Callable[[Connection], None]) -> None:
    """Run `edit` with the append-only triggers out of the way, as someone with DB admin access would."""
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            if conn.dialect.name == "sqlite":
                names = conn.exec_driver_sql("SELECT name FROM sqlite_master WHERE type = 'trigger'").scalars().all()
                for name in names:
                    conn.exec_driver_sql(f"DROP TRIGGER {name}")
                edit(conn)
            else:
                for table in TABLES[:5]:
                    conn.exec_driver_sql(f"ALTER TABLE {table.name} DISABLE TRIGGER USER")
                edit(conn)
                for table in TABLES[:5]:
                    conn.exec_driver_sql(f"ALTER TABLE {table.name} ENABLE TRIGGER USER")
    finally:
        engine.dispose()


def read_rows(conn: Connection) -> list[dict[str, Any]]:
    """Every entry with its payload, in seq order, as plain dicts."""
    query = (
        select(entries, payloads.c.salt, payloads.c.payload)
        .select_from(entries.outerjoin(payloads, payloads.c.seq == entries.c.seq))
        .order_by(entries.c.seq)
    )
    return [dict(row._mapping) for row in conn.execute(query)]


def rehash(row: dict[str, Any], prev_hash: str) -> dict[str, Any]:
    """Recompute a row's commitment, prev_hash and leaf hash after an edit (what a careful attacker does)."""
    row = dict(row, prev_hash=prev_hash)
    if row["payload"] is not None:
        row["payload_commitment"] = payload_commitment(row["salt"], row["payload"])
    fields = dict(row, subjects=json.loads(row["subjects"]))
    row["leaf_hash"] = leaf_hash(leaf_bytes(fields)).hex()
    return row


def rewrite(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Replace the entries and payloads tables with `rows` (subjects and head left as they are)."""
    conn.execute(payloads.delete())
    conn.execute(entries.delete())
    for row in rows:
        conn.execute(insert(entries).values({c.name: row[c.name] for c in entries.columns}))
        if row["payload"] is not None:
            conn.execute(insert(payloads).values(seq=row["seq"], salt=row["salt"], payload=row["payload"]))
