"""Signed tree heads: no entry, the newest included, can be rewritten by someone without the key.

The attacker here holds the database (triggers out of the way, every hash recomputed with the public
algorithm, the head row and its Merkle frontier too) but not the signing key, which never lives in
the database. Each test would pass verify on the code before signed heads.
"""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from sqlalchemy import Connection, delete, update
from test_audit_support import attack, db_url, fill, keys_dir, read_rows, rehash, rewrite  # noqa: F401
from typer.testing import CliRunner

from audit import AuditContext, AuditError, AuditLog
from audit.cli import make_app
from audit.schema import head, signed_heads
from audit.verification.tree import Frontier


@pytest.fixture
def log(db_url: str, keys_dir: Path) -> AuditLog:
    opened = AuditLog.open(db_url, keys_dir)
    yield opened
    opened.close()


def _recompute_from(conn: Connection, rows: list[dict], start: int) -> None:
    """Rehash rows[start:] onto rows[start-1], rewrite the tables, and fix the head row and its frontier."""
    prev = rows[start - 1]["leaf_hash"] if start else "00" * 32
    for index in range(start, len(rows)):
        rows[index] = rehash(rows[index], prev)
        prev = rows[index]["leaf_hash"]
    rewrite(conn, rows)
    frontier = Frontier()
    for row in rows:
        frontier.append(bytes.fromhex(row["leaf_hash"]))
    conn.execute(
        update(head).values(size=len(rows), head_hash=prev, frontier=json.dumps([h.hex() for h in frontier.hashes]))
    )


def _rejection_becomes_sign_off(conn: Connection) -> None:
    rows = read_rows(conn)
    newest = rows[-1]
    assert newest["event_type"] == "rejection"
    newest["event_type"] = "sign_off"
    newest["payload"] = newest["payload"].replace('"decision":"reject"', '"decision":"approve"')
    _recompute_from(conn, rows, len(rows) - 1)


def test_a_keyless_rewrite_of_the_newest_entry_fails_verify(log: AuditLog, db_url: str, keys_dir: Path, tmp_path: Path) -> None:
    fill(log, 4)
    kept = tmp_path / "outside.json"
    log.checkpoint(kept)  # seq 5 announces the key, seq 6 is the checkpoint
    fill(log, 2)
    rejection = log.annotate(3, "reject", "the cited clause is from the wrong contract", actor="partner").seq
    assert log.verify(kept).ok

    attack(db_url, _rejection_becomes_sign_off)
    assert log.get(rejection).event_type == "sign_off"  # what the attacker wanted the log to say
    for checkpoint in (None, kept):  # the checkpoint kept outside predates the rewrite: it cannot see it
        report = log.verify(checkpoint)
        assert not report.ok and report.first_bad_seq == rejection, report
        assert f"signed head of size {rejection} signs a different root" in report.problem
        assert f"seq {rejection} was rewritten" in report.problem

    app = make_app(lambda: AuditContext(url=db_url, keys_dir=keys_dir, actor="auditor"))
    result = CliRunner().invoke(app, ["verify"])
    assert result.exit_code == 1, result.output
    assert result.output.startswith("FAIL ") and f"seq {rejection} was rewritten" in result.output


def _delete_heads_after(size: int):
    def edit(conn: Connection) -> None:
        conn.execute(delete(signed_heads).where(signed_heads.c.size > size))

    return edit


def test_deleting_the_newest_signed_heads_then_rewriting_fails(log: AuditLog, db_url: str) -> None:
    fill(log, 8)
    attack(db_url, _delete_heads_after(5))

    def rewrite_seq_7(conn: Connection) -> None:
        rows = read_rows(conn)
        rows[6]["payload"] = rows[6]["payload"].replace("answer 6", "answer six")
        _recompute_from(conn, rows, 6)

    attack(db_url, rewrite_seq_7)
    report = log.verify()
    assert not report.ok and report.first_bad_seq == 6
    assert "entries after seq 5 are not covered by a signed head" in report.problem


def test_deleting_every_signed_head_fails_for_a_workspace_that_signs(log: AuditLog, db_url: str) -> None:
    fill(log, 3)
    attack(db_url, _delete_heads_after(0))
    report = log.verify()
    assert not report.ok and report.first_bad_seq == 1 and "no signed head" in report.problem


def test_one_signed_head_per_transaction_and_each_covers_its_size(log: AuditLog, db_url: str) -> None:
    from audit import NewEvent

    fill(log, 2)
    log.append_many([NewEvent("review_finding", {"n": n}, "reviewer") for n in range(3)])
    with log.engine.connect() as conn:
        sizes = [row.size for row in conn.execute(signed_heads.select().order_by(signed_heads.c.size))]
    assert sizes == [1, 2, 5]
    report = log.verify()
    assert report.ok and report.signed_size == 5 and report.signed_heads_verified == 3 and not report.notes


