"""Export bundles: everything an auditor needs to check a slice of the log on another machine.

A bundle is a directory, deterministic for a given log, checkpoint and filter (sorted JSON, no
timestamps of its own, Ed25519 signatures are deterministic)::

    README.md           what the bundle is and how to check it
    manifest.json       SHA-256 of every other file, the tree size and root, the filter
    manifest.sig        Ed25519 signature of manifest.json (hex)
    checkpoint.json     the signed checkpoint the bundle is proven against
    checkpoints.jsonl   earlier checkpoints in the log, each with a consistency proof to checkpoint.json
    entries.jsonl       the selected entries as stored: chained fields, leaf hash, payload text and salt
    proofs.jsonl        an RFC 9162 inclusion proof of each entry in checkpoint.json's tree
    key_events.jsonl    the log's key events up to checkpoint.json (announcements, handovers,
                        endorsements), each with its inclusion proof: how the signing keys chain
                        to the key an auditor pins with --trust, for a filtered bundle too
    public_keys/*.pub   the signing keys (PEM); compare their ids with the ones you were given
    verify_bundle.py    the stand-alone verifier (Python standard library + cryptography)
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from audit.errors import AuditError
from audit.records import EntryFilter
from audit.files import read_checkpoint
from audit.verification import VERIFIER_SCRIPT
from audit.verification.bundle import seq_ranges
from audit.verification.formats import BUNDLE_FORMAT
from audit.verification.hostile_files import sha256_file

if TYPE_CHECKING:
    from audit.log import AuditLog

_VERIFIER_SOURCE = VERIFIER_SCRIPT

README = """# Docket audit bundle

This directory is an export of a Docket audit log: the entries selected by the filter in
`manifest.json`, each with an RFC 9162 inclusion proof against the signed checkpoint in
`checkpoint.json`.

## Check it

Use the verifier of a Docket release, not the copy in this directory (whoever handed you the
bundle could have changed it): `docket audit verifier` (or `python -m audit verifier`) prints the
path and SHA-256 of the one a Docket installation ships. Pin the log's public key, which its owner
gives you out of band:

    python -m pip install cryptography   # the only dependency
    python verify_bundle.py BUNDLE --trust LOG_KEY.pub   # or --trust KEY_ID; add --checkpoint MINE.json

It prints OK, or one FAIL line per problem naming the file or the entry (seq) that changed. Without
`--trust` it prints a WARNING naming the keys that signed: a bundle signed by any key of its
author's choosing would pass.

## What it checks

1. `manifest.sig` is an Ed25519 signature of `manifest.json`, and every file's SHA-256 matches the
   manifest (a changed, swapped, missing or added file is named).
2. `checkpoint.json`, the manifest and every earlier checkpoint are signed by keys the log
   announced (`key_events.jsonl`), valid at their size, and, with `--trust`, pinned or reached from
   a pinned key by signed handovers and endorsements.
3. Each entry in `entries.jsonl`: its leaf hash matches its fields, its payload matches its salted
   commitment (redacted entries carry no payload; their commitment still proves they existed), it is
   chained to the entry before it when both are present, and its inclusion proof leads to the
   checkpoint's root.
4. Each earlier checkpoint in `checkpoints.jsonl` is signed and consistent with `checkpoint.json`.
5. An export without filters holds every seq up to the checkpoint, a filtered one every seq its
   manifest lists: a removed entry is named (`seq 4, 7..9 missing from the bundle`).
6. When the bundle holds the whole log, the whole chain is verified in one pass as well.

## What you must still do

