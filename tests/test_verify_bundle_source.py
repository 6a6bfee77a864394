"""The auditor's verifier is one file built from the library, and the two agree.

audit/verify_bundle.py is what an auditor runs alone (standard library plus `cryptography`); the
library's code lives in audit/verification/, which the log verifies through and the script is built
from (`python -m audit.verification.build`). Here: the script on disk is that build; it imports
nothing else, even when run from a folder of its own with Docket's packages unimportable; no library
module imports it; and the library and a copy of the script give the same reports on a real bundle
and on each way of tampering with it.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest
from test_audit_support import db_url, fill, keys_dir  # noqa: F401

from audit import AuditLog
from audit.verification import MODULES, VERIFIER_SCRIPT
from audit.verification import bundle as library_bundle
from audit.verification import entries, jcs, tree
from audit.verification.build import build

REPO = Path(__file__).resolve().parents[1]
ALLOWED_TOP = set(sys.stdlib_module_names) | {"cryptography"}


def imports_of(path: Path) -> set[str]:
    """Every module an import in the file names, at any depth (relative imports as '.')."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            found.add("." if node.level else (node.module or ""))
    return found


def test_the_script_on_disk_is_the_build_of_the_library_modules():
    assert VERIFIER_SCRIPT == REPO / "audit" / "verify_bundle.py"
    assert VERIFIER_SCRIPT.read_text(encoding="utf-8") == build(), (
        "audit/verify_bundle.py is not the build of audit/verification/: run python -m audit.verification.build")
    checked = subprocess.run([sys.executable, "-m", "audit.verification.build", "--check"], cwd=REPO,
                             capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stderr


def test_the_script_imports_only_the_standard_library_and_cryptography():
    assert sorted(m for m in imports_of(VERIFIER_SCRIPT) if m.split(".")[0] not in ALLOWED_TOP) == []
    assert "cryptography.hazmat.primitives.asymmetric.ed25519" in imports_of(VERIFIER_SCRIPT)  # the scan sees them


def test_each_library_module_imports_only_what_the_script_may_and_the_modules_before_it():
    for position, name in enumerate(MODULES):
        path = REPO / "audit" / "verification" / f"{name}.py"
        own = {m for m in imports_of(path) if m.startswith("audit")}
        assert own <= {f"audit.verification.{earlier}" for earlier in MODULES[:position]}, (name, own)
        assert {m for m in imports_of(path) - own if m.split(".")[0] not in ALLOWED_TOP | {"__future__"}} == set(), name


def test_no_library_module_imports_the_auditors_script():
    importing = []
    for package in ("audit", "pipeline", "ingest"):
        for path in sorted((REPO / package).rglob("*.py")):
            if path == VERIFIER_SCRIPT:
                continue
            tree_ = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            for node in ast.walk(tree_):
                named = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                         [node.module or "", *(f"{node.module}.{a.name}" for a in node.names)]
                         if isinstance(node, ast.ImportFrom) else [])
                if "audit.verify_bundle" in named:
                    importing.append(str(path.relative_to(REPO)))
    assert importing == []


def test_shared_vectors_hash_and_encode_alike_in_the_library_and_the_script(script: ModuleType):
    values = [{}, {"b": [1, "x"], "a": None}, {"é": "\u2028", "n": -(2**53 - 1), "t": True, "nested": {"z": [], "y": {}}}]
    for value in values:
        assert script.canonical_json(value) == jcs.canonical_json(value)
    for data in (b"", b"\x00", b"docket" * 100):
        assert script.leaf_hash(data) == tree.leaf_hash(data)
        assert script.node_hash(data, b"r") == tree.node_hash(data, b"r")
    entry = {"seq": 7, "time": "2026-01-02T03:04:05.000006Z", "event_type": "answer", "actor": "os-user:ann",
             "request_id": None, "subjects": ["doc:ab", "review:1"], "status": "ok",
             "payload_commitment": "ab" * 32, "prev_hash": "cd" * 32}
    assert script.leaf_bytes(entry) == entries.leaf_bytes(entry)
    assert script.payload_commitment("01" * 16, '{"a":1}') == entries.payload_commitment("01" * 16, '{"a":1}')
    checkpoint = {"format": "docket-audit-checkpoint/1", "size": 3, "root": "ef" * 32, "signature": "00"}
    assert script.checkpoint_message(checkpoint) == entries.checkpoint_message(checkpoint)


# -- the same reports on a real bundle and its tamperings ------------------------------------------------------

@pytest.fixture
def script(tmp_path: Path) -> Iterator[ModuleType]:
    """A copy of the release script, imported from a folder of its own under a name of its own."""
    copy = tmp_path / "auditor" / "verify_bundle.py"
    copy.parent.mkdir()
    shutil.copyfile(VERIFIER_SCRIPT, copy)
    spec = importlib.util.spec_from_file_location("auditors_verify_bundle", copy)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file runs
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        del sys.modules[spec.name]


@pytest.fixture
def exported(db_url: str, tmp_path: Path, keys_dir: Path) -> Path:  # noqa: F811
    """A bundle exported from a real log, on SQLite and on PostgreSQL."""
    with AuditLog.open(db_url, keys_dir) as log:
        fill(log, 6)
        log.append("rejection", {"seq": 3, "decision": "reject", "note": "missing indemnity"}, actor="partner")
        log.export(tmp_path / "bundle", actor="auditor")
    return tmp_path / "bundle"


