"""The tamper matrix: every edit an attacker with database access can make is caught and located.

Each case bypasses the append-only triggers the way such an attacker would (drop or disable them),
edits the database directly, and checks that `verify` names the exact seq and the kind of damage.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import Connection, create_engine, delete, insert, select, update
from sqlalchemy.exc import DBAPIError
from test_audit_support import attack, db_url, fill, keys_dir, read_rows, rehash, rewrite  # noqa: F401

from audit import AuditLog
from audit.keys import KeyStore
from audit.schema import entries, head, payloads, redactions, signed_heads, subjects
from audit.verification.entries import checkpoint_message

N = 10


@pytest.fixture
def log(db_url: str, keys_dir: Path) -> AuditLog:
    opened = AuditLog.open(db_url, keys_dir)
    fill(opened, N)
    yield opened
    opened.close()


def _bad(log: AuditLog, checkpoint: Path | None = None) -> tuple[int | None, str]:
    report = log.verify(checkpoint)
    assert not report.ok, "tampering went unnoticed"
    assert report.problem
    return report.first_bad_seq, report.problem


def _move_row(conn: Connection, old: int, new: int) -> None:
    for table in (entries, payloads):
        conn.execute(update(table).where(table.c.seq == old).values(seq=new))


def test_triggers_refuse_update_and_delete(log: AuditLog) -> None:
    engine = create_engine(log.url)
    statements = [
        update(entries).where(entries.c.seq == 2).values(actor="mallory"),
        delete(entries).where(entries.c.seq == 2),
        update(payloads).where(payloads.c.seq == 2).values(payload="{}"),
        delete(payloads).where(payloads.c.seq == 2),  # only a recorded redaction may erase a payload
        delete(subjects),
    ]
    try:
        for statement in statements:
            with pytest.raises(DBAPIError, match="append-only|use redact"), engine.begin() as conn:
                conn.execute(statement)
    finally:
        engine.dispose()
    assert log.verify().ok


def test_untouched_log_verifies(log: AuditLog) -> None:
    report = log.verify()
    assert report.ok and report.size == N and report.first_bad_seq is None


def test_payload_edited(log: AuditLog, db_url: str) -> None:
    attack(db_url, lambda c: c.execute(update(payloads).where(payloads.c.seq == 5).values(payload='{"i":999}')))
    seq, problem = _bad(log)
    assert seq == 5 and "payload edited" in problem


def test_payload_deleted_without_redaction(log: AuditLog, db_url: str) -> None:
    attack(db_url, lambda c: c.execute(delete(payloads).where(payloads.c.seq == 4)))
    seq, problem = _bad(log)
    assert seq == 4 and "no redaction event" in problem


def test_metadata_edited_without_rehash(log: AuditLog, db_url: str) -> None:
    attack(db_url, lambda c: c.execute(update(entries).where(entries.c.seq == 6).values(actor="mallory")))
    seq, problem = _bad(log)
    assert seq == 6 and "metadata edited" in problem


def test_metadata_edited_and_rehashed(log: AuditLog, db_url: str) -> None:
    def edit(conn: Connection) -> None:
        row = read_rows(conn)[5]  # seq 6
        fixed = rehash(dict(row, status="refused"), row["prev_hash"])
        conn.execute(update(entries).where(entries.c.seq == 6).values(status="refused", leaf_hash=fixed["leaf_hash"]))

    attack(db_url, edit)
    seq, problem = _bad(log)
    assert seq == 6 and "edited and rehashed" in problem


def test_whole_chain_recomputed_is_caught_by_an_outside_checkpoint(log: AuditLog, db_url: str, tmp_path: Path) -> None:
    kept = tmp_path / "kept-by-auditor.json"
    log.checkpoint(kept)  # seq 11 (key announcement) and 12 (checkpoint); covers size 11
    fill(log, 3)

    def rewrite_everything(conn: Connection) -> None:
        # Edit seq 4, recompute every later hash, and drop the log's own signed checkpoint events,
        # which the attacker cannot re-sign: a perfectly consistent chain.
        rows = [r for r in read_rows(conn) if r["event_type"] != "checkpoint"]
        rows[3]["payload"] = rows[3]["payload"].replace("answer 3", "answer 3 (amended)")
        prev, rebuilt = "00" * 32, []
        for number, row in enumerate(rows, start=1):
            fixed = rehash(dict(row, seq=number), prev)
            rebuilt.append(fixed)
            prev = fixed["leaf_hash"]
        rewrite(conn, rebuilt)
        conn.execute(update(head).values(size=len(rebuilt), head_hash=prev))

    attack(db_url, rewrite_everything)
    seq, problem = _bad(log)  # a hash chain alone cannot see it; the signed head of each append can ...
    assert seq == 4 and "signed head of size 4 signs a different root" in problem
    seq, problem = _bad(log, kept)  # ... and so can a checkpoint kept outside
    assert seq == 1 and "entries 1..11 were rewritten" in problem


def test_in_log_checkpoints_bound_a_rewrite(db_url: str, keys_dir: Path) -> None:
    with AuditLog.open(db_url, keys_dir, checkpoint_every=4) as log:
        fill(log, 12)  # checkpoints sign sizes 5 (after the key announcement), 10 and 15

        def rewrite_after_seq_6(conn: Connection) -> None:
            rows = read_rows(conn)
            rows[6]["payload"] = rows[6]["payload"].replace("answer", "ANSWER")  # seq 7
            prev, rebuilt = rows[5]["leaf_hash"], rows[:6]
            for row in rows[6:]:
                fixed = rehash(row, prev)
                rebuilt.append(fixed)
                prev = fixed["leaf_hash"]
            rewrite(conn, rebuilt)

        attack(db_url, rewrite_after_seq_6)
        seq, problem = _bad(log)
        # The signed checkpoint of size 5 still matches, the one of size 10 no longer does: the rewrite
        # (at seq 7) lies between them.
        assert seq == 6 and "entries 6..10 were rewritten" in problem


def test_middle_row_deleted(log: AuditLog, db_url: str) -> None:
    attack(db_url, lambda c: [c.execute(delete(t).where(t.c.seq == 5)) for t in (entries, payloads)])
    seq, problem = _bad(log)
    assert seq == 5 and "missing" in problem


def test_middle_row_deleted_and_renumbered(log: AuditLog, db_url: str) -> None:
    def edit(conn: Connection) -> None:
        for table in (entries, payloads):
            conn.execute(delete(table).where(table.c.seq == 5))
        for seq in range(6, N + 1):
            _move_row(conn, seq, seq - 1)
        conn.execute(update(head).values(size=N - 1))

    attack(db_url, edit)
    seq, problem = _bad(log)
    assert seq == 5 and "committed as seq 6" in problem and "renumbered" in problem


def test_rows_swapped(log: AuditLog, db_url: str) -> None:
    def edit(conn: Connection) -> None:
        _move_row(conn, 4, -1)
        _move_row(conn, 5, 4)
        _move_row(conn, -1, 5)

    attack(db_url, edit)
    seq, problem = _bad(log)
    assert seq == 4 and "committed as seq 5" in problem


def test_row_duplicated(log: AuditLog, db_url: str) -> None:
    def edit(conn: Connection) -> None:
        rows = read_rows(conn)
        for seq in range(N, 5, -1):  # make room after seq 5
            _move_row(conn, seq, seq + 1)
        copy = rows[4]
        conn.execute(insert(entries).values({c.name: (6 if c.name == "seq" else copy[c.name]) for c in entries.columns}))
        conn.execute(insert(payloads).values(seq=6, salt=copy["salt"], payload=copy["payload"]))

    attack(db_url, edit)
    seq, problem = _bad(log)
    assert seq == 6 and "copy of the entry committed as seq 5" in problem


def test_row_duplicated_under_the_same_seq(log: AuditLog, db_url: str) -> None:
    def edit(conn: Connection) -> None:
        # Rebuild the table without its primary key, then insert a second seq 5.
        conn.exec_driver_sql("CREATE TABLE entries_copy AS SELECT * FROM audit_entries")
        conn.exec_driver_sql("DROP TABLE audit_entries")
        conn.exec_driver_sql("ALTER TABLE entries_copy RENAME TO audit_entries")
        conn.exec_driver_sql("INSERT INTO audit_entries SELECT * FROM audit_entries WHERE seq = 5")

    attack(db_url, edit)
    seq, problem = _bad(log)
    assert seq == 5 and "seq 5 appears twice" in problem


def test_tail_truncated(log: AuditLog, db_url: str, tmp_path: Path) -> None:
    kept = tmp_path / "cp.json"
    log.checkpoint(kept)  # covers size 11

    def truncate(conn: Connection) -> None:
        rows = read_rows(conn)
        for table in (entries, payloads):
            conn.execute(delete(table).where(table.c.seq > 7))
        conn.execute(update(head).values(size=7, head_hash=rows[6]["leaf_hash"]))

    attack(db_url, truncate)
    seq, problem = _bad(log)  # the log's signed heads still cover size 12
    assert seq == 8 and "tail truncated" in problem
    seq, problem = _bad(log, kept)
    assert seq == 8 and "tail truncated" in problem


def test_tail_truncated_without_touching_the_head(log: AuditLog, db_url: str) -> None:
    attack(db_url, lambda c: [c.execute(delete(t).where(t.c.seq > 8)) for t in (entries, payloads)])
    seq, problem = _bad(log)
    assert seq == 9 and "tail truncated" in problem


def test_old_backup_restored(log: AuditLog, db_url: str, tmp_path: Path) -> None:
    engine = create_engine(db_url)
    with engine.connect() as conn:
        backup = {
            t: [dict(r._mapping) for r in conn.execute(select(t))] for t in (entries, payloads, subjects, head, signed_heads)
        }
    engine.dispose()
    fill(log, 4)
    kept = tmp_path / "cp.json"
    log.checkpoint(kept)

    def restore(conn: Connection) -> None:
        for table, rows in backup.items():
            conn.execute(delete(table))
            conn.execute(insert(table), rows)

    attack(db_url, restore)
    assert log.verify().ok
    seq, problem = _bad(log, kept)
    assert seq == N + 1 and "old backup restored" in problem


def test_forged_checkpoint_file(log: AuditLog, tmp_path: Path) -> None:
    kept = tmp_path / "cp.json"
    checkpoint = log.checkpoint(kept)
    forged = tmp_path / "forged.json"
    forged.write_text(json.dumps(dict(checkpoint, root="ab" * 32)))
    seq, problem = _bad(log, forged)
    assert seq is None and "forged or altered" in problem and str(forged) in problem


def test_checkpoint_signed_by_the_wrong_key(log: AuditLog, tmp_path: Path) -> None:
    checkpoint = log.checkpoint()
    stranger_id, stranger = KeyStore(tmp_path / "stranger").generate()
    wrong = dict(checkpoint, key_id=stranger_id)
    wrong["signature"] = stranger.sign(checkpoint_message(wrong)).hex()
    path = tmp_path / "wrong.json"
    path.write_text(json.dumps(wrong))
    seq, problem = _bad(log, path)
    assert seq is None and "wrong key" in problem


def test_rotated_out_key(log: AuditLog, keys_dir: Path, tmp_path: Path) -> None:
    old = tmp_path / "old.json"
    first = log.checkpoint(old)
    old_key = KeyStore(keys_dir).private(first["key_id"])
    rotation_seq = log.size + 1
    log.rotate_key(actor="admin")
    fill(log, 2)
    assert log.verify(old).ok  # old keys still verify old checkpoints
    new = tmp_path / "new.json"
    log.checkpoint(new)
    assert log.verify(new).ok
    # Someone holding the retired key signs the current state with it.
    late = dict(log.checkpoint(), key_id=first["key_id"])
    late["signature"] = old_key.sign(checkpoint_message(late)).hex()
    path = tmp_path / "late.json"
    path.write_text(json.dumps(late))
    seq, problem = _bad(log, path)
    assert seq is None and "rotated-out key" in problem and f"..{rotation_seq - 1} " in problem


def test_checkpoint_event_forged_inside_the_log(log: AuditLog, db_url: str, keys_dir: Path, tmp_path: Path) -> None:
    log.checkpoint()  # seq 11 announces the key, seq 12 is a real checkpoint
    real = log.get(12).payload
    stranger_id, stranger = KeyStore(tmp_path / "stranger").generate()

    def append_forgery(conn: Connection) -> None:
        # A chain-correct append whose checkpoint is signed by a key the log never announced.
        last = read_rows(conn)[-1]
        fake = dict(real, size=12, key_id=stranger_id)
        fake["signature"] = stranger.sign(checkpoint_message(fake)).hex()
        payload = json.dumps(fake, sort_keys=True, separators=(",", ":"))
        row = rehash(dict(last, seq=13, event_type="checkpoint", payload=payload, subjects="[]"), last["leaf_hash"])
        conn.execute(insert(entries).values({c.name: row[c.name] for c in entries.columns}))
        conn.execute(insert(payloads).values(seq=13, salt=row["salt"], payload=payload))

    attack(db_url, append_forgery)
    seq, problem = _bad(log)
    assert seq == 13 and "not a trusted public key" in problem


def test_redacted_entries_verify_as_redacted(log: AuditLog, db_url: str) -> None:
    log.redact(3, "data subject erasure request", "GDPR Art. 17", "dpo")
    log.redact(7, "retention period over", "retention policy R-4", "dpo")
    report = log.verify()
    assert report.ok and report.redacted == [3, 7]
    entry = log.get(3)
    assert entry.payload is None and entry.redaction is not None and entry.redaction.legal_basis == "GDPR Art. 17"
    # Faking a redaction record does not let someone else erase a payload unnoticed.
    attack(db_url, lambda c: (c.execute(insert(redactions).values(seq=5, redaction_seq=99)),
                              c.execute(delete(payloads).where(payloads.c.seq == 5))))
    seq, problem = _bad(log)
    assert seq == 5 and "no redaction event" in problem
