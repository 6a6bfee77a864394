"""Hostile checkpoint files and bundles: a clean FAIL naming the file and line, in bounded memory, never a traceback.

Each case goes through `python -m audit verify --checkpoint F` (the `docket audit verify` command) and
through the release verifier on a bundle, both as subprocesses whose address space is capped at
1 GiB: a reader that took a gigabyte line, or /dev/zero, whole would die instead of printing the
expected line.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from test_audit_support import fill

from audit import AuditLog
from audit.verification.hostile_files import MAX_JSON_DEPTH, MAX_JSON_FILE_BYTES, MAX_LINE_BYTES

REPO = Path(__file__).resolve().parents[1]
VERIFIER = REPO / "audit" / "verify_bundle.py"
SENTINEL = "@@hostile@@"
# The field each file's case puts its hostile value into.
FIELD = {
    "checkpoint": "size", "checkpoint.json": "size", "manifest.json": "tree_size", "entries.jsonl": "seq",
    "proofs.jsonl": "tree_size", "checkpoints.jsonl": "consistency", "key_events.jsonl": "path",
}


def _limited() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))


def run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run(argv, capture_output=True, text=True, cwd=cwd, env=env, preexec_fn=_limited, timeout=300, check=False)


# Values put into a field: (literal JSON text, what the message must say).
VALUES: dict[str, tuple[str, str]] = {
    "a string for a number": ('"12"', "must be"),
    "a float": ("12.5", "not valid JSON (the number 12.5 is not an integer (no floats here))"),
    "a huge integer": ("1" + "0" * 5000, "not valid JSON (an integer of 5001 digits is out of range)"),
    "NaN": ("NaN", "not valid JSON (NaN is not a JSON value)"),
    "nesting past json's own limit": ("[" * 100_000 + "]" * 100_000, f"JSON nested more than {MAX_JSON_DEPTH} levels deep"),
    "nesting within json's limit": ("[" * 200 + "]" * 200, f"JSON nested more than {MAX_JSON_DEPTH} levels deep"),
}
# Whole contents of a file (or of one line).
CONTENTS: dict[str, tuple[bytes, str]] = {
    "not JSON": (b'{"format": ', "not valid JSON"),
    "an array": (b"[1, 2, 3]", "expected a JSON object, found an array"),
    "non-UTF-8 bytes": (b'{"format": "\xff\xfe"}', "not UTF-8 text (byte 13 is 0xff)"),
}
KINDS = ["/dev/zero behind a symlink", "a directory", "a named pipe", "a line of gigabytes"]
CASES = [*VALUES, *CONTENTS, *KINDS]


def make_hostile(path: Path, case: str, valid: dict, line: int | None, other_lines: list[bytes]) -> str:
    """Write the case over `path` (a whole file when `line` is None, else that line); returns the message part."""
    if case in KINDS:
        path.unlink()
        if case == "/dev/zero behind a symlink":
            path.symlink_to("/dev/zero")
            return "is a character device behind a symlink, not a regular file"
        if case == "a directory":
            path.mkdir()
            (path / "x").write_text("x")
            return "is a directory, not a regular file"
        if case == "a named pipe":
            os.mkfifo(path)
            return "is a named pipe, not a regular file"
        with path.open("wb") as handle:  # sparse: 3 GB of zero bytes after the first line, no newline
            handle.write(b"".join(other_lines[:1]))
            handle.truncate(3 << 30)
        return f"longer than {MAX_LINE_BYTES} bytes" if line is not None else f"larger than {MAX_JSON_FILE_BYTES} bytes"
    if case in VALUES:
        literal, expected = VALUES[case]
        field = FIELD[path.name] if path.name in FIELD else FIELD["checkpoint"]
        data = json.dumps({**valid, field: SENTINEL}).replace(f'"{SENTINEL}"', literal).encode()
        if case == "a string for a number":
            expected = f"field '{field}' must be"
    else:
        data, expected = CONTENTS[case]
    if line is None:
        path.write_bytes(data)
    else:
        lines = list(other_lines)
        lines[line - 1] = data + b"\n"
        path.write_bytes(b"".join(lines))
    return expected


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path, Path, Path]:
    """A SQLite log with two keys and two checkpoints, a checkpoint file kept outside, and a whole-log bundle."""
    root = tmp_path_factory.mktemp("hostile")
    url, keys = f"sqlite:///{root / 'audit.db'}", root / "keys"
    with AuditLog.open(url, keys) as log:
        fill(log, 3)
        log.checkpoint()
        log.rotate_key(actor="admin")
        fill(log, 2)
        log.checkpoint(root / "kept.json")
        log.export(root / "bundle", actor="auditor")
    for name in ("entries.jsonl", "proofs.jsonl", "checkpoints.jsonl", "key_events.jsonl"):
        assert len((root / "bundle" / name).read_bytes().splitlines()) >= 2, name
    return url, keys, root / "kept.json", root / "bundle"


@pytest.mark.parametrize("case", CASES)
def test_a_hostile_checkpoint_file_is_one_line_naming_it(workspace: tuple[str, Path, Path, Path], tmp_path: Path, case: str) -> None:
    url, keys, kept, _ = workspace
    hostile = tmp_path / "checkpoint.json"
    shutil.copyfile(kept, hostile)
    expected = make_hostile(hostile, case, json.loads(kept.read_text()), None, [kept.read_bytes()])
    result = run([sys.executable, "-m", "audit", "--db", url, "--keys", str(keys), "verify", "--checkpoint", str(hostile)], REPO)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {hostile}: "), result.stderr
    assert expected in lines[0]


BUNDLE_FILES = ["checkpoint.json", "manifest.json", "entries.jsonl", "proofs.jsonl", "checkpoints.jsonl", "key_events.jsonl", "--checkpoint"]


@pytest.mark.parametrize("name", BUNDLE_FILES)
@pytest.mark.parametrize("case", CASES)
def test_a_hostile_bundle_file_fails_naming_the_file_and_line(
    workspace: tuple[str, Path, Path, Path], tmp_path: Path, case: str, name: str
) -> None:
    _, _, kept, original = workspace
    bundle = tmp_path / "bundle"
    shutil.copytree(original, bundle)
    extra: list[str] = []
    if name == "--checkpoint":  # the checkpoint an auditor kept, handed to the verifier
        target, label, line = tmp_path / "mine.json", str(tmp_path / "mine.json"), None
        shutil.copyfile(kept, target)
        extra = ["--checkpoint", str(target)]
    else:
        target, label = bundle / name, name
        line = 2 if name.endswith(".jsonl") else None
    lines = target.read_bytes().splitlines(keepends=True)
    valid = json.loads(lines[line - 1] if line is not None else target.read_bytes())
    expected = make_hostile(target, case, valid, line, lines)
    where = f"{label} line {line}" if line is not None and case not in KINDS[:3] else label
    result = run([sys.executable, "-I", str(VERIFIER), str(bundle), *extra], bundle)
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stderr == ""
    out = result.stdout.splitlines()
    assert all(line.startswith(("FAIL ", "WARNING ")) for line in out), result.stdout
    assert any(line.startswith(f"FAIL {where}: ") and expected in line for line in out), (where, expected, result.stdout)
