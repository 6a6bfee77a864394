"""One PostgreSQL audit log, several writers, each with its own keys directory: all verify clean.

A writer's key counts only when a key already valid in the log endorsed it (`enrol-key`), or when
it is the log's first key; a key announced by someone without one counts for nothing.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import Connection, insert
from test_audit_support import attack, pg_schema_url, read_rows, rehash
from typer.testing import CliRunner

from audit import AuditContext, AuditError, AuditLog
from audit.cli import make_app
from audit.keys import KeyStore, public_hex
from audit.schema import entries, payloads, signed_heads
from audit.verification.formats import CHECKPOINT_FORMAT
from audit.verification.tree import Frontier
from audit.verification.entries import checkpoint_message

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg_url():
    yield from pg_schema_url()


def _public_key_file(log: AuditLog) -> Path:
    key_id, _ = log.key_store().active()
    return log.keys_dir / f"{key_id}.pub"


def test_two_workspaces_with_their_own_keys_share_one_log(pg_url: str, tmp_path: Path) -> None:
    first = AuditLog.open(pg_url, tmp_path / "first" / "keys")
    second = AuditLog.open(pg_url, tmp_path / "second" / "keys")
    try:
        first.append("answer", {"by": "first"}, actor="alice")
        with pytest.raises(AuditError, match=r"not enrolled in the audit log .* run `docket audit enrol-key FILE` there"):
            second.append("answer", {"by": "second"}, actor="bob")
        assert first.size == 1  # nothing of the refused append was written

        app = make_app(lambda: AuditContext(url=pg_url, keys_dir=first.keys_dir, actor="alice"))
        result = CliRunner().invoke(app, ["enrol-key", str(_public_key_file(second))])
        assert result.exit_code == 0 and "enrolled key" in result.output, result.output
        for n in range(3):
            first.append("answer", {"by": "first", "n": n}, actor="alice")
            second.append("answer", {"by": "second", "n": n}, actor="bob")
        second.checkpoint()  # a second writer can checkpoint: no handover from the first key is needed
        second.rotate_key(actor="bob")  # retires the second writer's own key only
        first.append("answer", {"after": "rotation"}, actor="alice")
        second.append("answer", {"after": "rotation"}, actor="bob")

        for log in (first, second):
            report = log.verify()
            assert report.ok and report.size == first.size and report.signed_size == first.size, report
        # The second workspace pinned the log's first key on first sight (trust on first join).
        assert len(list(second.keys_dir.glob("genesis-*.pub"))) == 1
        with first.engine.connect() as conn:
            signers = {row.key_id for row in conn.execute(signed_heads.select())}
        assert len(signers) == 3  # the first key, the second's, and the second's after its rotation
    finally:
        first.close()
        second.close()


def test_a_key_announced_without_an_endorsement_counts_for_nothing(pg_url: str, tmp_path: Path) -> None:
    with AuditLog.open(pg_url, tmp_path / "keys") as log:
        for n in range(3):
            log.append("answer", {"n": n}, actor="alice")
        log.checkpoint()  # the log's first key is announced
        mallory_id, mallory = KeyStore(tmp_path / "mallory").generate()

        def announce_and_append(conn: Connection) -> None:
            # Chain-correct: a key_rotation of mallory's own key, then a rewritten answer, each with a
            # signed head by that key.
            rows = read_rows(conn)
            last = rows[-1]
            announcement = {"v": 2, "log_id": log.log_id, "key_id": mallory_id,
                            "public_key": public_hex(mallory.public_key()), "previous_key_id": None}
            payload = json.dumps(announcement, sort_keys=True, separators=(",", ":"))
            forged = [rehash(dict(last, seq=last["seq"] + 1, event_type="key_rotation", payload=payload,
                                  subjects=json.dumps([f"key:{mallory_id}"])), last["leaf_hash"])]
            answer = '{"answer":"approved"}'
            forged.append(rehash(dict(forged[0], seq=last["seq"] + 2, event_type="answer", payload=answer, subjects="[]"),
                                 forged[0]["leaf_hash"]))
            frontier = Frontier()
            for row in [*rows, *forged]:
                frontier.append(bytes.fromhex(row["leaf_hash"]))
            for row in forged:
                conn.execute(insert(entries).values({c.name: row[c.name] for c in entries.columns}))
                conn.execute(insert(payloads).values(seq=row["seq"], salt=row["salt"], payload=row["payload"]))
            signed = {"format": CHECKPOINT_FORMAT, "log_id": log.log_id, "size": frontier.size,
                      "root": frontier.root().hex(), "time": "2030-01-01T00:00:00.000000Z", "key_id": mallory_id}
            signed["signature"] = mallory.sign(checkpoint_message(signed)).hex()
            conn.execute(insert(signed_heads).values(**signed))

        seq = log.size + 1  # where the announcement goes
        attack(pg_url, announce_and_append)
        report = log.verify()
        assert not report.ok and report.first_bad_seq == seq
        assert f"announces key {mallory_id} with neither a handover nor an endorsement" in report.problem
