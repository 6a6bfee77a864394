"""The audit log's API, its commands and its export bundles, on SQLite and PostgreSQL."""

from __future__ import annotations

import ast
import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import update
from test_audit_support import attack, db_url, fill, keys_dir  # noqa: F401
from typer.testing import CliRunner

from audit import AuditContext, AuditError, AuditLog, EntryFilter, NewEvent
from audit.cli import make_app
from audit.schema import entries, payloads
from audit.verification.tree import leaf_hash, verify_consistency, verify_inclusion
from audit.verification.entries import leaf_bytes

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def log(db_url: str, keys_dir: Path) -> AuditLog:
    opened = AuditLog.open(db_url, keys_dir)
    yield opened
    opened.close()


# -- API -------------------------------------------------------------------------------------------


def test_append_assigns_contiguous_seq_and_chains_leaves(log: AuditLog) -> None:
    first = log.append("answer", {"q": "Notice period?"}, actor="alice", request_id="r1", subjects=["sha-a"], status="answered")
    second = log.append("review_finding", {"finding": "missing clause"}, actor="bob", subjects=["sha-a", "rev-1"])
    assert (first.seq, second.seq) == (1, 2)
    entry = log.get(2)
    assert entry.prev_hash == first.leaf_hash
    assert entry.leaf_hash == second.leaf_hash == leaf_hash(leaf_bytes({**entry.to_dict(), "subjects": list(entry.subjects)})).hex()
    assert entry.payload == {"finding": "missing clause"} and entry.subjects == ("sha-a", "rev-1")
    report = log.verify()
    assert report.ok and report.size == 2


def test_a_float_anywhere_in_the_payload_is_refused_and_nothing_is_written(log: AuditLog) -> None:
    with pytest.raises(TypeError, match=r"\$\.evidence\[0\]\.score"):
        log.append("answer", {"evidence": [{"score": 0.93}]}, actor="alice")
    with pytest.raises(AuditError, match="event type"):
        log.append("Answer!", {}, actor="alice")
    assert log.size == 0


def test_append_many_is_all_or_nothing(log: AuditLog) -> None:
    good = NewEvent("review_finding", {"finding": "clause missing"}, "reviewer", subjects=("rev-1",))
    with pytest.raises(TypeError, match=r"\$\.confidence"):
        log.append_many([good, NewEvent("review_finding", {"confidence": 0.5}, "reviewer")])
    with pytest.raises(AuditError, match="lone surrogate"):
        log.append_many([good, NewEvent("review_finding", {}, "reviewer\udc80")])
    assert log.size == 0
    appended = log.append_many([good, good])
    assert [a.seq for a in appended] == [1, 2] and log.verify().ok


def test_filters(log: AuditLog) -> None:
    fill(log, 6)
    log.append("answer", {"question": "Who signs for ACME?"}, actor="carol", status="refused", subjects=["doc-9"])
    assert [e.seq for e in log.entries(actor="carol")] == [7]
    assert [e.seq for e in log.entries(subject="doc-1")] == [2, 5]
    assert [e.seq for e in log.entries(status="refused")] == [7]
    assert [e.seq for e in log.entries(text="acme")] == [7]  # case-insensitive, inside payloads
    assert [e.seq for e in log.entries(text="50%")] == []  # % is matched literally
    assert [e.seq for e in log.entries(event_type="answer", subject="doc-0")] == [1, 4]
    middle = log.get(4).time
    assert [e.seq for e in log.entries(since=middle)] == [4, 5, 6, 7]
    assert [e.seq for e in log.entries(until=middle)] == [1, 2, 3]
    with pytest.raises(AuditError, match="--since 'last week'"):
        list(log.entries(since="last week"))