def test_a_forged_signed_head_row_is_named(log: AuditLog, db_url: str) -> None:
    fill(log, 3)
    attack(db_url, lambda c: c.execute(update(signed_heads).where(signed_heads.c.size == 2).values(root="ab" * 32)))
    report = log.verify()
    assert not report.ok and "signed head of size 2: signature does not verify" in report.problem


def test_a_writer_without_keys_cannot_add_unsigned_entries(log: AuditLog, db_url: str) -> None:
    fill(log, 1)
    with AuditLog.open(db_url) as keyless, pytest.raises(AuditError, match="signs its head on every append"):
        keyless.append("answer", {"a": 1}, actor="mallory")
    assert log.size == 1 and log.verify().ok


def test_a_log_from_before_signed_heads_is_upgraded_and_says_what_covers_it(
    db_url: str, keys_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with AuditLog.open(db_url, keys_dir) as log:
        fill(log, 3)
        with monkeypatch.context() as old_code:  # its key announcement as before several writers' keys
            old_code.setattr("audit.log.KEY_ANNOUNCEMENT_VERSION", 1)
            log.checkpoint()
        with log.engine.begin() as conn:  # as a log written before signed heads (and migrations) looks
            conn.exec_driver_sql("DROP TABLE audit_signed_heads")
            conn.exec_driver_sql("DROP TABLE audit_alembic_version")
    # The upgrade (`docket db upgrade`; SQLite would upgrade on open anyway): the table is back, empty.
    with AuditLog.open(db_url, keys_dir, create=False, auto_upgrade=True) as log:
        report = log.verify()
        assert report.ok and report.signed_size is None
        assert any("covered only by checkpoints" in note for note in report.notes)
        fill(log, 1)
        report = log.verify()
        assert report.ok and report.signed_size == 6
        assert any("entries 1..6 were written before it" in note for note in report.notes)
        # Its key was announced before signed heads: only a key announced since says that heads are due,
        # so deleting them all would pass until then (the note says to rotate the key once).
        assert any("rotate-key" in note for note in report.notes)
        log.rotate_key(actor="admin")
        assert log.verify().ok
        attack(db_url, lambda c: c.execute(delete(signed_heads)))
        report = log.verify()
        assert not report.ok and "no signed head" in report.problem


def test_the_workspace_is_private(docket, home: Path) -> None:
    docket.audit.append("answer", {"a": 1}, actor="analyst")
    docket.store  # creates the registry database
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    files = [p for p in home.iterdir() if p.name.startswith(("audit.db", "registry.db"))]
    assert {p.name for p in files} >= {"audit.db", "audit.db-wal", "registry.db"}
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    keys = home / "keys"
    assert stat.S_IMODE(keys.stat().st_mode) == 0o700
    assert {p.suffix for p in keys.iterdir()} >= {".key", ".pub"}
    for path in keys.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def test_an_existing_workspace_is_made_private(home: Path) -> None:
    from pipeline.app import private_workspace

    home.mkdir(mode=0o755)
    (home / "audit.db").write_bytes(b"")
    (home / "audit.db").chmod(0o644)
    private_workspace(home)
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    assert stat.S_IMODE((home / "audit.db").stat().st_mode) == 0o600


@pytest.mark.parametrize(
    "fields",
    [
        {"format": "docket-checkpoint/1", "log_id": "0f" * 16, "size": 7, "root": "ab" * 32,
         "time": "2026-01-01T00:00:00.000000Z", "key_id": "0123456789abcdef", "signature": "00" * 64},
        {"format": "x", "log_id": 'naïve "log"\\\n\u2028', "size": 0, "root": "", "time": "t", "key_id": "k"},
        {"format": "x", "log_id": "l", "size": 2**60, "root": "r", "time": "t", "key_id": "k"},  # beyond JSON's safe range
        {"zeta": "z", "alpha": "a", "size": True},  # not a head's types: the general way
    ],
)
def test_the_signed_bytes_of_a_head_are_its_canonical_json(fields: dict) -> None:
    from audit.log import head_message
    from audit.verification.entries import checkpoint_message

    try:
        expected = checkpoint_message(fields)
    except ValueError as error:  # an integer outside the safe range is refused by both
        with pytest.raises(ValueError, match=str(error)):
            head_message(fields)
        return
    assert head_message(fields) == expected


def test_a_rotation_by_another_process_of_the_workspace_is_followed_by_the_next_append(
    log: AuditLog, db_url: str, keys_dir: Path
) -> None:
    fill(log, 2)  # this object now signs with its cached key, without reading the keys directory
    with AuditLog.open(db_url, keys_dir) as other:  # the same workspace: another process, as `docket audit rotate-key`
        new_key = other.rotate_key(actor="admin")
    fill(log, 1)
    with log.engine.connect() as conn:
        newest = conn.execute(signed_heads.select().order_by(signed_heads.c.size.desc()).limit(1)).one()
    assert newest.key_id == new_key and newest.size == log.size
    report = log.verify()
    assert report.ok and report.signed_size == log.size, report
