"""``verify_bundle``: the check of an exported bundle directory against its signed manifest,
checkpoints, proofs and the keys the auditor trusts.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from audit.verification.tree import leaf_hash, verify_consistency, verify_inclusion
from audit.verification.entries import checkpoint_message, key_id_of, leaf_bytes, signature_ok
from audit.verification.chain import ChainVerifier, payload_matches, verify_stream
from audit.verification.hostile_files import (
    BundleFileError, CHECKPOINT_FIELDS, EARLIER_CHECKPOINT_FIELDS, ENTRY_FIELDS, KEY_EVENT_FIELDS,
    MANIFEST_FIELDS, MissingFile, PROOF_FIELDS, check_record, is_hex, open_regular_file, parse_json,
    read_bounded, read_checkpoint_file, read_json_file, read_json_lines, sha256_of,
)
from audit.verification.trust import bundle_key_chain, load_trusted_key


@dataclass
class BundleReport:
    """What `verify_bundle` found: problems (each a FAIL), warnings, and who signed what."""

    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    signers: dict[str, list[str]] = field(default_factory=dict)  # key id -> what it signed
    pinned: list[str] = field(default_factory=list)  # the key ids given with --trust

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, **asdict(self)}


def seq_ranges(seqs: Iterable[int]) -> list[list[int]]:
    """Ascending seqs as [first, last] runs."""
    runs: list[list[int]] = []
    for seq in seqs:
        if runs and runs[-1][1] == seq - 1:
            runs[-1][1] = seq
        else:
            runs.append([seq, seq])
    return runs


def _subtract(runs: list[list[int]], minus: list[list[int]]) -> list[list[int]]:
    """The seqs of `runs` not in `minus` (both ascending and disjoint), as runs."""
    left: list[list[int]] = []
    other = iter(minus)
    cut = next(other, None)
    for first, last in runs:
        while cut is not None and first <= last:
            if cut[1] < first:
                cut = next(other, None)
            elif cut[0] > last:
                break
            else:
                if cut[0] > first:
                    left.append([first, cut[0] - 1])
                first = cut[1] + 1
                if cut[1] <= last:
                    cut = next(other, None)
        if first <= last:
            left.append([first, last])
    return left


def describe_seqs(runs: list[list[int]], most: int = 20) -> str:
    """"seq 4, 7..9" (the first `most` runs, then how many more)."""
    shown = ", ".join(str(a) if a == b else f"{a}..{b}" for a, b in runs[:most])
    more = f" and {len(runs) - most} more ranges" if len(runs) > most else ""
    return f"seq {shown}{more}"


def _safe_name(name: str) -> bool:
    """A manifest file name must stay inside the bundle."""
    parts = PurePosixPath(name).parts
    return bool(parts) and not PurePosixPath(name).is_absolute() and ".." not in parts and "\\" not in name


def _check_entry(entry: dict[str, Any], label: str) -> bytes:
    """An entry line's leaf hash (as computed) after its fields, leaf hash and payload commitment check out."""
    seq = entry["seq"]
    try:
        computed = leaf_hash(leaf_bytes(entry))
    except ValueError:  # a lone surrogate: not text that can be hashed
        raise BundleFileError(f"{label}: entry seq {seq} holds a field that is not valid Unicode (entry changed)") from None
    if computed.hex() != entry["leaf_hash"]:
        raise BundleFileError(f"{label}: entry seq {seq} does not match its leaf hash (entry changed)")
    if (entry["payload"] is None) != (entry["salt"] is None):
        raise BundleFileError(f"{label}: entry seq {seq} has a payload without its salt, or a salt without its payload")
    if entry["payload"] is not None and not payload_matches(entry["salt"], entry["payload"], entry["payload_commitment"]):
        raise BundleFileError(f"{label}: entry seq {seq} payload does not match its commitment")
    return computed


def _path(hashes: list[str]) -> list[bytes]:
    return [bytes.fromhex(h) for h in hashes]


