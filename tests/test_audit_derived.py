"""The derived tables (the subject index, the redaction index) cannot hide or invent entries.

An attacker with database access drops the triggers (as in tests/test_audit_tamper.py) and deletes or
adds rows of `audit_subjects` or `audit_redactions`. Filtered reads and exports still find every entry
(they match subjects in the chained entries), and `verify` fails naming the seq and the table.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import delete, insert
from test_audit_support import attack, db_url, fill, keys_dir  # noqa: F401

from audit import AuditLog, EntryFilter
from audit.schema import redactions, subjects

REPO = Path(__file__).resolve().parents[1]
N = 9  # fill() names doc-0, doc-1, doc-2 in turn: doc-1 is the subject of seq 2, 5 and 8


@pytest.fixture
def log(db_url: str, keys_dir: Path) -> AuditLog:
    opened = AuditLog.open(db_url, keys_dir)
    fill(opened, N)
    yield opened
    opened.close()


def _bad(log: AuditLog, **options: int) -> tuple[int | None, str]:
    report = log.verify(**options)
    assert not report.ok, "the edited derived table went unnoticed"
    assert report.problem
    return report.first_bad_seq, report.problem


def _bundle_seqs(bundle: Path) -> list[int]:
    lines = (bundle / "entries.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["seq"] for line in lines if line.strip()]


def test_untouched_log_with_redactions_and_repeated_subjects_verifies(log: AuditLog) -> None:
    log.append("answer", {"q": "twice"}, actor="alice", subjects=("doc-1", "doc-1", "doc-9"))  # seq 10
    log.redact(4, "erasure request", "GDPR Art. 17", "dpo")
    log.redact(7, "erasure request", "GDPR Art. 17", "dpo")
    assert log.verify().ok
    assert log.verify(workers=2, range_size=4).ok
    assert [e.seq for e in log.entries(subject="doc-1")] == [2, 5, 8, 10]


def test_deleted_subject_row_hides_nothing_and_fails_verify(log: AuditLog, db_url: str, keys_dir: Path, tmp_path: Path) -> None:
    attack(db_url, lambda c: c.execute(delete(subjects).where(subjects.c.seq == 5, subjects.c.subject == "doc-1")))
    # The API, the CLI's list and the export still find seq 5: the chained entry names doc-1.
    assert [e.seq for e in log.entries(subject="doc-1")] == [2, 5, 8]
    listed = subprocess.run(
        [sys.executable, "-m", "audit", "--db", db_url, "--keys", str(keys_dir), "list", "--document", "doc-1", "--json"],
        capture_output=True, text=True, cwd=REPO, timeout=120, check=False,
    )
    assert listed.returncode == 0, listed.stderr
    assert [e["seq"] for e in json.loads(listed.stdout)] == [2, 5, 8]
    log.export(tmp_path / "bundle", EntryFilter(subject="doc-1"), actor="auditor")
    assert _bundle_seqs(tmp_path / "bundle") == [2, 5, 8]
    seq, problem = _bad(log)
    assert seq == 5
    assert problem == "seq 5: its subject 'doc-1' is missing from audit_subjects (derived index edited)"


def test_deleted_subject_row_fails_parallel_verify_the_same(log: AuditLog, db_url: str) -> None:
    fill(log, 20)
    attack(db_url, lambda c: c.execute(delete(subjects).where(subjects.c.seq == 17)))
    single = log.verify()
    parallel = log.verify(workers=2, range_size=8)
    assert not single.ok and single.first_bad_seq == 17 and "missing from audit_subjects" in (single.problem or "")
    assert (parallel.ok, parallel.first_bad_seq, parallel.problem) == (single.ok, single.first_bad_seq, single.problem)


def test_added_subject_row_invents_nothing_and_fails_verify(log: AuditLog, db_url: str, tmp_path: Path) -> None:
    attack(db_url, lambda c: c.execute(insert(subjects).values(subject="doc-1", seq=3)))
    assert [e.seq for e in log.entries(subject="doc-1")] == [2, 5, 8]
    log.export(tmp_path / "bundle", EntryFilter(subject="doc-1"), actor="auditor")
    assert _bundle_seqs(tmp_path / "bundle") == [2, 5, 8]
    seq, problem = _bad(log)
    assert seq == 3
    assert problem == "seq 3: audit_subjects lists subject 'doc-1', which the chained entry does not name (derived index edited)"


def test_subject_row_for_a_seq_the_log_does_not_hold_fails_verify(log: AuditLog, db_url: str) -> None:
    attack(db_url, lambda c: c.execute(insert(subjects).values(subject="doc-1", seq=500)))
    seq, problem = _bad(log)
    assert seq == 500 and "audit_subjects" in problem and "the log holds seq 1.." in problem


def test_bogus_redaction_row_fails_verify(log: AuditLog, db_url: str) -> None:
    attack(db_url, lambda c: c.execute(insert(redactions).values(seq=6, redaction_seq=9)))
    seq, problem = _bad(log)
    assert seq == 6
    assert problem == (
        "seq 6: audit_redactions says seq 9 redacted it, but no chained redaction event says so (derived table edited)"
    )


def test_deleted_redaction_row_fails_verify(log: AuditLog, db_url: str) -> None:
    log.redact(4, "erasure request", "GDPR Art. 17", "dpo")  # the redaction event is seq 10
    attack(db_url, lambda c: c.execute(delete(redactions).where(redactions.c.seq == 4)))
    seq, problem = _bad(log)
    assert seq == 4
    assert problem == "seq 4: its redaction (event seq 10) is missing from audit_redactions (derived table edited)"


def test_subject_filter_matches_escaped_and_exact_subjects_only(log: AuditLog) -> None:
    log.append("answer", {"q": "accented"}, actor="alice", subjects=('café "quoted"',))  # stored JSON-escaped
    log.append("answer", {"q": "prefix"}, actor="alice", subjects=("doc-10",))
    assert [e.seq for e in log.entries(subject='café "quoted"')] == [10]
    assert [e.seq for e in log.entries(subject="doc-1")] == [2, 5, 8]  # not doc-10
    assert [e.seq for e in log.entries(subject="doc")] == []
    assert log.verify().ok
