"""Docket audit verifier: standard library plus `cryptography`, in one file on purpose.

This module is copied verbatim into every export bundle as ``verify_bundle.py`` so that an auditor can
check a bundle on another machine with nothing of Docket installed::

    python verify_bundle.py BUNDLE_DIR [--checkpoint MY_CHECKPOINT.json] [--json]

The log itself (``audit.log``) verifies through the same code, so what the auditor runs is exactly
what Docket runs. It holds:

* canonical JSON (RFC 8785) for float-free JSON, with the standard library;
* RFC 9162 Merkle hashing: leaf ``H(0x00||d)``, node ``H(0x01||l||r)``, a compact frontier, and the
  inclusion / consistency proof checks of RFC 9162 sections 2.1.3.2 and 2.1.4.2;
* the leaf encoding of an audit entry, payload commitments and Ed25519 checkpoint signatures;
* `ChainVerifier`, the one-pass (O(n) time, O(log n) memory) check of a stream of entries;
* `verify_bundle`, the check of an exported bundle directory.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat, load_pem_public_key

LEAF_VERSION = 1
CHECKPOINT_FORMAT = "docket-audit-checkpoint/1"
BUNDLE_FORMAT = "docket-audit-bundle/1"
GENESIS_HASH = "00" * 32
EMPTY_ROOT = hashlib.sha256(b"").hexdigest()
# Events whose payloads verification itself depends on; they can never be redacted.
STRUCTURAL_EVENTS = frozenset({"checkpoint", "key_rotation", "redaction"})
_JSON_SAFE_INT = 2**53 - 1


# -- canonical JSON (RFC 8785, float-free) ---------------------------------------------------------


def _sorted_for_jcs(value: Any) -> Any:
    """Rebuild dicts with keys in UTF-16 code-unit order (RFC 8785 3.2.3), checking every scalar."""
    if isinstance(value, dict):
        try:
            keys = sorted(value, key=lambda k: k.encode("utf-16-be"))
        except AttributeError:
            raise TypeError("canonical JSON: object keys must be strings") from None
        return {k: _sorted_for_jcs(value[k]) for k in keys}
    if isinstance(value, (list, tuple)):
        return [_sorted_for_jcs(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        if abs(value) > _JSON_SAFE_INT:
            raise ValueError(f"canonical JSON: integer {value} is outside the IEEE-754 safe range")
        return value
    raise TypeError(f"canonical JSON: unsupported value of type {type(value).__name__}")


def canonical_json(value: Any) -> bytes:
    """RFC 8785 bytes of float-free JSON. json.dumps escapes exactly as RFC 8785 3.2.2.2 asks."""
    return json.dumps(_sorted_for_jcs(value), ensure_ascii=False, separators=(",", ":")).encode("utf-8")


# -- RFC 9162 Merkle hashing -----------------------------------------------------------------------


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


class Frontier:
    """Compact Merkle range: the roots of the perfect subtrees covering leaves [0, size).

    Holds at most log2(size)+1 hashes, which is what makes one-pass verification O(log n) in memory.
    """

    def __init__(self, size: int = 0, hashes: Iterable[bytes] = ()) -> None:
        self.size = size
        self.hashes = list(hashes)
        if len(self.hashes) != bin(size).count("1"):
            raise ValueError(f"a frontier of size {size} needs {bin(size).count('1')} hashes")

    def append(self, leaf: bytes) -> None:
        node = leaf
        size = self.size
        # Each trailing 1-bit of the old size is a perfect subtree that the new leaf completes.
        while size & 1:
            node = node_hash(self.hashes.pop(), node)
            size >>= 1
        self.hashes.append(node)
        self.size += 1

    def root(self) -> bytes:
        if not self.hashes:
            return bytes.fromhex(EMPTY_ROOT)
        node = self.hashes[-1]
        for left in reversed(self.hashes[:-1]):
            node = node_hash(left, node)
        return node


def verify_inclusion(index: int, size: int, leaf: bytes, path: list[bytes], root: bytes) -> bool:
    """RFC 9162 2.1.3.2."""
    if index < 0 or index >= size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency(first: int, second: int, first_root: bytes, second_root: bytes, path: list[bytes]) -> bool:
    """RFC 9162 2.1.4.2, plus the trivial cases (empty old tree, equal sizes)."""
    if first < 0 or first > second:
        return False
    if first == second:
        return not path and first_root == second_root
    if first == 0:
        return not path
    if not path:
        return False
    if first & (first - 1) == 0:
        path = [first_root, *path]
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == first_root and sr == second_root


# -- entries, commitments, checkpoints -------------------------------------------------------------

LEAF_FIELDS = ("seq", "time", "event_type", "actor", "request_id", "subjects", "status", "payload_commitment", "prev_hash")


_LEAF_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def leaf_bytes(entry: Mapping[str, Any]) -> bytes:
    """The bytes an entry's leaf hash commits to: every chained field, never the payload itself.

    This is `canonical_json` of the leaf, written out for speed (it runs once per entry in every
    verification): the keys are fixed ASCII names listed here in RFC 8785 order, and the values
    (strings, ints, null, a list of strings) are rendered by json exactly as RFC 8785 renders them.
    Any other value type can only make the hash differ, which verification reports.
    """
    return _LEAF_ENCODER.encode(
        {
            "actor": entry["actor"],
            "event_type": entry["event_type"],
            "payload_commitment": entry["payload_commitment"],
            "prev_hash": entry["prev_hash"],
            "request_id": entry["request_id"],
            "seq": entry["seq"],
            "status": entry["status"],
            "subjects": entry["subjects"],
            "time": entry["time"],
            "v": LEAF_VERSION,
        }
    ).encode("utf-8")


def payload_commitment(salt_hex: str, payload_json: str) -> str:
    """SHA-256 over a random salt and the canonical payload: erasing both leaves nothing to guess against."""
    digest = hashlib.sha256(bytes.fromhex(salt_hex))
    digest.update(payload_json.encode("utf-8"))  # update, not +: no copy of a large payload
    return digest.hexdigest()


def checkpoint_message(checkpoint: Mapping[str, Any]) -> bytes:
    """The signed bytes of a checkpoint: every field except the signature."""
    return canonical_json({k: v for k, v in checkpoint.items() if k != "signature"})


def key_id_of(public_key: Ed25519PublicKey) -> str:
    return hashlib.sha256(public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)).hexdigest()[:16]


def load_public_keys(directory: Path) -> dict[str, Ed25519PublicKey]:
    """Every ``*.pub`` (PEM) in a directory, by key id (the first 16 hex of SHA-256 of the raw key)."""
    keys: dict[str, Ed25519PublicKey] = {}
    for path in sorted(directory.glob("*.pub")):
        key = load_pem_public_key(path.read_bytes())
        if not isinstance(key, Ed25519PublicKey):
            raise ValueError(f"{path}: not an Ed25519 public key")
        keys[key_id_of(key)] = key
    return keys


def signature_ok(public_key: Ed25519PublicKey, signature_hex: str, message: bytes) -> bool:
    try:
        public_key.verify(bytes.fromhex(signature_hex), message)
    except (InvalidSignature, ValueError):
        return False
    return True


def handover_message(log_id: str, key_id: str, public_key_hex: str, previous_key_id: str | None) -> bytes:
    """What the outgoing key signs when it hands over to a new one."""
    return canonical_json(
        {"log_id": log_id, "key_id": key_id, "public_key": public_key_hex, "previous_key_id": previous_key_id}
    )


# -- one-pass chain verification -------------------------------------------------------------------


@dataclass
class VerifyReport:
    ok: bool
    size: int
    root: str
    first_bad_seq: int | None = None
    problem: str | None = None
    redacted: list[int] = field(default_factory=list)
    checkpoints_verified: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class ChainProblem(Exception):
    def __init__(self, seq: int | None, problem: str) -> None:
        super().__init__(problem)
        self.seq = seq
        self.problem = problem


@dataclass
class _KeyWindow:
    public_key: Ed25519PublicKey
    from_seq: int
    retired_at_seq: int | None = None


class ChainVerifier:
    """Feed entries in seq order with `add`; `finish` returns the report.

    Each entry is a mapping with the leaf fields, ``leaf_hash`` and ``payload`` / ``salt`` (None when
    erased). Memory is the Merkle frontier, the key windows and the seqs whose payload is missing but
    not yet explained by a redaction event, so O(log n) for an honest log.
    """

    def __init__(self, trusted_keys: Mapping[str, Ed25519PublicKey] | None, log_id: str | None = None) -> None:
        self.trusted_keys = trusted_keys
        self.log_id = log_id
        self.frontier = Frontier()
        self.head = GENESIS_HASH
        self.windows: dict[str, _KeyWindow] = {}
        self.active_key_id: str | None = None
        self.awaiting_redaction: set[int] = set()
        self.redacted: list[int] = []
        self.last_good_checkpoint_size = 0
        self.checkpoints_verified = 0
        self.outside: Mapping[str, Any] | None = None
        self.outside_label = ""

    # -- checkpoints kept outside the log --------------------------------------------------------
    def expect_checkpoint(self, checkpoint: Mapping[str, Any], label: str) -> None:
        """Compare the tree against a checkpoint the auditor kept; signature checked at `finish`."""
        for name in ("size", "root", "time", "key_id", "signature"):
            if name not in checkpoint:
                raise ChainProblem(None, f"checkpoint {label}: field '{name}' is missing")
        self.outside, self.outside_label = checkpoint, label
        if self.trusted_keys is not None:
            # Check it now, so that a forged checkpoint is not mistaken for a rewritten log.
            self._check_signature(checkpoint, f"checkpoint {label}", None)

    # -- the stream --------------------------------------------------------------------------------
    def add(self, entry: Mapping[str, Any]) -> None:
        seq = entry["seq"]
        if seq != self.frontier.size + 1:
            raise self._misplaced(seq)
        try:
            leaf = hashlib.sha256(b"\x00" + leaf_bytes(entry)).digest()
        except UnicodeEncodeError:
            raise ChainProblem(seq, f"seq {seq}: a field is not valid Unicode (entry edited)") from None
        computed = leaf.hex()
        if computed != entry["leaf_hash"]:
            raise ChainProblem(seq, self._explain_leaf_mismatch(entry))
        if entry["prev_hash"] != self.head:
            # This row's prev_hash is covered by its own (verified) leaf hash, so it is the original
            # value: the row before it is the one that changed.
            raise ChainProblem(
                seq - 1,
                f"seq {seq - 1} no longer has the leaf hash that seq {seq} was chained to "
                "(entry edited and rehashed, or replaced)",
            )
        payload = self._check_payload(entry)
        if payload is not None:
            self._check_event(entry, payload)
        self.frontier.append(leaf)
        self.head = computed
        if self.outside is not None and self.frontier.size == self.outside["size"]:
            self._compare_outside()

    def _misplaced(self, seq: int) -> ChainProblem:
        expected = self.frontier.size + 1
        if seq == expected - 1:
            return ChainProblem(seq, f"seq {seq} appears twice (row duplicated)")
        if seq > expected:
            return ChainProblem(expected, f"seq {expected} is missing; the next row is seq {seq} (row deleted)")
        return ChainProblem(seq, f"seq {seq} comes after seq {expected - 1} (rows out of order)")

    def finish(self, recorded_size: int | None = None) -> VerifyReport:
        """End of stream: truncation, unexplained erasures, and the outside checkpoint's signature."""
        size = self.frontier.size
        if recorded_size is not None and recorded_size > size:
            raise ChainProblem(
                size + 1, f"the chain head records {recorded_size} entries but the log ends at seq {size} (tail truncated)"
            )
        if self.outside is not None:
            label = f"checkpoint {self.outside_label}"
            if self.outside["size"] > size:
                if self.trusted_keys is None and self.outside["key_id"] in self.windows:
                    self._check_signature(self.outside, label, None)
                raise ChainProblem(
                    size + 1,
                    f"checkpoint {self.outside_label} covers {self.outside['size']} entries but the log ends at seq "
                    f"{size}: seq {size + 1}..{self.outside['size']} are missing (tail truncated or an old backup restored)",
                )
            self._check_key_window(self.outside, label, None)
        if self.awaiting_redaction:
            seq = min(self.awaiting_redaction)
            raise ChainProblem(seq, f"seq {seq}: payload is missing and no redaction event covers it (payload deleted)")
        return VerifyReport(
            ok=True,
            size=size,
            root=self.frontier.root().hex(),
            redacted=sorted(self.redacted),
            checkpoints_verified=self.checkpoints_verified,
        )

    def report(self, problem: ChainProblem) -> VerifyReport:
        return VerifyReport(
            ok=False,
            size=self.frontier.size,
            root=self.frontier.root().hex(),
            first_bad_seq=problem.seq,
            problem=problem.problem,
            redacted=sorted(self.redacted),
            checkpoints_verified=self.checkpoints_verified,
        )

    # -- helpers -----------------------------------------------------------------------------------
    def _explain_leaf_mismatch(self, entry: Mapping[str, Any]) -> str:
        seq = entry["seq"]
        # Renumbering and reordering keep a row's content but change its seq: find the seq it was
        # committed under, nearby. Only runs on the failure path.
        for committed in [s for d in range(1, 4) for s in (seq + d, seq - d) if s >= 1]:
            if leaf_hash(leaf_bytes({**entry, "seq": committed})).hex() == entry["leaf_hash"]:
                if committed > seq:
                    return (
                        f"seq {seq} holds the entry committed as seq {committed} "
                        "(rows deleted and renumbered, or rows swapped)"
                    )
                return f"seq {seq} holds a copy of the entry committed as seq {committed} (row duplicated or moved)"
        return f"seq {seq}: its fields do not match its leaf_hash (entry metadata edited)"

    def _check_payload(self, entry: Mapping[str, Any]) -> dict[str, Any] | None:
        seq, payload = entry["seq"], entry.get("payload")
        if payload is None:
            if entry["event_type"] in STRUCTURAL_EVENTS:
                raise ChainProblem(seq, f"seq {seq}: the payload of a {entry['event_type']} event is missing")
            self.awaiting_redaction.add(seq)
            return None
        salt = entry.get("salt") or ""
        if payload_commitment(salt, payload) != entry["payload_commitment"]:
            raise ChainProblem(seq, f"seq {seq}: payload does not match its commitment (payload edited)")
        # Only the log's own events need reading; other payloads are opaque bytes to the verifier.
        return json.loads(payload) if entry["event_type"] in STRUCTURAL_EVENTS else None

    def _check_event(self, entry: Mapping[str, Any], payload: dict[str, Any]) -> None:
        seq, kind = entry["seq"], entry["event_type"]
        if kind == "redaction":
            target = payload.get("seq")
            if target in self.awaiting_redaction:
                self.awaiting_redaction.discard(target)
                self.redacted.append(target)
        elif kind == "key_rotation":
            self._register_key(seq, payload)
        elif kind == "checkpoint":
            label = f"checkpoint at seq {seq}"
            if payload.get("size") != seq - 1:
                raise ChainProblem(seq, f"{label} claims size {payload.get('size')}, expected {seq - 1}")
            self._check_signature(payload, label, seq)
            self._check_key_window(payload, label, seq)
            if payload.get("root") != self.frontier.root().hex():
                lo = self.last_good_checkpoint_size + 1
                raise ChainProblem(
                    lo, f"{label} signs a different root for size {seq - 1}: entries {lo}..{seq - 1} were rewritten"
                )
            self.last_good_checkpoint_size = seq - 1
            self.checkpoints_verified += 1

    def _register_key(self, seq: int, payload: Mapping[str, Any]) -> None:
        key_id, public_hex = payload.get("key_id"), payload.get("public_key", "")
        try:
            announced = Ed25519PublicKey.from_public_bytes(bytes.fromhex(public_hex))
        except ValueError:
            raise ChainProblem(seq, f"seq {seq}: key_rotation carries an invalid public key") from None
        if key_id_of(announced) != key_id:
            raise ChainProblem(seq, f"seq {seq}: key_rotation key id {key_id} does not match its public key")
        if self.trusted_keys is not None and key_id not in self.trusted_keys:
            raise ChainProblem(seq, f"seq {seq}: key_rotation announces key {key_id}, which is not a trusted public key")
        previous = payload.get("previous_key_id")
        if previous != self.active_key_id:
            raise ChainProblem(seq, f"seq {seq}: key_rotation hands over from {previous}, but {self.active_key_id} is active")
        if previous is not None:
            message = handover_message(payload.get("log_id", ""), key_id, public_hex, previous)
            if not signature_ok(self.windows[previous].public_key, payload.get("handover_signature", ""), message):
                raise ChainProblem(seq, f"seq {seq}: key_rotation is not signed by the outgoing key {previous}")
            self.windows[previous].retired_at_seq = seq
        self.windows[key_id] = _KeyWindow(announced, from_seq=seq)
        self.active_key_id = key_id

    def _check_signature(self, checkpoint: Mapping[str, Any], label: str, seq: int | None) -> None:
        """Is the checkpoint from this log and signed by the key it names?"""
        key_id = checkpoint.get("key_id")
        if self.log_id is not None and checkpoint.get("log_id") != self.log_id:
            raise ChainProblem(seq, f"{label} belongs to log {checkpoint.get('log_id')}, not {self.log_id}")
        window = self.windows.get(key_id)
        key = window.public_key if window else (self.trusted_keys or {}).get(key_id)
        if key is None:
            raise ChainProblem(seq, f"{label} is signed by key {key_id}, which is not a trusted public key (wrong key)")
        if not signature_ok(key, checkpoint.get("signature", ""), checkpoint_message(checkpoint)):
            raise ChainProblem(seq, f"{label}: signature does not verify with key {key_id} (forged or altered)")

    def _check_key_window(self, checkpoint: Mapping[str, Any], label: str, seq: int | None) -> None:
        """Was the signing key the log's active key at the checkpoint's size?"""
        key_id, size = checkpoint.get("key_id"), checkpoint.get("size")
        window = self.windows.get(key_id)
        if window is None:
            raise ChainProblem(seq, f"{label} is signed by key {key_id}, which the log never announced")
        if size < window.from_seq or (window.retired_at_seq is not None and size >= window.retired_at_seq):
            last = "" if window.retired_at_seq is None else window.retired_at_seq - 1
            raise ChainProblem(
                seq,
                f"{label} (size {size}) is signed by key {key_id}, which is valid only for sizes "
                f"{window.from_seq}..{last} (rotated-out key)",
            )

    def _compare_outside(self) -> None:
        assert self.outside is not None
        self._check_signature(self.outside, f"checkpoint {self.outside_label}", None)
        if self.frontier.root().hex() != self.outside["root"]:
            lo = self.last_good_checkpoint_size + 1
            raise ChainProblem(
                lo,
                f"checkpoint {self.outside_label} signs a different root for size {self.outside['size']}: "
                f"entries {lo}..{self.outside['size']} were rewritten (chain recomputed)",
            )


