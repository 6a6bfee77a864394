"""How `verify` reads the stored rows: the payload's exact UTF-8 bytes, on both databases.

On PostgreSQL the verifier streams the rows in binary format and keeps `text` values as bytes (no
decode and re-encode), in a transaction that asks for UTF-8 whatever the session's client encoding;
new logs store payloads lz4-compressed where the server has lz4. These tests pin what that must not
change: non-ASCII payloads verify, edits to them are found at their seq, a session in another client
encoding verifies the same, a stream stopped at a problem leaves the connection usable, and a log
whose payloads are (partly) pglz-compressed keeps working.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import BigInteger, Connection, MetaData, create_engine, update
from sqlalchemy.engine import make_url
from test_audit_support import attack, db_url, pg_schema_url  # noqa: F401

from audit import AuditLog, schema
from audit.log import PG_VERIFY_SETTINGS, range_query
from audit.rows import widened_connections
from audit.schema import payloads

# Two-, three- and four-byte UTF-8, a line separator json leaves unescaped, and a long payload
# (over PostgreSQL's 2 kB TOAST threshold, so it is stored compressed).
TEXTS = ["café", "Grüße, 東京", "emoji 🧾 receipt", "line\u2028separator", "naïve " * 800]
REPO = Path(__file__).resolve().parents[1]
LAYOUTS = [(1, None), (2, 4)]  # (workers, range_size): one pass, and worker processes over small ranges


def _fill_unicode(log: AuditLog, count: int) -> None:
    for i in range(count):
        log.append("answer", {"answer": TEXTS[i % len(TEXTS)], "i": i}, actor="zoë", subjects=(f"doc-{i % 3}",))


def _edit_payload(url: str, seq: int, old: str, new: str) -> None:
    """Swap one character for another of the same UTF-8 length, with the triggers out of the way."""

    def edit(conn: Connection) -> None:
        stored = conn.execute(payloads.select().where(payloads.c.seq == seq)).one().payload
        assert old in stored and len(old.encode()) == len(new.encode())
        conn.execute(update(payloads).where(payloads.c.seq == seq).values(payload=stored.replace(old, new, 1)))

    attack(url, edit)


@pytest.mark.parametrize(("workers", "range_size"), LAYOUTS)
def test_non_ascii_payloads_verify_and_an_edit_is_found_at_its_seq(db_url: str, workers: int, range_size: int | None) -> None:
    with AuditLog.open(db_url) as log:
        _fill_unicode(log, 20)
        report = log.verify(workers=workers, range_size=range_size)
        assert report.ok and report.size == 20, report.problem
        _edit_payload(db_url, 12, "東", "西")  # seq 12 holds TEXTS[1]
        report = log.verify(workers=workers, range_size=range_size)
        assert not report.ok and report.first_bad_seq == 12
        assert "payload does not match its commitment" in (report.problem or "")


@pytest.fixture
def pg_url() -> Iterator[str]:
    yield from pg_schema_url()


def _with_options(url: str, extra: str) -> str:
    parsed = make_url(url)
    options = f"{parsed.query.get('options', '')} {extra}".strip()
    return parsed.update_query_dict({"options": options}).render_as_string(hide_password=False)


@pytest.mark.postgres
@pytest.mark.parametrize(("workers", "range_size"), LAYOUTS)
def test_a_session_in_another_client_encoding_verifies_the_utf8_bytes(pg_url: str, workers: int, range_size: int | None) -> None:
    # The server would send LATIN1 bytes to this session; the commitments are over UTF-8.
    latin1_url = _with_options(pg_url, "-cclient_encoding=LATIN1")
    with AuditLog.open(latin1_url) as log:
        for i in range(12):
            log.append("answer", {"answer": "café crème", "i": i}, actor="zoë")
        report = log.verify(workers=workers, range_size=range_size)
        assert report.ok and report.size == 12, report.problem
        with log.engine.connect() as conn:  # the session's own encoding is back once verify is done
            assert conn.exec_driver_sql("SHOW client_encoding").scalar_one() == "LATIN1"


# Verifies twice on one pooled connection, then appends on it.
_VERIFY_TWICE_THEN_APPEND = """
import sys
from audit import AuditLog
with AuditLog.open(sys.argv[1], create=False) as log:
    for _ in range(2):
        report = log.verify(workers=1)
        print(report.ok, report.first_bad_seq)
    print(log.append("answer", {"answer": "after"}, actor="zoë").seq)