def _edit_line(name: str, index: int, edit: Callable[[dict], None]) -> Callable[[Path], None]:
    def apply(bundle: Path) -> None:
        lines = (bundle / name).read_text(encoding="utf-8").splitlines()
        record = json.loads(lines[index])
        edit(record)
        lines[index] = json.dumps(record)
        (bundle / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return apply


def _lines(name: str, change: Callable[[list[str]], list[str]]) -> Callable[[Path], None]:
    def apply(bundle: Path) -> None:
        lines = (bundle / name).read_text(encoding="utf-8").splitlines()
        (bundle / name).write_text("\n".join(change(lines)) + "\n", encoding="utf-8")
    return apply


def _payload(record: dict) -> None:
    edited = record["payload"].replace('"answer":"', '"answer":"not ', 1)  # the payload as exported: canonical JSON text
    assert edited != record["payload"]
    record["payload"] = edited


def _manifest_hash(bundle: Path) -> None:
    manifest = json.loads((bundle / "manifest.json").read_text())
    name = sorted(manifest["files"])[0]
    manifest["files"][name] = "0" * 64
    (bundle / "manifest.json").write_text(json.dumps(manifest, indent=2))


def _remove_keys(bundle: Path) -> None:
    shutil.rmtree(bundle / "public_keys")


TAMPERINGS: dict[str, Callable[[Path], None] | None] = {
    "untouched": None,
    "a payload edited": _edit_line("entries.jsonl", 2, _payload),
    "an actor edited": _edit_line("entries.jsonl", 1, lambda r: r.update(actor="mallory")),
    "a time edited": _edit_line("entries.jsonl", 3, lambda r: r.update(time="2020-01-01T00:00:00.000000Z")),
    "an entry removed": _lines("entries.jsonl", lambda lines: lines[:2] + lines[3:]),
    "two entries swapped": _lines("entries.jsonl", lambda lines: [lines[1], lines[0], *lines[2:]]),
    "an entry twice": _lines("entries.jsonl", lambda lines: [*lines, lines[-1]]),
    "a line that is no JSON": _lines("entries.jsonl", lambda lines: [*lines[:-1], "{not json"]),
    "a float in an entry": _edit_line("entries.jsonl", 0, lambda r: r.update(seq=float(r["seq"]))),
    "a proof edited": _lines("proofs.jsonl", lambda lines: [lines[0].replace(lines[0][-20:-4], "0" * 16), *lines[1:]]),
    "the manifest's hash of a file": _manifest_hash,
    "the public keys removed": _remove_keys,
}


@pytest.mark.parametrize("tampering", list(TAMPERINGS))
def test_the_library_and_the_script_give_the_same_report(tampering: str, exported: Path, script: ModuleType,
                                                         keys_dir: Path) -> None:  # noqa: F811
    tamper = TAMPERINGS[tampering]
    if tamper is not None:
        tamper(exported)
    trust = [str(p) for p in sorted(keys_dir.glob("*.pub"))]
    by_library = library_bundle.verify_bundle(exported, trust=trust).to_dict()
    by_script = script.verify_bundle(exported, trust=trust).to_dict()
    assert by_script == by_library
    assert by_library["ok"] is (tamper is None), by_library  # every tampering is caught
    if tamper is not None:
        assert by_library["problems"], by_library


def test_the_script_runs_alone_in_a_folder_of_its_own(exported: Path, keys_dir: Path, tmp_path: Path) -> None:  # noqa: F811
    """As an auditor runs it: a bare interpreter (-I), its own folder, and Docket's packages made
    unimportable, so an import of any of them would fail the run."""
    alone = tmp_path / "alone"
    alone.mkdir()
    shutil.copyfile(VERIFIER_SCRIPT, alone / "verify_bundle.py")
    assert hashlib.sha256((alone / "verify_bundle.py").read_bytes()).hexdigest() == hashlib.sha256(
        (exported / "verify_bundle.py").read_bytes()).hexdigest()  # the bundle ships the release file
    bootstrap = ("import runpy, sys\n"
                 "for name in ('audit', 'pipeline', 'ingest', 'bench'):\n"
                 "    sys.modules[name] = None\n"
                 "sys.argv = ['verify_bundle.py', *sys.argv[1:]]\n"
                 "runpy.run_path('verify_bundle.py', run_name='__main__')\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    pub = sorted(keys_dir.glob("*.pub"))[0]
    run = subprocess.run([sys.executable, "-I", "-c", bootstrap, str(exported), "--trust", str(pub), "--json"],
                         cwd=alone, env=env, capture_output=True, text=True, check=False, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    assert json.loads(run.stdout)["ok"] is True
    _edit_line("entries.jsonl", 2, _payload)(exported)
    failed = subprocess.run([sys.executable, "-I", "-c", bootstrap, str(exported), "--trust", str(pub)],
                            cwd=alone, env=env, capture_output=True, text=True, check=False, timeout=120)
    assert failed.returncode == 1 and "Traceback" not in failed.stderr, failed.stdout + failed.stderr
    assert any(line.startswith("FAIL ") for line in failed.stdout.splitlines()), failed.stdout