Pin the log owner's key with `--trust` (the ids in `public_keys/` are only what this bundle says), and keep
`checkpoint.json` (or pass your own earlier checkpoint with `--checkpoint`): a checkpoint kept
outside the database is what proves that the log was not rewritten or truncated since.
"""


def _jsonl(records: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(r, sort_keys=True, ensure_ascii=False, separators=(",", ":")) + "\n" for r in records)


def _pretty(data: Any) -> str:
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def _resolve_checkpoint(log: AuditLog, checkpoint: Path | None, actor: str) -> dict[str, Any]:
    if checkpoint is None:
        return log.checkpoint(actor=actor)
    data = read_checkpoint(checkpoint)
    if data.get("log_id") != log.log_id:
        raise AuditError(f"{checkpoint}: this checkpoint belongs to another log ({data.get('log_id')})")
    return data


def export_bundle(
    log: AuditLog, destination: Path, filters: EntryFilter, *, actor: str, checkpoint: Path | None
) -> dict[str, Any]:
    """Write the bundle, then log an export event; returns that event's payload."""
    if destination.exists() and (not destination.is_dir() or any(destination.iterdir())):
        raise AuditError(f"{destination} already exists and is not an empty directory; choose a new path for the bundle")
    keys = log.key_store()
    signed = _resolve_checkpoint(log, checkpoint, actor)
    size = signed["size"]
    tree = log.merkle_tree(size)
    if tree.root().hex() != signed["root"]:
        raise AuditError(f"the log no longer matches the checkpoint of size {size}; run `verify` first")

    rows = list(log.stored_rows(filters, up_to=size))
    # Every key event up to the checkpoint, whatever the filter: the auditor's pinned key reaches the
    # keys that signed through them, and a filtered bundle holds no other rows to find them in.
    key_events = list(log.stored_rows(EntryFilter(event_type="key_rotation"), up_to=size))
    earlier = [
        {"checkpoint": entry.payload, "consistency": [h.hex() for h in tree.consistency_path(entry.payload["size"])]}
        for entry in log.filtered(EntryFilter(event_type="checkpoint"), up_to=size)
        if entry.payload is not None and entry.payload != signed
    ]
    files: dict[str, str] = {
        "README.md": README,
        "checkpoint.json": _pretty(signed),
        "checkpoints.jsonl": _jsonl(earlier),
        "entries.jsonl": _jsonl(rows),
        "proofs.jsonl": _jsonl(
            [{"seq": r["seq"], "tree_size": size, "path": [h.hex() for h in tree.inclusion_path(r["seq"] - 1)]} for r in rows]
        ),
        "key_events.jsonl": _jsonl(
            [{"entry": r, "path": [h.hex() for h in tree.inclusion_path(r["seq"] - 1)]} for r in key_events]
        ),
    }
    destination.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (destination / name).write_text(text, encoding="utf-8")
    shutil.copyfile(_VERIFIER_SOURCE, destination / "verify_bundle.py")
    keys.export_public(destination / "public_keys")

    key_id, key = keys.active()
    if key_id not in {json.loads(r["payload"] or "{}").get("key_id") for r in key_events}:
        raise AuditError(
            f"the signing key {key_id} entered the log after the checkpoint of size {size}, so a bundle as of "
            "that checkpoint could not show where the key comes from; export as of a newer checkpoint"
        )
    listed = sorted(p.relative_to(destination).as_posix() for p in destination.rglob("*") if p.is_file())
    manifest = {
        "format": BUNDLE_FORMAT,
        "log_id": signed["log_id"],
        "tree_size": size,
        "root": signed["root"],
        "filters": filters.describe(),
        "entries": len(rows),
        # The seqs the bundle holds: the verifier names any that are removed, in a filtered bundle too.
        "seqs": seq_ranges(r["seq"] for r in rows),
        # Whole log: the verifier can also replay the chain end to end.
        "complete": len(rows) == size,
        "key_id": key_id,
        "files": {name: sha256_file(destination / name) for name in listed},
        "sizes": {name: (destination / name).stat().st_size for name in listed},
    }
    manifest_bytes = _pretty(manifest).encode("utf-8")
    (destination / "manifest.json").write_bytes(manifest_bytes)
    (destination / "manifest.sig").write_text(key.sign(manifest_bytes).hex() + "\n")

    event = {
        "bundle_manifest_sha256": hashlib.sha256(manifest_bytes).hexdigest(),
        "tree_size": size,
        "root": signed["root"],
        "filters": filters.describe(),
        "entries": len(rows),
    }
    log.append("export", event, actor=actor, subjects=(f"bundle:{event['bundle_manifest_sha256'][:16]}",))
    return event