"""


@pytest.mark.postgres
def test_a_stream_stopped_at_a_problem_leaves_the_log_usable(pg_url: str) -> None:
    with AuditLog.open(pg_url) as log:
        _fill_unicode(log, 700)  # several chunks of the stream: the checks stop long before its end
    _edit_payload(pg_url, 6, "é", "è")  # seq 6 holds TEXTS[0]
    # A stream left open holds psycopg's connection lock, and ending the transaction then waits for
    # it forever: in a process of its own, that fails this test (timeout) instead of hanging it.
    done = subprocess.run(
        [sys.executable, "-c", _VERIFY_TWICE_THEN_APPEND, pg_url],
        capture_output=True, text=True, cwd=REPO, timeout=120, check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n") == ["False 6", "False 6", "701", ""]


def _compression_of_payloads(url: str) -> dict[int, str | None]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.exec_driver_sql("SELECT seq, pg_column_compression(payload) FROM audit_payloads").all()
            return {seq: method for seq, method in rows}
    finally:
        engine.dispose()


def _server_has_lz4(url: str) -> bool:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.exec_driver_sql(
                "SELECT 1 FROM pg_settings WHERE name = 'default_toast_compression' AND 'lz4' = ANY(enumvals)"
            ).first() is not None
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_new_logs_store_payloads_lz4_and_pglz_ones_keep_verifying(pg_url: str, tmp_path: Path) -> None:
    if not _server_has_lz4(pg_url):
        pytest.skip("this PostgreSQL server is built without lz4")
    long_payload = {"answer": "naïve " * 800}
    with AuditLog.open(pg_url) as log:
        log.append("answer", long_payload, actor="zoë")
        assert _compression_of_payloads(pg_url)[1] == "lz4"

    # A log created before lz4: its column, and the payloads already in it, use the server's pglz.
    attack(pg_url, lambda conn: conn.exec_driver_sql("ALTER TABLE audit_payloads ALTER COLUMN payload SET COMPRESSION pglz"))
    with AuditLog.open(pg_url) as log:  # opening an existing log changes nothing in its schema
        for i in range(11):
            log.append("answer", {**long_payload, "i": i}, actor="zoë")
        methods = _compression_of_payloads(pg_url)
        assert methods[1] == "lz4" and {methods[seq] for seq in range(2, 13)} == {"pglz"}
        for workers, range_size in LAYOUTS:
            report = log.verify(workers=workers, range_size=range_size)
            assert report.ok and report.size == 12, report.problem
        _edit_payload(pg_url, 7, "ï", "ö")
        for workers, range_size in LAYOUTS:
            assert log.verify(workers=workers, range_size=range_size).first_bad_seq == 7


@pytest.mark.postgres
def test_rows_flow_in_key_order_without_a_sort_even_on_a_log_never_analyzed(pg_url: str) -> None:
    # No ANALYZE has run on this fresh log: planned on guesses, the join would be sorted (in parallel
    # workers, spilling to disk) before the first row leaves the server, or be a nested loop probing
    # the payloads index once per row.
    with AuditLog.open(pg_url) as log:
        _fill_unicode(log, 40)
        with log.engine.connect() as conn, conn.begin():
            for setting in PG_VERIFY_SETTINGS:
                conn.exec_driver_sql(setting)
            for after, up_to in ((None, None), (8, 16)):
                plan = "\n".join(conn.exec_driver_sql("EXPLAIN " + range_query(after, up_to, True)).scalars())
                assert "Sort" not in plan and "Gather" not in plan, plan
                assert "Merge Left Join" in plan and "Nested Loop" not in plan, plan
                assert "audit_entries_pkey" in plan and "audit_payloads_pkey" in plan, plan
                if after is not None:  # a range scans the payloads index over that range only
                    assert plan.count(f"(seq > {after}) AND (seq <= {up_to})") == 2, plan


def _sqlite_file_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'audit.db'}"


@pytest.mark.parametrize(("workers", "range_size"), LAYOUTS)
def test_sqlite_reads_through_a_memory_map_and_still_see_an_edit_written_since(
    tmp_path: Path, workers: int, range_size: int | None
) -> None:
    # verify reads SQLite pages from a memory map of the file (SQLITE_READ_MMAP). The edit below is
    # made by another connection and checkpointed from the WAL into the main file, under a map that
    # the log's pooled connection already holds: a verifier trusting stale mapped pages would miss it.
    url = _sqlite_file_url(tmp_path)
    with AuditLog.open(url) as log:
        _fill_unicode(log, 20)
        assert log.verify(workers=workers, range_size=range_size).ok
        with log.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA mmap_size").scalar_one() > 0
        _edit_payload(url, 17, "東", "西")  # seq 17 holds TEXTS[1]
        engine = create_engine(url)
        try:
            with engine.connect() as conn:
                busy, _, _ = conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)").one()
                assert busy == 0
        finally:
            engine.dispose()
        report = log.verify(workers=workers, range_size=range_size)
        assert not report.ok and report.first_bad_seq == 17
        assert "payload does not match its commitment" in (report.problem or "")


@pytest.mark.postgres
@pytest.mark.parametrize(("workers", "range_size"), [(1, None), (2, 256)])
def test_the_widened_libpq_buffer_still_delivers_every_row_and_an_edit_far_in(
    pg_url: str, workers: int, range_size: int | None
) -> None:
    # Before streaming, verify has the server send one 4 MB message so that libpq's input buffer takes
    # many rows per recv (_widen_input_buffer). Rows then arrive many per read, split anywhere: the
    # log spans several stream chunks, and an edit near its end must still be found at its seq.
    with AuditLog.open(pg_url) as log:
        _fill_unicode(log, 900)
        assert log.verify(workers=workers, range_size=range_size).ok
        with log.engine.connect() as conn:  # the pooled connection verify used: widened once, kept
            assert conn.connection.driver_connection in widened_connections
        _edit_payload(pg_url, 887, "東", "西")  # seq 887 holds TEXTS[1]
        report = log.verify(workers=workers, range_size=range_size)
        assert not report.ok and report.first_bad_seq == 887, report.problem
        assert "payload does not match its commitment" in (report.problem or "")


def _sqlite_plan(url: str, sql: str) -> str:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return "\n".join(row[-1] for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql))
    finally:
        engine.dispose()


def _create_bigint_seq_tables(url: str) -> None:
    """The tables as logs created before `schema.SEQ` have them on SQLite: seq BIGINT, a key apart from the rowid."""
    old = MetaData()
    for table in schema.metadata.sorted_tables:
        if table is schema.head:  # AuditLog.open creates the rest of the log when the head is missing
            continue
        copy = table.to_metadata(old)
        if "seq" in copy.c and copy.c.seq.primary_key:
            copy.c.seq.type = BigInteger()
    engine = create_engine(url)
    try:
        old.create_all(engine)
    finally:
        engine.dispose()


@pytest.mark.parametrize("layout", ["rowid", "bigint"])
@pytest.mark.parametrize(("workers", "range_size"), LAYOUTS)
def test_sqlite_seq_is_the_rowid_in_new_logs_and_old_logs_keep_verifying(
    tmp_path: Path, layout: str, workers: int, range_size: int | None
) -> None:
    url = _sqlite_file_url(tmp_path)
    if layout == "bigint":
        _create_bigint_seq_tables(url)
    with AuditLog.open(url) as log:
        _fill_unicode(log, 20)
        plan = _sqlite_plan(url, range_query(None, None, False))
        if layout == "rowid":  # scanned in rowid order, payloads found by rowid: no key index searched
            assert "INTEGER PRIMARY KEY" in plan and "autoindex" not in plan, plan
        else:
            assert "sqlite_autoindex_audit_entries_1" in plan, plan
        assert log.verify(workers=workers, range_size=range_size).ok
        # Rows 8 and 9 swapped, seq and all: in a rowid table the rows move with their seq.
        def swap(conn: Connection) -> None:
            conn.exec_driver_sql("UPDATE audit_entries SET seq = -8 WHERE seq = 8")
            conn.exec_driver_sql("UPDATE audit_entries SET seq = 8 WHERE seq = 9")
            conn.exec_driver_sql("UPDATE audit_entries SET seq = 9 WHERE seq = -8")

        attack(url, swap)
        report = log.verify(workers=workers, range_size=range_size)
        assert not report.ok and report.first_bad_seq == 8, report.problem