def test_redaction_erases_payload_keeps_chain_and_is_recorded(log: AuditLog) -> None:
    fill(log, 3)
    event = log.redact(2, "erasure request", "GDPR Art. 17", "dpo")
    entry = log.get(2)
    assert entry.payload is None
    assert entry.redaction is not None and (entry.redaction.by_seq, entry.redaction.actor) == (event.seq, "dpo")
    assert not list(log.entries(text="answer 1"))
    recorded = log.get(event.seq)
    assert recorded.event_type == "redaction" and recorded.payload["seq"] == 2
    assert recorded.payload["payload_commitment"] == entry.payload_commitment
    report = log.verify()
    assert report.ok and report.redacted == [2]
    with pytest.raises(AuditError, match="already redacted"):
        log.redact(2, "again", "GDPR Art. 17", "dpo")
    with pytest.raises(AuditError, match="cannot be redacted"):
        log.redact(event.seq, "hide the redaction", "none", "mallory")


def test_reads_and_decisions_are_logged(log: AuditLog) -> None:
    fill(log, 2)
    log.read(1, actor="auditor")
    decision = log.annotate(2, "correct", "clause 4.2, not 4.1", actor="reviewer")
    kinds = [(e.event_type, e.actor, e.payload) for e in log.entries(since=None)][2:]
    assert kinds[0] == ("read", "auditor", {"seq": 1})
    assert kinds[1] == ("correction", "reviewer", {"seq": 2, "decision": "correct", "note": "clause 4.2, not 4.1"})
    assert "doc-1" in log.get(decision.seq).subjects  # decisions are found by the entry's document
    with pytest.raises(AuditError, match="decision 'maybe'"):
        log.annotate(2, "maybe", "", actor="reviewer")
    with pytest.raises(AuditError, match="no entry with seq 99"):
        log.annotate(99, "approve", "", actor="reviewer")


def test_checkpoints_every_n_entries_and_keys_stay_private(db_url: str, keys_dir: Path) -> None:
    with AuditLog.open(db_url, keys_dir, checkpoint_every=3) as log:
        fill(log, 7)
        kinds = [e.event_type for e in log.entries()]
        assert kinds.count("key_rotation") == 1 and kinds.count("checkpoint") == 2
        assert log.verify().checkpoints_verified == 2
    private = [p for p in keys_dir.iterdir() if p.suffix == ".key"]
    assert private and all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in private)
    assert stat.S_IMODE(keys_dir.stat().st_mode) == 0o700


def test_inclusion_and_consistency_proofs_verify_against_checkpoints(log: AuditLog, tmp_path: Path) -> None:
    fill(log, 9)
    old = log.checkpoint()
    fill(log, 4)
    new = log.checkpoint()
    proof = log.prove(5, new["size"])
    assert proof["root"] == new["root"]
    assert verify_inclusion(4, new["size"], bytes.fromhex(log.get(5).leaf_hash), [bytes.fromhex(h) for h in proof["path"]], bytes.fromhex(new["root"]))
    consistency = log.prove_consistency(old["size"], new["size"])
    assert (consistency["first_root"], consistency["second_root"]) == (old["root"], new["root"])
    assert verify_consistency(old["size"], new["size"], bytes.fromhex(old["root"]), bytes.fromhex(new["root"]), [bytes.fromhex(h) for h in consistency["path"]])
    with pytest.raises(AuditError, match="no entry with seq 0"):
        log.prove(0)


def test_key_rotation_keeps_old_checkpoints_verifiable(log: AuditLog, keys_dir: Path, tmp_path: Path) -> None:
    fill(log, 3)
    log.checkpoint(tmp_path / "before.json")
    new_key = log.rotate_key(actor="admin")
    fill(log, 2)
    after = log.checkpoint(tmp_path / "after.json")
    assert after["key_id"] == new_key
    assert log.verify(tmp_path / "before.json").ok and log.verify(tmp_path / "after.json").ok
    exported = log.export_public_keys(tmp_path / "pub")
    assert sorted(p.stem for p in exported) == sorted(p.stem for p in keys_dir.glob("*.pub"))
    assert all(b"PRIVATE" not in p.read_bytes() for p in exported)