def verify_stream(
    entries: Iterable[Mapping[str, Any]],
    trusted_keys: Mapping[str, Ed25519PublicKey] | None,
    *,
    log_id: str | None = None,
    outside_checkpoint: Mapping[str, Any] | None = None,
    checkpoint_label: str = "",
    recorded_size: int | None = None,
) -> VerifyReport:
    """Verify a stream of entries in one pass; the report names the first bad seq and why."""
    verifier = ChainVerifier(trusted_keys, log_id)
    try:
        if outside_checkpoint is not None:
            verifier.expect_checkpoint(outside_checkpoint, checkpoint_label)
        for entry in entries:
            verifier.add(entry)
        return verifier.finish(recorded_size)
    except ChainProblem as problem:
        return verifier.report(problem)


# -- bundles ---------------------------------------------------------------------------------------


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _read_jsonl(path: Path) -> Iterable[tuple[int, dict[str, Any]]]:
    with path.open("r", encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            yield number, json.loads(line)


def verify_bundle(bundle: Path, my_checkpoint: Path | None = None) -> list[str]:
    """Check an export bundle; returns the problems found, each naming a file or an entry (empty = OK)."""
    problems: list[str] = []
    manifest_path = bundle / "manifest.json"
    if not manifest_path.is_file():
        return [f"{manifest_path}: missing; is this a Docket audit bundle?"]
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    keys = load_public_keys(bundle / "public_keys")
    signer = keys.get(manifest.get("key_id", ""))
    signature = (bundle / "manifest.sig").read_text().strip() if (bundle / "manifest.sig").is_file() else ""
    if signer is None or not signature_ok(signer, signature, manifest_path.read_bytes()):
        problems.append("manifest.json: signature does not verify with the bundle's public keys (manifest altered)")
    listed = manifest.get("files", {})
    present = {p.relative_to(bundle).as_posix() for p in bundle.rglob("*") if p.is_file()}
    for name, digest in sorted(listed.items()):
        if name not in present:
            problems.append(f"{name}: listed in the manifest but missing")
        elif sha256_file(bundle / name) != digest:
            problems.append(f"{name}: SHA-256 differs from the manifest (file changed or swapped)")
    for name in sorted(present - set(listed) - {"manifest.json", "manifest.sig"}):
        problems.append(f"{name}: not listed in the manifest (file added)")

    checkpoint = json.loads((bundle / "checkpoint.json").read_text(encoding="utf-8"))
    key = keys.get(checkpoint.get("key_id", ""))
    if key is None or not signature_ok(key, checkpoint.get("signature", ""), checkpoint_message(checkpoint)):
        problems.append("checkpoint.json: signature does not verify (checkpoint forged or signed by an unknown key)")
    root, size = bytes.fromhex(checkpoint["root"]), checkpoint["size"]
    proofs = {proof["seq"]: proof for _, proof in _read_jsonl(bundle / "proofs.jsonl")}
    previous: dict[str, Any] | None = None
    for line, entry in _read_jsonl(bundle / "entries.jsonl"):
        seq = entry.get("seq")
        computed = leaf_hash(leaf_bytes(entry))
        if computed.hex() != entry.get("leaf_hash"):
            problems.append(f"entries.jsonl line {line}: entry seq {seq} does not match its leaf hash (entry changed)")
        elif entry.get("payload") is not None and payload_commitment(entry["salt"], entry["payload"]) != entry["payload_commitment"]:
            problems.append(f"entries.jsonl line {line}: entry seq {seq} payload does not match its commitment")
        elif previous is not None and previous["seq"] == seq - 1 and entry["prev_hash"] != previous["leaf_hash"]:
            problems.append(f"entries.jsonl line {line}: entry seq {seq} is not chained to seq {seq - 1}")
        proof = proofs.get(seq)
        if proof is None or not verify_inclusion(seq - 1, size, computed, [bytes.fromhex(h) for h in proof["path"]], root):
            problems.append(f"entries.jsonl line {line}: entry seq {seq} is not proven included in checkpoint.json")
        previous = entry

    if manifest.get("complete"):
        report = verify_stream(
            (entry for _, entry in _read_jsonl(bundle / "entries.jsonl")), keys,
            log_id=manifest.get("log_id"), outside_checkpoint=checkpoint, checkpoint_label="checkpoint.json",
        )
        if not report.ok:
            problems.append(f"entries.jsonl: whole-log replay fails at seq {report.first_bad_seq}: {report.problem}")

    for line, earlier in _read_jsonl(bundle / "checkpoints.jsonl"):
        cp = earlier["checkpoint"]
        cp_key = keys.get(cp.get("key_id", ""))
        if cp_key is None or not signature_ok(cp_key, cp.get("signature", ""), checkpoint_message(cp)):
            problems.append(f"checkpoints.jsonl line {line}: checkpoint of size {cp.get('size')} has a bad signature")
        elif not verify_consistency(
            cp["size"], size, bytes.fromhex(cp["root"]), root, [bytes.fromhex(h) for h in earlier["consistency"]]
        ):
            problems.append(f"checkpoints.jsonl line {line}: checkpoint of size {cp['size']} is not consistent with checkpoint.json")

    if my_checkpoint is not None:
        mine = json.loads(my_checkpoint.read_text(encoding="utf-8"))
        match = next((e for _, e in _read_jsonl(bundle / "checkpoints.jsonl") if e["checkpoint"] == mine), None)
        if mine != checkpoint and match is None:
            problems.append(
                f"{my_checkpoint}: this checkpoint is not among the bundle's checkpoints; the log it came from "
                "is not the log this bundle was exported from, or it was rewritten"
            )
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Verify a Docket audit export bundle offline.")
    parser.add_argument("bundle", type=Path, nargs="?", default=Path(__file__).resolve().parent)
    parser.add_argument("--checkpoint", type=Path, help="a checkpoint file you kept, to compare with the bundle")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    try:
        problems = verify_bundle(args.bundle, args.checkpoint)
    except (OSError, ValueError, KeyError) as error:
        problems = [f"{args.bundle}: cannot be read as a bundle ({type(error).__name__}: {error})"]
    if args.json:
        print(json.dumps({"ok": not problems, "problems": problems}, indent=2))
    elif problems:
        for problem in problems:
            print(f"FAIL {problem}")
    else:
        print(f"OK {args.bundle}: every file and entry matches the signed manifest and checkpoint")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