class _Bundle:
    """One run of the bundle checks; each check appends what it finds to `report`."""

    def __init__(self, directory: Path, report: BundleReport) -> None:
        self.dir = directory
        self.report = report
        self.problems = report.problems

    def files_match_manifest(self, manifest: dict[str, Any]) -> None:
        listed = manifest["files"]
        # Sizes first: a file of the wrong size is named without hashing it (a gigabyte planted in a
        # bundle is refused at once). Bundles from before sizes were listed are hashed as they are.
        sizes = manifest.get("sizes") if type(manifest.get("sizes")) is dict else {}
        present = {p.relative_to(self.dir).as_posix() for p in self.dir.rglob("*") if p.is_symlink() or not p.is_dir()}
        for name, digest in sorted(listed.items()):
            if not _safe_name(name):
                self.problems.append(f"manifest.json: lists {name!r}, a path outside the bundle")
                continue
            try:
                with open_regular_file(self.dir / name, name) as handle:
                    size, listed_size = os.fstat(handle.fileno()).st_size, sizes.get(name)
                    if type(listed_size) is int and size != listed_size:
                        self.problems.append(  # so it cannot have the listed digest: no need to read it
                            f"{name}: SHA-256 differs from the manifest (file changed or swapped: "
                            f"{size} bytes, the manifest lists {listed_size})"
                        )
                    elif sha256_of(handle) != digest:
                        self.problems.append(f"{name}: SHA-256 differs from the manifest (file changed or swapped)")
            except MissingFile:
                self.problems.append(f"{name}: listed in the manifest but missing")
            except BundleFileError as error:
                self.problems.append(str(error))
        for name in sorted(present - set(listed) - {"manifest.json", "manifest.sig"}):
            self.problems.append(f"{name}: not listed in the manifest (file added)")

    def key_events(self, root: bytes, size: int) -> list[tuple[int, dict[str, Any]]]:
        """The log's key events up to the checkpoint, each proven included in it."""
        events: list[tuple[int, dict[str, Any]]] = []
        try:
            for line, record in read_json_lines(self.dir / "key_events.jsonl", "key_events.jsonl"):
                label = f"key_events.jsonl line {line}"
                check_record(record, KEY_EVENT_FIELDS, label)
                entry = check_record(record["entry"], ENTRY_FIELDS, label)
                computed = _check_entry(entry, label)
                seq = entry["seq"]
                if entry["event_type"] != "key_rotation" or entry["payload"] is None:
                    raise BundleFileError(f"{label}: seq {seq} is not a key_rotation event with its payload")
                if events and seq <= events[-1][0]:
                    raise BundleFileError(f"{label}: seq {seq} comes after seq {events[-1][0]} (out of order)")
                if not verify_inclusion(seq - 1, size, computed, _path(record["path"]), root):
                    raise BundleFileError(f"{label}: key event seq {seq} is not proven included in checkpoint.json")
                payload = parse_json(entry["payload"].encode("utf-8"), f"{label} payload")
                if type(payload) is not dict:
                    raise BundleFileError(f"{label}: the payload of seq {seq} is not a JSON object")
                events.append((seq, payload))
        except MissingFile:
            pass  # a bundle from before key events were exported: the keys come from public_keys/ alone
        except BundleFileError as error:
            self.problems.append(str(error))
        return events

    def entries(self, root: bytes, size: int) -> list[list[int]]:
        """Check every entry line and its inclusion proof; returns the seqs present, as runs."""
        present: list[int] = []
        previous: dict[str, Any] | None = None
        proofs = read_json_lines(self.dir / "proofs.jsonl", "proofs.jsonl")
        try:
            for line, record in read_json_lines(self.dir / "entries.jsonl", "entries.jsonl"):
                label = f"entries.jsonl line {line}"
                entry = check_record(record, ENTRY_FIELDS, label)
                seq = entry["seq"]
                if present and seq <= present[-1]:
                    raise BundleFileError(f"{label}: seq {seq} comes after seq {present[-1]} (entries out of order or repeated)")
                if seq > size:
                    raise BundleFileError(f"{label}: seq {seq} is beyond the checkpoint's {size} entries")
                present.append(seq)
                proof_line, proof = next(proofs, (None, None))
                try:
                    computed = _check_entry(entry, label)
                except BundleFileError as error:
                    self.problems.append(str(error))
                    computed = bytes.fromhex(entry["leaf_hash"])
                else:
                    if previous is not None and previous["seq"] == seq - 1 and entry["prev_hash"] != previous["leaf_hash"]:
                        self.problems.append(f"{label}: entry seq {seq} is not chained to seq {seq - 1}")
                if proof is None:
                    raise BundleFileError(f"proofs.jsonl: no inclusion proof for entry seq {seq} ({label})")
                check_record(proof, PROOF_FIELDS, f"proofs.jsonl line {proof_line}")
                if proof["seq"] != seq or not verify_inclusion(seq - 1, size, computed, _path(proof["path"]), root):
                    self.problems.append(f"{label}: entry seq {seq} is not proven included in checkpoint.json")
                previous = entry
            extra = next(proofs, None)
            if extra is not None:
                self.problems.append(f"proofs.jsonl line {extra[0]}: a proof for no entry of entries.jsonl")
        except BundleFileError as error:
            self.problems.append(str(error))
        return seq_ranges(present)

    def missing_entries(self, manifest: dict[str, Any], present: list[list[int]], size: int) -> None:
        """An export without filters holds every entry; a subset export the seqs its manifest lists."""
        subset = bool(manifest["filters"])
        listed = manifest.get("seqs")
        if listed is not None and not (
            type(listed) is list
            and all(type(r) is list and len(r) == 2 and all(type(s) is int for s in r) and 1 <= r[0] <= r[1] for r in listed)
            and all(a[1] < b[0] for a, b in zip(listed, listed[1:]))
        ):
            self.problems.append("manifest.json: field 'seqs' must be ascending [first, last] ranges of seqs")
            return
        expected = [[1, size]] if size and not subset else (listed if subset and listed is not None else [])
        if not subset and listed is not None and listed != expected:
            self.problems.append(f"manifest.json: an export without filters must list seq 1..{size}")
        if subset and listed is None:
            self.report.warnings.append("manifest.json lists no seqs: the bundle cannot tell whether entries were removed")
        missing = _subtract(expected, present)
        if missing:
            what = "a subset export holds every seq its manifest lists" if subset else "an export without filters holds every entry"
            self.problems.append(f"entries.jsonl: {describe_seqs(missing)} missing from the bundle ({what})")
        unlisted = _subtract(present, expected) if subset and listed is not None else []
        if unlisted:
            self.problems.append(f"entries.jsonl: {describe_seqs(unlisted)} in the bundle but not in its manifest")

    def earlier_checkpoints(self) -> Iterator[tuple[str, dict[str, Any], list[bytes]]]:
        for line, record in read_json_lines(self.dir / "checkpoints.jsonl", "checkpoints.jsonl"):
            label = f"checkpoints.jsonl line {line}"
            check_record(record, EARLIER_CHECKPOINT_FIELDS, label)
            yield label, check_record(record["checkpoint"], CHECKPOINT_FIELDS, label), _path(record["consistency"])