def test_opening_errors_are_one_clear_line(tmp_path: Path) -> None:
    with pytest.raises(AuditError, match=r"audit database not found: .*missing\.db"):
        AuditLog.open(f"sqlite:///{tmp_path / 'missing.db'}", create=False)
    with pytest.raises(AuditError, match="not a database URL"):
        AuditLog.open("audit.db")
    with pytest.raises(AuditError, match="unsupported audit database"):
        AuditLog.open("mysql://localhost/x")


# -- export bundles ----------------------------------------------------------------------------------


def _verify_bundle(bundle: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """Run the bundle's own verify_bundle.py as an auditor would: a bare interpreter, outside the repo."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run(
        [sys.executable, "-I", str(bundle / "verify_bundle.py"), str(bundle), *extra],
        capture_output=True, text=True, cwd=bundle, env=env, check=False,
    )


def test_export_is_deterministic_logged_and_verifies_offline(log: AuditLog, tmp_path: Path) -> None:
    fill(log, 8)
    log.redact(3, "erasure request", "GDPR Art. 17", "dpo")
    kept = tmp_path / "kept.json"
    log.checkpoint(kept)
    first = log.export(tmp_path / "b1", actor="auditor", checkpoint=kept)
    second = log.export(tmp_path / "b2", actor="auditor", checkpoint=kept)
    assert first == second
    files = sorted(p.relative_to(tmp_path / "b1") for p in (tmp_path / "b1").rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(tmp_path / "b2") for p in (tmp_path / "b2").rglob("*") if p.is_file())
    assert all((tmp_path / "b1" / f).read_bytes() == (tmp_path / "b2" / f).read_bytes() for f in files)
    exports = list(log.entries(event_type="export"))
    assert [e.payload["bundle_manifest_sha256"] for e in exports] == [first["bundle_manifest_sha256"]] * 2

    result = _verify_bundle(tmp_path / "b1", "--checkpoint", str(kept))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("OK")
    entries = [json.loads(line) for line in (tmp_path / "b1" / "entries.jsonl").read_text().splitlines()]
    assert [e["seq"] for e in entries] == list(range(1, first["tree_size"] + 1))
    assert entries[2]["payload"] is None and entries[2]["salt"] is None  # redacted stays redacted


def test_bundle_verifier_needs_only_the_standard_library_and_cryptography() -> None:
    source = (REPO / "audit" / "verify_bundle.py").read_text()
    roots = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            roots.add((node.module or "").split(".")[0])
    assert roots - set(sys.stdlib_module_names) - {"__future__"} == {"cryptography"}


def test_filtered_export_proves_only_the_selected_entries(log: AuditLog, tmp_path: Path) -> None:
    fill(log, 9)
    result = log.export(tmp_path / "b", EntryFilter(subject="doc-2"), actor="auditor")
    assert result["entries"] == 3
    lines = (tmp_path / "b" / "entries.jsonl").read_text().splitlines()
    assert [json.loads(line)["seq"] for line in lines] == [3, 6, 9]
    assert _verify_bundle(tmp_path / "b").returncode == 0


def test_bundle_tampering_names_the_file_and_the_entry(log: AuditLog, tmp_path: Path) -> None:
    fill(log, 6)
    log.export(tmp_path / "a", actor="auditor")
    fill(log, 2)
    log.export(tmp_path / "b", actor="auditor")

    swapped = tmp_path / "swapped"
    shutil.copytree(tmp_path / "b", swapped)
    shutil.copyfile(tmp_path / "a" / "checkpoint.json", swapped / "checkpoint.json")
    result = _verify_bundle(swapped)
    assert result.returncode == 1
    assert "FAIL checkpoint.json: SHA-256 differs from the manifest" in result.stdout

    edited = tmp_path / "edited"
    shutil.copytree(tmp_path / "b", edited)
    lines = (edited / "entries.jsonl").read_text().splitlines()
    entry = json.loads(lines[3])
    entry["payload"] = entry["payload"].replace("answer 3", "answer 33")
    lines[3] = json.dumps(entry)
    (edited / "entries.jsonl").write_text("\n".join(lines) + "\n")
    result = _verify_bundle(edited)
    assert result.returncode == 1
    assert "entries.jsonl: SHA-256 differs" in result.stdout
    assert "entry seq 4 payload does not match its commitment" in result.stdout

    resigned = tmp_path / "manifest"
    shutil.copytree(tmp_path / "b", resigned)
    manifest = json.loads((resigned / "manifest.json").read_text())
    manifest["files"]["entries.jsonl"] = "00" * 32
    (resigned / "manifest.json").write_text(json.dumps(manifest))
    assert "manifest.json: signature does not verify" in _verify_bundle(resigned).stdout

    with pytest.raises(AuditError, match="not an empty directory"):
        log.export(tmp_path / "b", actor="auditor")


# -- commands --------------------------------------------------------------------------------------------


def test_commands(log: AuditLog, db_url: str, keys_dir: Path, tmp_path: Path) -> None:
    fill(log, 4)
    app = make_app(lambda: AuditContext(url=db_url, keys_dir=keys_dir, actor="cli-user"))
    runner = CliRunner()

    def run(*args: str, code: int = 0) -> str:
        result = runner.invoke(app, list(args))
        assert result.exit_code == code, result.output
        return result.output

    listed = json.loads(run("list", "--json", "--subject", "doc-1"))
    assert [e["seq"] for e in listed] == [2]
    assert json.loads(run("show", "3", "--json"))["payload"]["answer"] == "answer 2"
    assert log.get(5).event_type == "read" and log.get(5).actor == "cli-user"
    assert [e["seq"] for e in json.loads(run("search", "question 3", "--json"))] == [4]
    run("checkpoint", "-o", str(tmp_path / "cp.json"))
    assert json.loads(run("verify", "--checkpoint", str(tmp_path / "cp.json"), "--json"))["ok"] is True
    proof = json.loads(run("prove", "2", "--json"))
    assert proof["seq"] == 2 and proof["tree_size"] == log.size
    run("annotate", "2", "--decision", "approve", "--note", "checked")
    run("redact", "1", "--reason", "erasure", "--legal-basis", "[GDPR Art. 17]")
    assert "erasure [[GDPR Art. 17]]" in run("show", "1")  # text prints as it is, never as markup
    assert "1 redacted (seq 1)" in run("verify")
    run("export", "-o", str(tmp_path / "bundle"), "--type", "answer")
    assert (tmp_path / "bundle" / "verify_bundle.py").is_file()
    assert "no entry with seq 999" in run("show", "999", code=2)
    assert "decision 'maybe'" in run("annotate", "1", "--decision", "maybe", code=2)
    attack(db_url, lambda c: c.execute(update(payloads).where(payloads.c.seq == 3).values(payload='{"i":999}')))
    assert run("verify", code=1).strip() == "FAIL seq 3: payload does not match its commitment (payload edited)"


def test_python_m_audit_standalone(db_url: str, keys_dir: Path, tmp_path: Path) -> None:
    with AuditLog.open(db_url, keys_dir) as log:
        fill(log, 3)
    base = [sys.executable, "-m", "audit", "--db", db_url, "--keys", str(keys_dir)]
    ok = subprocess.run([*base, "verify"], capture_output=True, text=True, cwd=REPO, check=False)
    assert ok.returncode == 0 and ok.stdout.startswith("OK size=3"), ok.stdout + ok.stderr
    attack(db_url, lambda c: c.execute(update(entries).where(entries.c.seq == 2).values(actor="x")))
    bad = subprocess.run([*base, "verify", "--json"], capture_output=True, text=True, cwd=REPO, check=False)
    assert bad.returncode == 1 and json.loads(bad.stdout)["first_bad_seq"] == 2
    missing = subprocess.run(
        [sys.executable, "-m", "audit", "--db", f"sqlite:///{tmp_path / 'nope.db'}", "list"],
        capture_output=True, text=True, cwd=REPO, check=False,
    )
    assert missing.returncode == 2
    assert missing.stderr.strip().splitlines() == [f"error: audit database not found: {tmp_path / 'nope.db'} (check --db / the audit_url setting)"]
