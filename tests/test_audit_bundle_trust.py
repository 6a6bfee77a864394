"""Bundles under pinned keys: a re-signed bundle, rotations, removed entries, subset exports, the release verifier.

The verifier runs as an auditor runs it: the release copy (audit/verify_bundle.py), a bare interpreter,
outside the repository.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import update
from test_audit_support import attack, db_url, fill, keys_dir  # noqa: F401

from audit import AuditLog, EntryFilter
from audit.schema import head

REPO = Path(__file__).resolve().parents[1]
VERIFIER = REPO / "audit" / "verify_bundle.py"


@pytest.fixture
def log(db_url: str, keys_dir: Path) -> AuditLog:
    opened = AuditLog.open(db_url, keys_dir)
    yield opened
    opened.close()


def verify(bundle: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run(
        [sys.executable, "-I", str(VERIFIER), str(bundle), *extra],
        capture_output=True, text=True, cwd=bundle, env=env, check=False, timeout=120,
    )


def key_ids(log: AuditLog) -> list[str]:
    """The log's announced keys, oldest first."""
    return [e.payload["key_id"] for e in log.entries(event_type="key_rotation")]


def fails(result: subprocess.CompletedProcess[str]) -> list[str]:
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    return [line for line in result.stdout.splitlines() if line.startswith("FAIL ")]


def test_a_bundle_re_signed_with_the_attackers_key_passes_only_unpinned_and_loudly(
    log: AuditLog, keys_dir: Path, tmp_path: Path
) -> None:
    fill(log, 5)
    log.append("rejection", {"seq": 3, "decision": "reject", "note": "missing indemnity"}, actor="partner")
    real = tmp_path / "real"
    log.export(real, actor="auditor")
    genesis = key_ids(log)[0]
    real_key = keys_dir / f"{genesis}.pub"

    # The attacker has the database, not the key: a log of their own under the real log id, holding the
    # same history with the rejection turned into a sign-off, exported and signed by their own key.
    forged_db = f"sqlite:///{tmp_path / 'forged.db'}"
    with AuditLog.open(forged_db, tmp_path / "attacker-keys") as forged:
        attack(forged_db, lambda c: c.execute(update(head).values(log_id=log.log_id)))
        fill(forged, 5)
        forged.append("sign_off", {"seq": 3, "decision": "approve", "note": "fine"}, actor="partner")
        forged.export(tmp_path / "forged", actor="auditor")
        attacker = key_ids(forged)[0]
    assert attacker != genesis

    unpinned = verify(tmp_path / "forged")
    assert unpinned.returncode == 0, unpinned.stdout + unpinned.stderr
    warning = [line for line in unpinned.stdout.splitlines() if line.startswith("WARNING ")]
    assert len(warning) == 1 and attacker in warning[0] and "no key pinned" in warning[0]
    as_json = verify(tmp_path / "forged", "--json")
    report = json.loads(as_json.stdout)
    assert report["ok"] is True and attacker in report["warnings"][0] and report["pinned"] == []
    assert attacker in report["signers"] and "WARNING" in as_json.stderr

    for pin in (str(real_key), genesis):  # the key file, or its id
        pinned = fails(verify(tmp_path / "forged", "--trust", pin))
        assert any(attacker in line and "not a trusted public key" in line for line in pinned), pinned
        assert any(line.startswith("FAIL manifest.json is signed by key " + attacker) for line in pinned), pinned

    honest = verify(real, "--trust", str(real_key))
    assert honest.returncode == 0, honest.stdout + honest.stderr
    assert "WARNING" not in honest.stdout and f"signed by pinned key {genesis}" in honest.stdout
    raw_hex = tmp_path / "real-key.hex"  # the raw key in hex, as some owners hand it out
    raw_hex.write_text(next(log.entries(event_type="key_rotation")).payload["public_key"] + "\n")
    assert verify(real, "--trust", str(raw_hex)).returncode == 0


def test_a_manifest_re_signed_alone_fails_under_the_real_key(log: AuditLog, keys_dir: Path, tmp_path: Path) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    fill(log, 4)
    bundle = tmp_path / "b"
    log.export(bundle, actor="auditor")
    genesis = key_ids(log)[0]
    # Remove an entry, fix the manifest's digest and seqs, re-sign it with a new key placed in public_keys/.
    lines = (bundle / "entries.jsonl").read_text().splitlines(keepends=True)
    proofs = (bundle / "proofs.jsonl").read_text().splitlines(keepends=True)
    (bundle / "entries.jsonl").write_text("".join(lines[:1] + lines[2:]))
    (bundle / "proofs.jsonl").write_text("".join(proofs[:1] + proofs[2:]))
    key = Ed25519PrivateKey.generate()
    public = key.public_key()
    attacker = hashlib.sha256(public.public_bytes(Encoding.Raw, PublicFormat.Raw)).hexdigest()[:16]
    for old in (bundle / "public_keys").iterdir():
        old.unlink()
    (bundle / "public_keys" / f"{attacker}.pub").write_bytes(public.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo))
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest.update(key_id=attacker, filters={"actor": "alice"}, entries=manifest["entries"] - 1)
    manifest["seqs"] = [[1, 1], [3, manifest["tree_size"]]]
    manifest["files"] = {
        name: hashlib.sha256((bundle / name).read_bytes()).hexdigest() for name in manifest["files"] if (bundle / name).is_file()
    }
    manifest["files"][f"public_keys/{attacker}.pub"] = hashlib.sha256((bundle / "public_keys" / f"{attacker}.pub").read_bytes()).hexdigest()
    manifest["sizes"] = {name: (bundle / name).stat().st_size for name in manifest["files"]}
    data = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()
    (bundle / "manifest.json").write_bytes(data)
    (bundle / "manifest.sig").write_text(key.sign(data).hex() + "\n")
    pinned = fails(verify(bundle, "--trust", genesis))
    assert pinned == [
        f"FAIL manifest.json is signed by key {attacker}, which the bundle's key events never announce "
        "(not pinned with --trust and not handed over to by a pinned key)"
    ]