class _Signatures:
    """Who may sign this bundle's manifest and checkpoints: the keys the log announced, and which of them
    are trusted (pinned with --trust, or reached from a pinned key by handovers and endorsements)."""

    def __init__(
        self, chain: ChainVerifier | None, bundle_keys: Mapping[str, Ed25519PublicKey], pinned: bool, report: BundleReport
    ) -> None:
        self.chain = chain
        self.bundle_keys = bundle_keys  # public_keys/: used only for keys the log did not announce in the bundle
        self.pinned = pinned
        self.report = report

    def check(self, label: str, key_id: Any, size: int, signature: Any, message: bytes) -> None:
        key_id = str(key_id)
        info = self.chain.keys.get(key_id) if self.chain is not None else None
        self.report.signers.setdefault(key_id, []).append(label)
        if info is None:
            if self.pinned:
                self.report.problems.append(
                    f"{label} is signed by key {key_id}, which the bundle's key events never announce "
                    "(not pinned with --trust and not handed over to by a pinned key)"
                )
                return
            key = self.bundle_keys.get(key_id)
        else:
            key = info.public_key
        if key is None or not signature_ok(key, str(signature), message):
            self.report.problems.append(f"{label}: signature does not verify with key {key_id} (forged, altered or unknown key)")
            return
        if info is not None and self.chain is not None and not self.chain.key_valid_at(key_id, size):
            self.report.problems.append(f"{label} (size {size}) is signed by key {key_id}, which was not valid at that size (rotated-out key)")
        elif self.pinned and not (info is not None and info.trusted):
            self.report.problems.append(
                f"{label} is signed by key {key_id}, which is not pinned with --trust and does not chain to a pinned key"
            )


def _load_bundle_keys(directory: Path) -> dict[str, Ed25519PublicKey]:
    keys: dict[str, Ed25519PublicKey] = {}
    if not directory.is_dir():
        return keys
    for path in sorted(directory.glob("*.pub")):
        try:
            key_id, key = load_trusted_key(str(path))
        except BundleFileError:
            continue  # a key file nobody can read signs nothing; its id is then reported as unknown
        if key is not None:
            keys[key_id] = key
    return keys


