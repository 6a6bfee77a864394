"""The witness: signed heads kept outside the database catch a rollback that the database alone cannot.

Truncating the tail together with its signed heads (or restoring an old backup of every table) leaves
a log that is consistent in itself; only a record outside it can tell.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import pytest
from sqlalchemy import Connection, delete
from test_audit_support import attack, db_url, fill, keys_dir, read_rows  # noqa: F401
from typer.testing import CliRunner

from audit import AuditContext, AuditLog
from audit.cli import make_app
from audit.schema import entries, payloads, signed_heads, subjects
from test_audit_signed_heads import _recompute_from


def _roll_back_to(size: int):
    """Delete every entry, payload and signed head after `size`, and set the head row back: an old backup."""

    def edit(conn: Connection) -> None:
        rows = read_rows(conn)
        for table in (entries, payloads, subjects):
            conn.execute(delete(table).where(table.c.seq > size))
        conn.execute(delete(signed_heads).where(signed_heads.c.size > size))
        _recompute_from(conn, rows[:size], size)  # the head row and frontier as they were at `size`

    return edit


def test_a_rollback_passes_without_a_witness_and_fails_with_one(db_url: str, keys_dir: Path, tmp_path: Path) -> None:
    witness = tmp_path / "outside" / "witness.jsonl"
    with AuditLog.open(db_url, keys_dir, witness=witness) as log:
        fill(log, 9)
        lines = witness.read_text().splitlines()
        assert [json.loads(line)["size"] for line in lines] == list(range(1, 10))
        attack(db_url, _roll_back_to(6))
        assert log.size == 6
        # The database alone is consistent: this is why docs/audit.md asks for a witness.
        assert log.verify(witness=tmp_path / "none.jsonl").ok
        report = log.verify()
        assert not report.ok and report.first_bad_seq == 7
        assert report.problem == (
            f"the log has 6 entries but the witness {witness} holds a signed head for 9 "
            f"(witness {witness} line 9): tail truncated or an old backup restored"
        )
    without = make_app(lambda: AuditContext(url=db_url, keys_dir=keys_dir, actor="auditor"))
    assert CliRunner().invoke(without, ["verify"]).exit_code == 0
    result = CliRunner().invoke(without, ["verify", "--witness", str(witness)])
    assert result.exit_code == 1 and "tail truncated or an old backup restored" in result.output


def test_a_witness_disagreeing_with_the_log_names_the_rewritten_seq(db_url: str, keys_dir: Path, tmp_path: Path) -> None:
    witness = tmp_path / "witness.jsonl"
    with AuditLog.open(db_url, keys_dir, witness=witness) as log:
        fill(log, 5)

        def rewrite_newest_and_drop_its_head(conn: Connection) -> None:
            rows = read_rows(conn)
            rows[4]["payload"] = rows[4]["payload"].replace("answer 4", "answer four")
            _recompute_from(conn, rows, 4)
            conn.execute(delete(signed_heads).where(signed_heads.c.size == 5))

        attack(db_url, rewrite_newest_and_drop_its_head)
        report = log.verify()
        assert not report.ok and report.first_bad_seq == 5
        assert f"witness {witness} line 5 signs a different root for size 5: seq 5 was rewritten" in report.problem


@pytest.mark.parametrize(
    ("line", "why"),
    [
        ("{not json", "not JSON"),
        ("[1, 2]", "a JSON object is expected"),
        ('{"size": "9"}', "field 'size' is missing or not a whole number"),
        ("x" * 5000, "longer than 4096 bytes"),
    ],
)
def test_a_bad_witness_line_fails_naming_file_and_line(tmp_path: Path, keys_dir: Path, line: str, why: str) -> None:
    witness = tmp_path / "witness.jsonl"
    with AuditLog.open(f"sqlite:///{tmp_path / 'audit.db'}", keys_dir, witness=witness) as log:
        fill(log, 2)
        with witness.open("a") as handle:
            handle.write(line + "\n")
        report = log.verify()
        assert not report.ok and report.problem.startswith(f"witness {witness} line 3: ") and why in report.problem


def test_a_witness_line_with_a_bad_signature_fails(tmp_path: Path, keys_dir: Path) -> None:
    witness = tmp_path / "witness.jsonl"
    with AuditLog.open(f"sqlite:///{tmp_path / 'audit.db'}", keys_dir, witness=witness) as log:
        fill(log, 3)
        lines = witness.read_text().splitlines()
        forged = dict(json.loads(lines[1]), time="2030-01-01T00:00:00.000000Z")
        witness.write_text("\n".join([lines[0], json.dumps(forged), lines[2]]) + "\n")
        report = log.verify()
        assert not report.ok and f"witness {witness} line 2: signature does not verify" in report.problem


def test_the_witness_command_gets_every_head_and_its_failure_loses_nothing(
    tmp_path: Path, keys_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    received = tmp_path / "received.jsonl"
    command = [sys.executable, "-c", f"import sys; open({str(received)!r}, 'a').write(sys.stdin.read())"]
    with AuditLog.open(f"sqlite:///{tmp_path / 'audit.db'}", keys_dir, witness_command=command) as log:
        fill(log, 2)
        assert [json.loads(line)["size"] for line in received.read_text().splitlines()] == [1, 2]
    failing = [sys.executable, "-c", "import sys; sys.stderr.write('remote witness unreachable'); sys.exit(3)"]
    with AuditLog.open(f"sqlite:///{tmp_path / 'audit.db'}", keys_dir, witness_command=failing) as log:
        with caplog.at_level(logging.WARNING, logger="audit"):
            fill(log, 1)
        assert log.size == 3 and log.verify().ok
        assert "remote witness unreachable" in caplog.text and "size 3" in caplog.text


def test_the_witness_setting_reaches_the_log_and_the_command(home: Path, tmp_path: Path) -> None:
    from pipeline.app import Docket
    from pipeline.settings import load_settings

    witness = tmp_path / "worm" / "witness.jsonl"
    docket = Docket(load_settings(audit={"witness": str(witness)}))
    docket.audit.append("answer", {"a": 1}, actor="analyst")
    assert json.loads(witness.read_text())["size"] == 1
    assert docket.audit.verify().ok
    attack(docket.audit.url, _roll_back_to(0))  # the audit.db rolled back to empty, heads and all
    from pipeline.cli import app

    result = CliRunner().invoke(app, ["audit", "verify"], env={"DOCKET_AUDIT__WITNESS": str(witness)})
    assert result.exit_code == 1 and "the log has 0 entries but the witness" in result.output, result.output