def test_a_rotation_chain_from_the_pinned_key_passes(log: AuditLog, keys_dir: Path, tmp_path: Path) -> None:
    fill(log, 3)
    log.checkpoint()
    log.rotate_key(actor="admin")
    fill(log, 3)
    log.checkpoint()
    log.rotate_key(actor="admin")
    fill(log, 2)
    first, *later = key_ids(log)
    assert len(later) == 2
    for name, filters in (("whole", EntryFilter()), ("subset", EntryFilter(subject="doc-1"))):
        bundle = tmp_path / name
        log.export(bundle, filters, actor="auditor")
        assert len((bundle / "key_events.jsonl").read_text().splitlines()) == 3
        result = verify(bundle, "--trust", str(keys_dir / f"{first}.pub"))
        assert result.returncode == 0, result.stdout + result.stderr
        report = json.loads(verify(bundle, "--trust", first, "--json").stdout)
        assert report["ok"] and set(report["signers"]) >= {first, later[-1]}, report
        # A key pinned that the log never had: nothing in the bundle chains to it.
        stranger = fails(verify(bundle, "--trust", "0123456789abcdef"))
        assert any(line.startswith(f"FAIL checkpoint.json is signed by key {later[-1]}") for line in stranger), stranger


def test_an_entry_removed_from_a_whole_log_bundle_is_named(log: AuditLog, keys_dir: Path, tmp_path: Path) -> None:
    fill(log, 10)
    bundle = tmp_path / "b"
    log.export(bundle, actor="auditor")
    kept = [line for line in (bundle / "entries.jsonl").read_text().splitlines(keepends=True)
            if json.loads(line)["seq"] not in (4, 7, 8, 9)]
    proofs = [line for line in (bundle / "proofs.jsonl").read_text().splitlines(keepends=True)
              if json.loads(line)["seq"] not in (4, 7, 8, 9)]
    (bundle / "entries.jsonl").write_text("".join(kept))
    (bundle / "proofs.jsonl").write_text("".join(proofs))
    problems = fails(verify(bundle, "--trust", key_ids(log)[0]))
    assert any(line.startswith("FAIL entries.jsonl: SHA-256 differs from the manifest") for line in problems), problems
    assert any("seq 4, 7..9 missing from the bundle" in line for line in problems), problems


def test_a_subset_export_passes_with_its_proofs_and_fails_when_one_is_altered(
    log: AuditLog, keys_dir: Path, tmp_path: Path
) -> None:
    fill(log, 9)
    bundle = tmp_path / "b"
    result = log.export(bundle, EntryFilter(subject="doc-2"), actor="auditor")
    manifest = json.loads((bundle / "manifest.json").read_text())
    selected = [e.seq for e in log.entries(subject="doc-2")]
    assert len(selected) == 3 and manifest["filters"] == {"subject": "doc-2"}
    assert manifest["seqs"] == [[seq, seq] for seq in selected] and result["entries"] == 3
    genesis = key_ids(log)[0]
    ok = verify(bundle, "--trust", genesis)
    assert ok.returncode == 0, ok.stdout + ok.stderr

    altered = tmp_path / "altered"
    shutil.copytree(bundle, altered)
    lines = (altered / "proofs.jsonl").read_text().splitlines()
    proof = json.loads(lines[1])
    proof["path"][0] = "ab" * 32
    lines[1] = json.dumps(proof)
    (altered / "proofs.jsonl").write_text("\n".join(lines) + "\n")
    problems = fails(verify(altered, "--trust", genesis))
    assert f"FAIL entries.jsonl line 2: entry seq {selected[1]} is not proven included in checkpoint.json" in problems

    removed = tmp_path / "removed"
    shutil.copytree(bundle, removed)
    for name in ("entries.jsonl", "proofs.jsonl"):
        lines = (removed / name).read_text().splitlines(keepends=True)
        (removed / name).write_text(lines[0] + lines[2])
    problems = fails(verify(removed, "--trust", genesis))
    assert any(f"seq {selected[1]} missing from the bundle" in line for line in problems), problems


@pytest.mark.parametrize("command", [["verifier"], ["verifier", "--json"]])
def test_the_release_verifier_and_its_sha256(command: list[str]) -> None:
    result = subprocess.run([sys.executable, "-m", "audit", *command], capture_output=True, text=True, cwd=REPO, check=False)
    assert result.returncode == 0, result.stderr
    digest = hashlib.sha256(VERIFIER.read_bytes()).hexdigest()
    if "--json" in command:
        assert json.loads(result.stdout) == {"path": str(VERIFIER.resolve()), "sha256": digest}
    else:
        assert result.stdout.splitlines() == [str(VERIFIER.resolve()), f"sha256 {digest}"]