def verify_bundle(bundle: Path, my_checkpoint: Path | None = None, trust: Sequence[str] = ()) -> BundleReport:
    """Check an export bundle against the keys pinned with `trust` (key files or key ids).

    Every problem names a file, a line or a seq (no problems: OK). Raises BundleFileError for a `trust`
    value that is no key (the caller's mistake, not the bundle's).
    """
    pins = dict(load_trusted_key(value) for value in trust)
    report = BundleReport(pinned=sorted(pins))
    try:
        _check_bundle(_Bundle(bundle, report), my_checkpoint, pins)
    except MissingFile as error:
        name = str(error).split(":")[0]
        report.problems.append(f"{bundle / name}: missing; is this a Docket audit bundle?")
    except BundleFileError as error:
        report.problems.append(str(error))
    if not pins:
        signers = ", ".join(sorted(report.signers)) or "none"
        report.warnings.insert(
            0,
            f"no key pinned: the bundle is signed by key {signers}, whose public keys come from the bundle itself, "
            "so whoever wrote the bundle could have signed it; get the log's key from its owner and pass --trust KEY",
        )
    return report


def _check_bundle(bundle: _Bundle, my_checkpoint: Path | None, pins: Mapping[str, Ed25519PublicKey | None]) -> None:
    problems = bundle.problems
    if not bundle.dir.is_dir():
        raise BundleFileError(f"{bundle.dir}: not a directory; pass the bundle's directory")
    manifest_bytes, manifest = read_json_file(bundle.dir / "manifest.json", "manifest.json")
    check_record(manifest, MANIFEST_FIELDS, "manifest.json")
    checkpoint = read_checkpoint_file(bundle.dir / "checkpoint.json", "checkpoint.json")
    signature = read_bounded(bundle.dir / "manifest.sig", "manifest.sig", 1024).decode("ascii", "replace").strip()
    bundle.files_match_manifest(manifest)

    root, size = bytes.fromhex(checkpoint["root"]), checkpoint["size"]
    log_id = checkpoint["log_id"]
    if (manifest["log_id"], manifest["tree_size"], manifest["root"]) != (log_id, size, checkpoint["root"]):
        problems.append("manifest.json: its log_id, tree_size and root are not those of checkpoint.json")

    key_events = bundle.key_events(root, size)
    announced = {payload.get("key_id"): payload.get("public_key") for _, payload in key_events}
    anchors: dict[str, Ed25519PublicKey] = {}
    for key_id, key in pins.items():
        if key is None and is_hex(announced.get(key_id), 64):  # pinned by id: the key the log announced under it
            key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(announced[key_id]))
        if key is not None and key_id_of(key) == key_id:
            anchors[key_id] = key
    chain: ChainVerifier | None = None
    if key_events:
        chain, chain_problems = bundle_key_chain(key_events, anchors if pins else None, log_id)
        problems.extend(chain_problems)
    signatures = _Signatures(chain, _load_bundle_keys(bundle.dir / "public_keys"), bool(pins), bundle.report)
    signatures.check("manifest.json", manifest["key_id"], size, signature, manifest_bytes)
    signatures.check("checkpoint.json", checkpoint["key_id"], size, checkpoint["signature"], checkpoint_message(checkpoint))

    present = bundle.entries(root, size)
    bundle.missing_entries(manifest, present, size)
    if present == [[1, size]]:
        # The whole log: replay the chain end to end (the log's own checkpoints and key events included).
        # checkpoint.json needs no second check here: its signer was checked above, and every entry's
        # inclusion proof already leads to its root.
        entry_lines = (record for _, record in read_json_lines(bundle.dir / "entries.jsonl", "entries.jsonl"))
        report = verify_stream(entry_lines, anchors if pins else None, log_id=log_id)
        if not report.ok:
            problems.append(f"entries.jsonl: whole-log replay fails at seq {report.first_bad_seq}: {report.problem}")

    try:
        for label, earlier, consistency in bundle.earlier_checkpoints():
            signatures.check(label, earlier["key_id"], earlier["size"], earlier["signature"], checkpoint_message(earlier))
            if earlier["log_id"] != log_id or not verify_consistency(
                earlier["size"], size, bytes.fromhex(earlier["root"]), root, consistency
            ):
                problems.append(f"{label}: checkpoint of size {earlier['size']} is not consistent with checkpoint.json")
    except BundleFileError as error:
        problems.append(str(error))

    if my_checkpoint is not None:
        mine = read_checkpoint_file(my_checkpoint)
        matches = mine == checkpoint or any(
            earlier == mine for _, earlier, _ in bundle.earlier_checkpoints()
        )
        if not matches:
            problems.append(
                f"{my_checkpoint}: this checkpoint is not among the bundle's checkpoints; the log it came from "
                "is not the log this bundle was exported from, or it was rewritten"
            )
