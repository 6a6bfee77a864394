"""Docket audit verifier: standard library plus `cryptography`, in one file on purpose.

This file is copied verbatim into every export bundle as ``verify_bundle.py`` so that an auditor can
check a bundle on another machine with nothing of Docket installed::

    python verify_bundle.py BUNDLE_DIR --trust LOG_KEY.pub [--checkpoint MY_CHECKPOINT.json] [--json]

It is built from the modules of Docket's ``audit/verification/`` package, one section each
(``python -m audit.verification.build``; edit those modules, not this file). The log itself
(``audit.log``) verifies through the same modules, so what the auditor runs is the code Docket runs.
It holds:

* canonical JSON (RFC 8785) for float-free JSON, with the standard library;
* RFC 9162 Merkle hashing: leaf ``H(0x00||d)``, node ``H(0x01||l||r)``, a compact frontier, and the
  inclusion / consistency proof checks of RFC 9162 sections 2.1.3.2 and 2.1.4.2;
* the leaf encoding of an audit entry, payload commitments and Ed25519 checkpoint signatures;
* `ChainVerifier`, the one-pass (O(n) time, O(log n) memory) check of a stream of entries, and
  `check_range` / `ChainVerifier.absorb`, which let ranges of it be checked in other processes
  with the same report;
* the bounded, strict reading of the files an auditor was handed, and the keys they trust;
* `verify_bundle`, the check of an exported bundle directory, and the command line.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import stat
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from json.encoder import encode_basestring
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat, load_pem_public_key


# -- audit/verification/formats.py ---------------------------------------------------------------------------
# Format identifiers and constants of the audit log's records: the leaf version, the checkpoint and
# bundle formats, the genesis hash, the empty tree's root, and the events verification depends on.

LEAF_VERSION = 1
CHECKPOINT_FORMAT = "docket-audit-checkpoint/1"
BUNDLE_FORMAT = "docket-audit-bundle/1"
GENESIS_HASH = "00" * 32
EMPTY_ROOT = hashlib.sha256(b"").hexdigest()
# Events whose payloads verification itself depends on; they can never be redacted.
STRUCTURAL_EVENTS = frozenset({"checkpoint", "key_rotation", "redaction"})
JSON_SAFE_INT = 2**53 - 1


# -- audit/verification/jcs.py -------------------------------------------------------------------------------
# Canonical JSON (RFC 8785) of float-free JSON with the standard library alone: the bytes that
# checkpoints and key messages are signed over.

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
        if abs(value) > JSON_SAFE_INT:
            raise ValueError(f"canonical JSON: integer {value} is outside the IEEE-754 safe range")
        return value
    raise TypeError(f"canonical JSON: unsupported value of type {type(value).__name__}")


def canonical_json(value: Any) -> bytes:
    """RFC 8785 bytes of float-free JSON. json.dumps escapes exactly as RFC 8785 3.2.2.2 asks."""
    return json.dumps(_sorted_for_jcs(value), ensure_ascii=False, separators=(",", ":")).encode("utf-8")


# -- audit/verification/tree.py ------------------------------------------------------------------------------
# RFC 9162 Merkle hashing on the verifier's side: leaf ``H(0x00||d)`` and node ``H(0x01||l||r)``
# hashes, a compact frontier, and the inclusion and consistency proof checks of sections 2.1.3.2 and
# 2.1.4.2. The prover's tree (all levels, the proofs' paths) is ``audit.merkle``.

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

    def extend(self, leaves: bytes) -> None:
        """Append many leaves at once, given as their concatenated 32-byte hashes.

        The same tree as `append` leaf by leaf, built a level at a time: one hash call per new node and
        no Python call per leaf (verification grows the tree by a batch of rows at a time).
        """
        if len(leaves) % 32:
            raise ValueError("leaf hashes are 32 bytes each")
        size, hashes, sha256 = self.size, self.hashes, hashlib.sha256
        self.size = size + len(leaves) // 32
        kept: list[bytes] = []  # roots that stay in the frontier, lowest first
        level, height = leaves, 0  # `level`: the new nodes of this height, concatenated
        while level:
            if size >> height & 1:
                # The frontier's subtree of this height is the left sibling of the first new node.
                level = hashes.pop() + level
            paired = len(level) - len(level) % 64
            if paired != len(level):  # an odd last node: a complete subtree with no sibling yet
                kept.append(level[paired:])
            level = b"".join([sha256(b"\x01" + level[i : i + 64]).digest() for i in range(0, paired, 64)])
            height += 1
        # Subtrees of the old frontier above the highest new node stay, in front of the new ones.
        hashes.extend(reversed(kept))

    def extended(self, other: Frontier) -> Frontier:
        """This tree followed by the leaves `other` was built from (a range checked elsewhere).

        Each of `other`'s subtrees must start at a multiple of its own size in the combined tree, which
        holds when `other` starts at a multiple of a power of two at least as large as it.
        """
        merged = Frontier(self.size, self.hashes)
        sizes = [1 << bit for bit in reversed(range(other.size.bit_length())) if other.size >> bit & 1]
        for node, width in zip(other.hashes, sizes, strict=True):
            if merged.size % width:
                raise ValueError(f"a subtree of {width} leaves cannot start at leaf {merged.size}")
            count = merged.size // width
            while count & 1:
                node = node_hash(merged.hashes.pop(), node)
                count >>= 1
            merged.hashes.append(node)
            merged.size += width
        return merged

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


# -- audit/verification/entries.py ---------------------------------------------------------------------------
# An audit entry as it is hashed: the leaf encoding, payload commitments, checkpoint, key-handover and
# endorsement messages, Ed25519 key ids and signature checks.

LEAF_FIELDS = ("seq", "time", "event_type", "actor", "request_id", "subjects", "status", "payload_commitment", "prev_hash")
# A row as the verifier reads it: the leaf fields, then what is stored beside them. `subjects` is a
# list (bundles) or the JSON text the database keeps; `payload` is str or UTF-8 bytes, None when erased.
ROW_FIELDS = (*LEAF_FIELDS, "leaf_hash", "salt", "payload")

_LEAF_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
quote_json_string = encode_basestring  # what _LEAF_ENCODER writes for a str, as one C call
# The leaf's keys in RFC 8785 order; each %s receives one value already rendered as JSON.
_LEAF_TEMPLATE = (
    '{"actor":%s,"event_type":%s,"payload_commitment":%s,"prev_hash":%s,"request_id":%s,'
    '"seq":%s,"status":%s,"subjects":%s,"time":%s,"v":' + str(LEAF_VERSION) + "}"
)
# What a leaf hash covers (RFC 9162: 0x00, then the leaf), as one string to encode: one bytes object per row.
HASHED_LEAF_TEMPLATE = "\x00" + _LEAF_TEMPLATE
# Rows whose leaf hashes the checks gather before growing the Merkle frontier with them in one go.
FRONTIER_BATCH = 256


def json_value(value: Any) -> str:
    return quote_json_string(value) if type(value) is str else _LEAF_ENCODER.encode(value)


@lru_cache(maxsize=4096)
def stored_subjects_as_json(text: str) -> str | None:
    """The leaf JSON of a subjects list the database stores as JSON text; None when it is not JSON."""
    try:
        return _LEAF_ENCODER.encode(json.loads(text))
    except ValueError:
        return None


def subjects_as_json(subjects: Any) -> str | None:
    return stored_subjects_as_json(subjects) if type(subjects) is str else json_value(subjects)


def leaf_text(
    seq: Any, time: Any, event_type: Any, actor: Any, request_id: Any, subjects_json: str, status: Any,
    commitment: Any, prev_hash: Any,
) -> str:
    """`canonical_json` of the leaf, written out for speed (`RangeChecker.check_rows` writes the same text inline).

    The keys are fixed ASCII names in RFC 8785 order, and the values (strings, ints, null, a list of
    strings) are rendered by json exactly as RFC 8785 renders them. Any other value type can only make
    the hash differ, which verification reports.
    """
    try:
        return _LEAF_TEMPLATE % (
            quote_json_string(actor), quote_json_string(event_type), quote_json_string(commitment), quote_json_string(prev_hash),
            "null" if request_id is None else quote_json_string(request_id),
            seq if type(seq) is int else json_value(seq),
            "null" if status is None else quote_json_string(status), subjects_json, quote_json_string(time),
        )
    except TypeError:  # a value that is not a string where one belongs (an edited row): render it as it is
        values = (actor, event_type, commitment, prev_hash, request_id, seq, status)
        return _LEAF_TEMPLATE % (*map(json_value, values), subjects_json, json_value(time))


def leaf_bytes(entry: Mapping[str, Any]) -> bytes:
    """The bytes an entry's leaf hash commits to: every chained field, never the payload itself."""
    subjects_json = subjects_as_json(entry["subjects"])
    if subjects_json is None:
        raise ValueError(f"seq {entry['seq']}: subjects is not JSON")
    return leaf_text(*(entry[name] for name in LEAF_FIELDS[:5]), subjects_json, entry["status"],
                      entry["payload_commitment"], entry["prev_hash"]).encode("utf-8")


def payload_commitment(salt_hex: str, payload_json: str | bytes) -> str:
    """SHA-256 over a random salt and the canonical payload: erasing both leaves nothing to guess against."""
    digest = hashlib.sha256(bytes.fromhex(salt_hex))
    # update, not +: no copy of a large payload
    digest.update(payload_json if type(payload_json) is bytes else payload_json.encode("utf-8"))
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


# key_rotation payloads written since a log can have several writers' keys at once carry "v": 2. A v1
# payload (one key at a time) reads the same under the v2 rules: its handover comes from the key it retires.
KEY_ANNOUNCEMENT_VERSION = 2


def endorsement_message(log_id: str, key_id: str, public_key_hex: str, endorsed_by: str) -> bytes:
    """What a key already valid in the log signs to enrol another writer's key (`enrol-key`)."""
    return canonical_json(
        {"purpose": "enrol", "log_id": log_id, "key_id": key_id, "public_key": public_key_hex, "endorsed_by": endorsed_by}
    )


# -- audit/verification/chain.py -----------------------------------------------------------------------------
# ``ChainVerifier``: the one-pass (O(n) time, O(log n) memory) check of a stream of entries, and
# ``check_range`` / ``ChainVerifier.absorb``, which let ranges of it be checked in other processes with
# the same report.

@dataclass
class VerifyReport:
    ok: bool
    size: int
    root: str
    first_bad_seq: int | None = None
    problem: str | None = None
    redacted: list[int] = field(default_factory=list)
    checkpoints_verified: int = 0
    signed_heads_verified: int = 0  # signed tree heads (the log's own, and the witness's lines) checked
    signed_size: int | None = None  # the size the newest signed head in the log covers (None: none)
    notes: list[str] = field(default_factory=list)  # what an OK does not cover, in plain words

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class ChainProblem(Exception):
    def __init__(self, seq: int | None, problem: str) -> None:
        super().__init__(problem)
        self.seq = seq
        self.problem = problem


@dataclass
class KeyInfo:
    """A key the log announced: since which seq it is valid, how it got there, and whether it is trusted.

    ``how``: "genesis" (the log's first key), "handover" (a rotation signed by the key it retires,
    ``by``) or "endorsed" (another writer's key, enrolled by the valid key ``by``). ``trusted``: one of
    the verifier's trust anchors, or reached from one through handovers and endorsements (always False
    when the verifier was given no anchors).
    """

    public_key: Ed25519PublicKey
    from_seq: int
    retired_at_seq: int | None = None
    key_id: str = ""
    how: str = "genesis"
    by: str | None = None
    trusted: bool = False


_KeyWindow = KeyInfo  # its old name


@dataclass
class TreeHead:
    """A signed tree head to check against the chain: one of the log's own, or a line of a witness file."""

    label: str  # how a problem names it: "signed head of size 12", "witness FILE line 3"
    head: Mapping[str, Any]
    witness: str | None = None  # the witness file it was read from


@dataclass
class RangeNote:
    """What the row checks hand on to the chain-wide checks, in seq order.

    ``missing``: a payload is erased (a later redaction event must explain it); ``event``: a checkpoint,
    key_rotation or redaction event with its payload; ``mark``: the tree just reached the size of the
    checkpoint kept outside. `frontier` is the range's tree at that point, kept only when the range is
    checked apart from the chain (parallel verification).
    """

    kind: str
    seq: int
    event_type: str = ""
    payload: dict[str, Any] | None = None
    commitment: str = ""  # of an erased payload
    frontier: Frontier | None = None


def _misplaced(seq: Any, size: int) -> ChainProblem:
    expected = size + 1
    if seq == expected - 1:
        return ChainProblem(seq, f"seq {seq} appears twice (row duplicated)")
    if isinstance(seq, int) and seq > expected:
        return ChainProblem(expected, f"seq {expected} is missing; the next row is seq {seq} (row deleted)")
    return ChainProblem(seq, f"seq {seq} comes after seq {expected - 1} (rows out of order)")


def _explain_leaf_mismatch(row: Sequence[Any]) -> str:
    seq, stored_leaf = row[0], row[9]
    subjects_json = subjects_as_json(row[5])
    if subjects_json is not None and isinstance(seq, int):
        # Renumbering and reordering keep a row's content but change its seq: find the seq it was
        # committed under, nearby. Only runs on the failure path.
        for committed in [s for d in range(1, 4) for s in (seq + d, seq - d) if s >= 1]:
            text = leaf_text(committed, *row[1:5], subjects_json, *row[6:9])
            if leaf_hash(text.encode("utf-8")).hex() == stored_leaf:
                if committed > seq:
                    return (
                        f"seq {seq} holds the entry committed as seq {committed} "
                        "(rows deleted and renumbered, or rows swapped)"
                    )
                return f"seq {seq} holds a copy of the entry committed as seq {committed} (row duplicated or moved)"
    return f"seq {seq}: its fields do not match its leaf_hash (entry metadata edited)"


def payload_matches(salt: Any, payload: Any, commitment: Any) -> bool:
    try:
        return payload_commitment(salt, payload) == commitment
    except (TypeError, ValueError):  # a salt that is not hex, a payload that is not valid Unicode
        return False


def _structural_payload(seq: int, event_type: str, payload: str | bytes) -> dict[str, Any]:
    try:
        parsed = json.loads(payload)
    except ValueError:
        parsed = None
    if not isinstance(parsed, dict):
        raise ChainProblem(seq, f"seq {seq}: the payload of a {event_type} event is not a JSON object")
    return parsed


class RangeChecker:
    """The checks each row needs and nothing else: seq order, leaf hash, chaining to the previous row,
    payload commitment. It grows the Merkle frontier of the rows it checked and hands whatever needs
    the whole chain (erasures, the log's own events, the outside checkpoint's size) to `on_note`.

    `ChainVerifier` runs one over the whole log; parallel verification runs one per range of seqs.
    """

    def __init__(self, start: int, head: str, mark: int | None, on_note: Callable[[RangeNote], None]) -> None:
        self.start = start  # rows before this range
        self.head = head  # leaf hash of the row before it (hex)
        self.mark = mark  # size of the checkpoint kept outside, if any
        self.on_note = on_note
        self.frontier = Frontier()  # over this range's rows only

    def check_rows(self, rows: Iterable[Sequence[Any]]) -> None:
        """Check rows (tuples in `ROW_FIELDS` order) in seq order; raises ChainProblem at the first bad one."""
        # The hot loop of every verification: names bound locally, no dict and no Python function call
        # per row. Leaf hashes are compared in hex, the form they are stored in, and gathered (`pending`)
        # to grow the Merkle frontier a level at a time (`Frontier.extend`), before any note (whose
        # handler may read the tree) and every `FRONTIER_BATCH` rows (memory stays O(log n)).
        frontier, head, mark, on_note = self.frontier, self.head, self.mark, self.on_note
        sha256, fromhex, json_string, stored_subjects = hashlib.sha256, bytes.fromhex, quote_json_string, stored_subjects_as_json
        version, structural, batch_mask = LEAF_VERSION, STRUCTURAL_EVENTS, FRONTIER_BATCH - 1
        size = self.start + frontier.size
        pending: list[str] = []
        gather = pending.append
        try:
            for row in rows:
                seq, time, event_type, actor, request_id, subjects, status, commitment, prev_hash, stored_leaf, salt, payload = row
                if seq != size + 1:
                    raise _misplaced(seq, size)
                subjects_json = stored_subjects(subjects) if type(subjects) is str else json_value(subjects)
                try:  # `HASHED_LEAF_TEMPLATE % ...` as in `leaf_text`, written as an f-string, which is faster per row
                    text = (
                        f'\x00{{"actor":{json_string(actor)},"event_type":{json_string(event_type)},'
                        f'"payload_commitment":{json_string(commitment)},"prev_hash":{json_string(prev_hash)},'
                        f'"request_id":{"null" if request_id is None else json_string(request_id)},'
                        f'"seq":{seq if type(seq) is int else json_value(seq)},'
                        f'"status":{"null" if status is None else json_string(status)},'
                        f'"subjects":{subjects_json},"time":{json_string(time)},"v":{version}}}'
                    )
                except TypeError:  # a value that is not a string where one belongs (an edited row)
                    text = "\x00" + leaf_text(seq, time, event_type, actor, request_id, subjects_json, status, commitment, prev_hash)
                try:
                    computed = sha256(text.encode("utf-8")).hexdigest()
                except UnicodeEncodeError:
                    raise ChainProblem(seq, f"seq {seq}: a field is not valid Unicode (entry edited)") from None
                if computed != stored_leaf or subjects_json is None:
                    raise ChainProblem(seq, _explain_leaf_mismatch(row))
                if prev_hash != head:
                    # This row's prev_hash is covered by its own (verified) leaf hash, so it is the
                    # original value: the row before it is the one that changed.
                    raise ChainProblem(
                        seq - 1,
                        f"seq {seq - 1} no longer has the leaf hash that seq {seq} was chained to "
                        "(entry edited and rehashed, or replaced)",
                    )
                if payload is None:
                    if event_type in structural:
                        raise ChainProblem(seq, f"seq {seq}: the payload of a {event_type} event is missing")
                    if pending:
                        frontier.extend(fromhex("".join(pending)))
                        pending.clear()
                    on_note(RangeNote("missing", seq, commitment=commitment))
                else:
                    # `payload_matches`, inline: this is the bulk of the bytes verification hashes.
                    try:
                        digest = sha256(fromhex(salt))
                        digest.update(payload if type(payload) is bytes else payload.encode("utf-8"))
                        matches = digest.hexdigest() == commitment
                    except (TypeError, ValueError):  # a salt that is not hex, a payload that is not valid Unicode
                        matches = False
                    if not matches:
                        raise ChainProblem(seq, f"seq {seq}: payload does not match its commitment (payload edited)")
                    # Only the log's own events need reading; other payloads are opaque bytes here.
                    if event_type in structural:
                        if pending:
                            frontier.extend(fromhex("".join(pending)))
                            pending.clear()
                        on_note(RangeNote("event", seq, event_type, _structural_payload(seq, event_type, payload)))
                gather(computed)
                size += 1
                head = computed
                if seq == mark or not size & batch_mask:
                    frontier.extend(fromhex("".join(pending)))
                    pending.clear()
                    if seq == mark:
                        on_note(RangeNote("mark", seq))
        finally:
            self.head = head
            if pending:  # the rows that passed every check, up to a problem if there was one
                frontier.extend(fromhex("".join(pending)))


@dataclass
class RangeResult:
    """A range of seqs checked on its own (`check_range`), to be joined to the chain with `ChainVerifier.absorb`."""

    start: int  # the range holds the rows after seq `start`
    first_seq: int | None  # seq of its first row (None: it has no rows)
    frontier: Frontier  # over its rows, up to the problem if there is one
    head: str
    notes: list[RangeNote]
    problem: tuple[int | None, str] | None = None  # (seq, why) of the first bad row


def check_range(batches: Iterable[Sequence[Sequence[Any]]], start: int, head: str, mark: int | None) -> RangeResult:
    """Check the rows after seq `start`, assuming the chain up to there is intact and ends in `head`.

    `ChainVerifier.absorb` checks that assumption when it joins the result, so the report is the one a
    single pass would give. Memory: the range's frontier, plus a frontier per note.
    """
    notes: list[RangeNote] = []

    def keep(note: RangeNote) -> None:
        note.frontier = Frontier(checker.frontier.size, checker.frontier.hashes)
        notes.append(note)

    checker = RangeChecker(start, head, mark, keep)
    first_seq: int | None = None
    problem: tuple[int | None, str] | None = None
    try:
        for batch in batches:
            if first_seq is None and batch:
                first_seq = batch[0][0]
            checker.check_rows(batch)
    except ChainProblem as found:
        problem = (found.seq, found.problem)
    return RangeResult(start, first_seq, checker.frontier, checker.head, notes, problem)


class ChainVerifier:
    """Feed rows in seq order (`add`, `add_rows`) or ranges checked elsewhere (`absorb`); `finish` reports.

    Memory is the Merkle frontier, the key windows and the seqs whose payload is missing but not yet
    explained by a redaction event, so O(log n) for an honest log.
    """

    def __init__(
        self,
        trusted_keys: Mapping[str, Ed25519PublicKey] | None,
        log_id: str | None = None,
        stored_payload: Callable[[int], tuple[Any, Any] | None] | None = None,
    ) -> None:
        self.trusted_keys = trusted_keys
        self.log_id = log_id
        # For ranges read in a later snapshot than ours (SQLite workers), where a payload may have been
        # erased since: (salt, payload) of a seq as our snapshot holds it, None when erased here too.
        self.stored_payload = stored_payload
        self.rows = RangeChecker(0, GENESIS_HASH, None, lambda note: self._apply(note, self.frontier))
        # Every key the log announced (`KeyInfo`), in announcement order; several can be valid at once
        # (one per writer). `trusted_keys` are the anchors: the log's first key must be one of them.
        self.keys: dict[str, KeyInfo] = {}
        self.genesis_key_id: str | None = None
        self.active_key_id: str | None = None  # the key announced last
        self.signers: dict[str, int] = {}  # key id -> checkpoints and signed heads it signed, as checked
        self.announces_signed_heads = False  # a v2 key announcement: its writer signs every transaction's head
        self.signed_heads_verified = 0
        self.signed_size: int | None = None
        self.notes: list[str] = []
        self.awaiting_redaction: set[int] = set()
        self.redacted: list[int] = []
        self.last_good_checkpoint_size = 0
        self.checkpoints_verified = 0
        self.outside: Mapping[str, Any] | None = None
        self.outside_label = ""

    @property
    def frontier(self) -> Frontier:
        return self.rows.frontier

    @property
    def windows(self) -> dict[str, KeyInfo]:  # its old name
        return self.keys

    def key_valid_at(self, key_id: str, size: int, *, head: bool = False) -> bool:
        """May this key sign a checkpoint (or, with `head`, a signed head) of this size?

        The log's first key signs heads from the first entry on: it is announced lazily, at the first
        checkpoint, after the heads of the entries before it were signed.
        """
        info = self.keys.get(key_id)
        if info is None:
            return False
        starts = 0 if head and info.how == "genesis" else info.from_seq
        return starts <= size and (info.retired_at_seq is None or size < info.retired_at_seq)

    def trust_summary(self) -> list[str]:
        """One line per key that signed something checked: pinned, reached from a pinned key, or neither."""
        lines = []
        for key_id, count in sorted(self.signers.items()):
            info = self.keys.get(key_id)
            what = f"key {key_id} signed {count} checkpoint(s) or head(s)"
            if self.trusted_keys is None:
                lines.append(f"{what}: no key was pinned, so it is trusted only because the log announces it")
            elif key_id in self.trusted_keys:
                lines.append(f"{what}: a trusted (pinned) key")
            elif info is not None and info.trusted:
                lines.append(f"{what}: reached from a trusted key ({info.how} by {info.by})")
            else:
                lines.append(f"{what}: NOT reached from any trusted key")
        return lines

    # -- checkpoints kept outside the log --------------------------------------------------------
    def expect_checkpoint(self, checkpoint: Mapping[str, Any], label: str) -> None:
        """Compare the tree against a checkpoint the auditor kept; signature checked at `finish`."""
        for name in ("size", "root", "time", "key_id", "signature"):
            if name not in checkpoint:
                raise ChainProblem(None, f"checkpoint {label}: field '{name}' is missing")
        self.outside, self.outside_label = checkpoint, label
        self.rows.mark = checkpoint["size"]
        if self.trusted_keys is not None:
            # Check it now, so that a forged checkpoint is not mistaken for a rewritten log.
            self._check_signature(checkpoint, f"checkpoint {label}", None)

    # -- the stream --------------------------------------------------------------------------------
    def add(self, entry: Mapping[str, Any]) -> None:
        """One entry as a mapping with the `ROW_FIELDS` (a bundle line)."""
        self.rows.check_rows([tuple(entry.get(name) for name in ROW_FIELDS)])

    def add_rows(self, rows: Iterable[Sequence[Any]]) -> None:
        """Rows as tuples in `ROW_FIELDS` order (a database cursor's)."""
        self.rows.check_rows(rows)

    def absorb(self, part: RangeResult) -> None:
        """Continue the chain with a range checked elsewhere, reporting exactly what `add_rows` would have."""
        if part.first_seq is None:
            return  # no rows: the next row's seq check tells what is missing
        base = self.frontier
        if base.size != part.start:
            # The range was checked assuming the chain reached seq `start`; it did not, and its first
            # row is the next one a single pass would have seen.
            raise _misplaced(part.first_seq, base.size)
        for note in part.notes:
            assert note.frontier is not None
            self._apply_at(note, base.extended(note.frontier))
        self.rows.frontier = base.extended(part.frontier)
        self.rows.head = part.head
        if part.problem is not None:
            raise ChainProblem(*part.problem)

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
        return self._report()

    def report(self, problem: ChainProblem) -> VerifyReport:
        return self._report(problem)

    def report_ok(self) -> VerifyReport:
        return self._report()

    def _report(self, problem: ChainProblem | None = None) -> VerifyReport:
        return VerifyReport(
            ok=problem is None,
            size=self.frontier.size,
            root=self.frontier.root().hex(),
            first_bad_seq=None if problem is None else problem.seq,
            problem=None if problem is None else problem.problem,
            redacted=sorted(self.redacted),
            checkpoints_verified=self.checkpoints_verified,
            signed_heads_verified=self.signed_heads_verified,
            signed_size=self.signed_size,
            notes=list(self.notes),
        )

    # -- helpers -----------------------------------------------------------------------------------
    def _apply_at(self, note: RangeNote, frontier: Frontier) -> None:
        """A note from a range checked elsewhere; on failure the report shows the tree at that note."""
        try:
            if note.kind == "missing" and self.stored_payload is not None:
                stored = self.stored_payload(note.seq)
                if stored is not None:  # erased after our snapshot: check it as a single pass would have
                    if not payload_matches(*stored, note.commitment):
                        raise ChainProblem(note.seq, f"seq {note.seq}: payload does not match its commitment (payload edited)")
                    return
            self._apply(note, frontier)
        except ChainProblem:
            self.rows.frontier = frontier
            raise

    def _apply(self, note: RangeNote, frontier: Frontier) -> None:
        """`frontier` is the whole tree at the note: before an event's own leaf, after a mark's."""
        if note.kind == "missing":
            self.awaiting_redaction.add(note.seq)
        elif note.kind == "event":
            assert note.payload is not None
            self._check_event(note.seq, note.event_type, note.payload, frontier)
        else:
            self._compare_outside(frontier)

    def _check_event(self, seq: int, kind: str, payload: dict[str, Any], frontier: Frontier) -> None:
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
            if payload.get("root") != frontier.root().hex():
                lo = self.last_good_checkpoint_size + 1
                raise ChainProblem(
                    lo, f"{label} signs a different root for size {seq - 1}: entries {lo}..{seq - 1} were rewritten"
                )
            self.last_good_checkpoint_size = seq - 1
            self.checkpoints_verified += 1

    def _register_key(self, seq: int, payload: Mapping[str, Any]) -> None:
        """A key announcement: the log's first key, a writer's rotation (handover) or another writer's key (endorsed).

        Only the first announcement of a log may stand alone; any later key counts only when a key
        valid at that seq signed it in (handover or endorsement), so a key announced by someone who
        holds no key counts for nothing.
        """
        key_id, public_hex = payload.get("key_id"), payload.get("public_key", "")
        try:
            announced = Ed25519PublicKey.from_public_bytes(bytes.fromhex(public_hex))
        except (TypeError, ValueError):
            raise ChainProblem(seq, f"seq {seq}: key_rotation carries an invalid public key") from None
        if key_id_of(announced) != key_id:
            raise ChainProblem(seq, f"seq {seq}: key_rotation key id {key_id} does not match its public key")
        if key_id in self.keys:
            raise ChainProblem(seq, f"seq {seq}: key_rotation announces key {key_id} a second time")
        log_id = payload.get("log_id", "")
        previous, endorser = payload.get("previous_key_id"), payload.get("endorsed_by")
        if previous is not None:
            old = self.keys.get(previous)
            if old is None or old.retired_at_seq is not None:
                raise ChainProblem(
                    seq, f"seq {seq}: key_rotation hands over from {previous}, which is not a valid key of this log "
                    "(never announced, or already retired)"
                )
            message = handover_message(log_id, key_id, public_hex, previous)
            if not signature_ok(old.public_key, payload.get("handover_signature", ""), message):
                raise ChainProblem(seq, f"seq {seq}: key_rotation is not signed by the outgoing key {previous}")
            old.retired_at_seq = seq
            info = KeyInfo(announced, seq, key_id=key_id, how="handover", by=previous, trusted=old.trusted)
        elif endorser is not None:
            by = self.keys.get(endorser)
            if by is None or not self.key_valid_at(endorser, seq):
                raise ChainProblem(seq, f"seq {seq}: key {key_id} is endorsed by {endorser}, which is not a valid key at seq {seq}")
            message = endorsement_message(log_id, key_id, public_hex, endorser)
            if not signature_ok(by.public_key, payload.get("endorsement_signature", ""), message):
                raise ChainProblem(seq, f"seq {seq}: the endorsement of key {key_id} does not verify with key {endorser} (forged)")
            info = KeyInfo(announced, seq, key_id=key_id, how="endorsed", by=endorser, trusted=by.trusted)
        elif self.genesis_key_id is None:
            if self.trusted_keys is not None and key_id not in self.trusted_keys:
                raise ChainProblem(
                    seq, f"seq {seq}: key_rotation announces the log's first key {key_id}, which is not a trusted public key"
                )
            self.genesis_key_id = key_id
            info = KeyInfo(announced, seq, key_id=key_id, how="genesis", trusted=self.trusted_keys is not None)
        else:
            raise ChainProblem(
                seq, f"seq {seq}: key_rotation announces key {key_id} with neither a handover nor an endorsement by a "
                "valid key (a key announced without one counts for nothing)"
            )
        if self.trusted_keys is not None and key_id in self.trusted_keys:
            info.trusted = True
        if payload.get("v") == KEY_ANNOUNCEMENT_VERSION:
            self.announces_signed_heads = True
        self.keys[key_id] = info
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
        self.signers[key_id] = self.signers.get(key_id, 0) + 1

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

    def _compare_outside(self, frontier: Frontier) -> None:
        assert self.outside is not None
        self._check_signature(self.outside, f"checkpoint {self.outside_label}", None)
        if frontier.root().hex() != self.outside["root"]:
            lo = self.last_good_checkpoint_size + 1
            raise ChainProblem(
                lo,
                f"checkpoint {self.outside_label} signs a different root for size {self.outside['size']}: "
                f"entries {lo}..{self.outside['size']} were rewritten (chain recomputed)",
            )

    # -- signed tree heads (after the chain pass: the key windows are known) ------------------------
    def check_tree_heads(
        self, heads: Iterable[TreeHead], leaves: Iterable[bytes], *, heads_expected: bool, newest_witnessed: TreeHead | None = None
    ) -> None:
        """Check signed heads against the chain just verified; raises ChainProblem at the first bad one.

        `heads`: the log's own and the witness's, in order of size (the log's first at equal sizes);
        `leaves`: the stored leaf hashes of seq 1.. in order, as chunks of concatenated 32-byte hashes
        (verified by the pass that came before, in the same snapshot). Each head must name this log,
        be signed by a key valid at its size, and sign the root of the first `size` entries; the
        newest of the log's own heads must cover the whole log. A log without any must not be one whose
        writers sign them: `heads_expected` (the caller knows), or a key announced since signed heads.
        """
        size = self.frontier.size
        if newest_witnessed is not None and newest_witnessed.head.get("size", 0) > size:
            heads = [newest_witnessed]  # a rollback: name the newest size the witness saw
        tree, buffered, chunks = Frontier(), b"", iter(leaves)
        good = 0  # the largest size a head checked so far vouches for
        first_own: int | None = None
        for item in heads:
            head = item.head
            head_size = self._tree_head_fields(item)
            if head_size > size:
                self._check_head_signature(item, head_size)
                if item.witness is not None:
                    raise ChainProblem(
                        size + 1, f"the log has {size} entries but the witness {item.witness} holds a signed head for "
                        f"{head_size} ({item.label}): tail truncated or an old backup restored"
                    )
                raise ChainProblem(
                    size + 1, f"{item.label} covers {head_size} entries but the log ends at seq {size}: "
                    f"seq {size + 1}..{head_size} are missing (tail truncated)"
                )
            while tree.size < head_size:  # grow the tree to exactly this head's size
                if not buffered:
                    buffered = next(chunks, b"")
                    if not buffered:
                        raise ChainProblem(tree.size + 1, f"seq {tree.size + 1}: its leaf hash could not be read again")
                take = min(len(buffered) // 32, head_size - tree.size) * 32
                tree.extend(buffered[:take])
                buffered = buffered[take:]
            self._check_head_signature(item, head_size)
            if head.get("root") != tree.root().hex():
                lo = good + 1
                where = f"seq {lo} was" if lo == head_size else f"entries {lo}..{head_size} were"
                source = f" (the witness {item.witness} disagrees with the log)" if item.witness is not None else ""
                raise ChainProblem(lo, f"{item.label} signs a different root for size {head_size}: {where} rewritten{source}")
            good = max(good, head_size)
            self.signed_heads_verified += 1
            if item.witness is None:
                first_own = head_size if first_own is None else first_own
                self.signed_size = head_size
        if self.signed_size is None:
            if size and (heads_expected or self.announces_signed_heads):
                raise ChainProblem(
                    1, f"the log holds {size} entries but no signed head: entries 1..{size} are not covered by a "
                    "signed head (signed heads deleted)"
                )
            if size:
                self.notes.append(
                    f"no signed head: the {size} entries were written without one (before signed heads, or "
                    "without a key) and are covered only by checkpoints"
                )
            return
        if self.signed_size < size:
            raise ChainProblem(
                self.signed_size + 1, f"entries after seq {self.signed_size} are not covered by a signed head "
                f"(seq {self.signed_size + 1}..{size}: appended without a key, or their signed heads deleted)"
            )
        if first_own is not None and any(info.from_seq < first_own for info in self.keys.values()):
            self.notes.append(
                f"the first signed head covers size {first_own}: entries 1..{first_own} were written before it "
                "(an older log, or one first transaction) and changes made to them before it was signed are "
                "caught only by checkpoints"
            )
        if not self.announces_signed_heads and self.keys:
            self.notes.append(
                "this log's keys were announced before signed heads: run `docket audit rotate-key` once, so that "
                "the log itself records that its heads are signed (until then, deleting every signed head passes)"
            )

    def _tree_head_fields(self, item: TreeHead) -> int:
        head = item.head
        for name in ("format", "log_id", "size", "root", "time", "key_id", "signature"):
            if name not in head:
                raise ChainProblem(None, f"{item.label}: field '{name}' is missing")
        head_size = head["size"]
        if type(head_size) is not int or head_size < 0:
            raise ChainProblem(None, f"{item.label}: size {head_size!r} is not a whole number")
        if not all(type(head[name]) is str for name in ("format", "log_id", "root", "time", "key_id", "signature")):
            raise ChainProblem(None, f"{item.label}: a field is not a string")
        if head["format"] != CHECKPOINT_FORMAT:
            raise ChainProblem(None, f"{item.label}: format {head['format']!r} is not {CHECKPOINT_FORMAT}")
        if self.log_id is not None and head["log_id"] != self.log_id:
            raise ChainProblem(None, f"{item.label} belongs to log {head['log_id']}, not {self.log_id}")
        return head_size

    def _check_head_signature(self, item: TreeHead, head_size: int) -> None:
        head, key_id = item.head, item.head["key_id"]
        info = self.keys.get(key_id)
        seq = None if item.witness is not None or head_size < 1 else head_size
        if info is not None:
            if not self.key_valid_at(key_id, head_size, head=True):
                last = "" if info.retired_at_seq is None else info.retired_at_seq - 1
                start = 0 if info.how == "genesis" else info.from_seq
                raise ChainProblem(
                    seq, f"{item.label} is signed by key {key_id}, which is valid only for sizes {start}..{last}"
                )
            key = info.public_key
        elif not self.keys and self.trusted_keys is not None and key_id in self.trusted_keys:
            key = self.trusted_keys[key_id]  # the first writer's key, not announced yet (at the first checkpoint)
        elif not self.keys and self.trusted_keys is None:
            note = f"signed heads by key {key_id} were not checked: the log does not announce it yet and no keys directory was given"
            if note not in self.notes:
                self.notes.append(note)
            return
        else:
            raise ChainProblem(seq, f"{item.label} is signed by key {key_id}, which is not a valid key of this log (wrong key)")
        if not signature_ok(key, head["signature"], checkpoint_message(head)):
            raise ChainProblem(seq, f"{item.label}: signature does not verify with key {key_id} (forged or altered)")
        self.signers[key_id] = self.signers.get(key_id, 0) + 1


def verify_rows(
    batches: Iterable[Iterable[Sequence[Any]]],
    trusted_keys: Mapping[str, Ed25519PublicKey] | None,
    *,
    checked_ranges: Iterable[RangeResult] = (),
    stored_payload: Callable[[int], tuple[Any, Any] | None] | None = None,
    log_id: str | None = None,
    outside_checkpoint: Mapping[str, Any] | None = None,
    checkpoint_label: str = "",
    recorded_size: int | None = None,
    after_chain: Callable[[ChainVerifier], None] | None = None,
) -> VerifyReport:
    """Verify a log in one pass: ranges checked elsewhere (in seq order), then batches of the rows after them.

    The report names the first bad seq and why, the same with or without `checked_ranges`
    (`stored_payload`: see `ChainVerifier`). `after_chain` runs once the chain checked out, with the
    verifier (e.g. `check_tree_heads`); a ChainProblem it raises is the report.
    """
    verifier = ChainVerifier(trusted_keys, log_id, stored_payload)
    try:
        if outside_checkpoint is not None:
            verifier.expect_checkpoint(outside_checkpoint, checkpoint_label)
        for part in checked_ranges:
            verifier.absorb(part)
        for batch in batches:
            verifier.add_rows(batch)
        report = verifier.finish(recorded_size)
        if after_chain is None:
            return report
        after_chain(verifier)  # the checks that need the whole chain's keys first: signed heads, the witness
        return verifier.report_ok()
    except ChainProblem as problem:
        return verifier.report(problem)


def verify_stream(
    entries: Iterable[Mapping[str, Any]],
    trusted_keys: Mapping[str, Ed25519PublicKey] | None,
    **options: Any,
) -> VerifyReport:
    """Verify a stream of entries (mappings with the `ROW_FIELDS`) in one pass, as `verify_rows` does."""
    return verify_rows(([tuple(e.get(name) for name in ROW_FIELDS)] for e in entries), trusted_keys, **options)


# -- audit/verification/hostile_files.py ---------------------------------------------------------------------
# Reading the files an auditor was handed, as hostile input: regular files only, bounded sizes,
# strict JSON (no floats, bounded integers and nesting), every record's fields checked.

# What the verifier reads of a file, at most. A file or line beyond these is refused before it is read
# whole, so a hostile bundle or checkpoint cannot make it use unbounded memory.
MAX_JSON_FILE_BYTES = 1 << 20  # manifest.json, checkpoint.json, a kept checkpoint, a public key file
MAX_LINE_BYTES = 64 << 20  # one line of a .jsonl file: an entry with its payload
MAX_JSON_DEPTH = 32  # arrays and objects inside each other; the bundle's own records nest 3 deep
_MAX_INT_DIGITS = 16  # the largest safe integer, 2**53 - 1, has 16 digits
_HEX_DIGITS = "0123456789abcdef"


class BundleFileError(ValueError):
    """A file the verifier refuses. The message is one line naming the file (and line) and why."""


class MissingFile(BundleFileError):
    pass


_FILE_KINDS = (
    (stat.S_ISDIR, "a directory"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
    (stat.S_ISFIFO, "a named pipe"), (stat.S_ISSOCK, "a socket"),
)


def open_regular_file(path: Path, label: str) -> BinaryIO:
    """Open a regular file to read, refusing anything else (a directory, a pipe, a device such as
    /dev/zero behind a symlink) before reading a byte of it."""
    # O_NONBLOCK: opening a named pipe would otherwise wait for a writer. Neither flag exists everywhere.
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise MissingFile(f"{label}: missing") from None
    except OSError as error:
        raise BundleFileError(f"{label}: cannot be opened ({error.strerror})") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        kind = next((name for test, name in _FILE_KINDS if test(mode)), "not a file")
        via = " behind a symlink" if os.path.islink(path) else ""
        raise BundleFileError(f"{label}: is {kind}{via}, not a regular file")
    return os.fdopen(fd, "rb")


def read_bounded(path: Path, label: str, limit: int = MAX_JSON_FILE_BYTES) -> bytes:
    with open_regular_file(path, label) as handle:
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise BundleFileError(f"{label}: larger than {limit} bytes, which no file of this kind is")
    return data


def _refuse_float(text: str) -> Any:
    raise ValueError(f"the number {text[:24]} is not an integer (no floats here)")


def _bounded_int(text: str) -> int:
    digits = len(text) - text.startswith("-")
    if digits > _MAX_INT_DIGITS:
        raise ValueError(f"an integer of {digits} digits is out of range")
    return int(text)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


# Integers are checked from their digits before any conversion (10**5000 costs nothing to refuse).
_STRICT_JSON = json.JSONDecoder(parse_float=_refuse_float, parse_int=_bounded_int, parse_constant=_refuse_constant)


def _nesting_exceeds(value: Any, limit: int) -> bool:
    """Are arrays and objects nested more than `limit` deep? Level by level, no recursion."""
    level, current = 0, [value]
    while current:
        containers = [v for v in current if isinstance(v, (dict, list))]
        if not containers:
            return False
        level += 1
        if level > limit:
            return True
        current = [child for v in containers for child in (v.values() if isinstance(v, dict) else v)]
    return False


def parse_json(data: bytes, label: str) -> Any:
    """Strict JSON from UTF-8 bytes: no floats, NaN or integers beyond the safe range, bounded nesting."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise BundleFileError(f"{label}: not UTF-8 text (byte {error.start + 1} is 0x{data[error.start]:02x})") from None
    try:
        value = _STRICT_JSON.decode(text)
    except RecursionError:
        value = None  # reported below, as any nesting beyond the limit
        deep = True
    except ValueError as error:
        raise BundleFileError(f"{label}: not valid JSON ({error})") from None
    else:
        deep = _nesting_exceeds(value, MAX_JSON_DEPTH)
    if deep:
        raise BundleFileError(f"{label}: JSON nested more than {MAX_JSON_DEPTH} levels deep")
    return value


def read_json_file(path: Path, label: str) -> tuple[bytes, Any]:
    """The bytes of a small JSON file and their strict parse."""
    data = read_bounded(path, label)
    return data, parse_json(data, label)


def read_json_lines(path: Path, label: str, limit: int = MAX_LINE_BYTES) -> Iterator[tuple[int, Any]]:
    """(line number, value) of each line of a JSONL file, reading at most `limit` bytes of any line."""
    with open_regular_file(path, label) as handle:
        number = 0
        while line := handle.readline(limit + 1):
            number += 1
            if len(line) > limit and not line.endswith(b"\n"):
                raise BundleFileError(f"{label} line {number}: longer than {limit} bytes, which no entry is")
            yield number, parse_json(line, f"{label} line {number}")


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    return {int: "an integer", str: "a string", list: "an array", dict: "an object"}.get(type(value), type(value).__name__)


def is_hex(value: Any, length: int | None = None) -> bool:
    return type(value) is str and bool(value) and (length is None or len(value) == length) and not value.strip(_HEX_DIGITS)


# Each field of a record: a check of its JSON value, and what it must be (for the message).
_Field = tuple[Callable[[Any], bool], str]
_HEX64: _Field = (lambda v: is_hex(v, 64), "64 lowercase hex digits")
_TEXT: _Field = (lambda v: type(v) is str, "a string")
_TEXT_OR_NULL: _Field = (lambda v: v is None or type(v) is str, "a string or null")
_COUNT: _Field = (lambda v: type(v) is int and v >= 0, "an integer of at least 0")
_SEQ: _Field = (lambda v: type(v) is int and v >= 1, "a seq (an integer of at least 1)")
_HASH_LIST: _Field = (lambda v: type(v) is list and all(is_hex(h, 64) for h in v), "an array of 64-hex-digit hashes")
_OBJECT: _Field = (lambda v: type(v) is dict, "an object")

ENTRY_FIELDS: dict[str, _Field] = {
    "seq": _SEQ, "time": _TEXT, "event_type": _TEXT, "actor": _TEXT, "request_id": _TEXT_OR_NULL,
    "subjects": (lambda v: type(v) is list and all(type(s) is str for s in v), "an array of strings"),
    "status": _TEXT_OR_NULL, "payload_commitment": _HEX64, "prev_hash": _HEX64, "leaf_hash": _HEX64,
    "salt": (lambda v: v is None or is_hex(v, 64), "64 lowercase hex digits or null"), "payload": _TEXT_OR_NULL,
}
CHECKPOINT_FIELDS: dict[str, _Field] = {
    "format": (lambda v: v == CHECKPOINT_FORMAT, repr(CHECKPOINT_FORMAT)), "log_id": _TEXT, "size": _COUNT,
    "root": _HEX64, "time": _TEXT, "key_id": _TEXT, "signature": (lambda v: is_hex(v, 128), "128 lowercase hex digits"),
}
MANIFEST_FIELDS: dict[str, _Field] = {
    "format": (lambda v: v == BUNDLE_FORMAT, repr(BUNDLE_FORMAT)), "log_id": _TEXT, "tree_size": _COUNT,
    "root": _HEX64, "filters": (lambda v: type(v) is dict and all(type(x) is str for x in v.values()), "an object of strings"),
    "entries": _COUNT, "key_id": _TEXT,
    "files": (lambda v: type(v) is dict and all(is_hex(d, 64) for d in v.values()), "an object of SHA-256 hex digests"),
}
PROOF_FIELDS: dict[str, _Field] = {"seq": _SEQ, "tree_size": _COUNT, "path": _HASH_LIST}
EARLIER_CHECKPOINT_FIELDS: dict[str, _Field] = {"checkpoint": _OBJECT, "consistency": _HASH_LIST}
KEY_EVENT_FIELDS: dict[str, _Field] = {"entry": _OBJECT, "path": _HASH_LIST}


def check_record(record: Any, fields: Mapping[str, _Field], label: str) -> dict[str, Any]:
    """`record` if it is an object holding every field with the right JSON type; else BundleFileError."""
    if type(record) is not dict:
        raise BundleFileError(f"{label}: expected a JSON object, found {_json_kind(record)}")
    for name, (valid, what) in fields.items():
        if name not in record:
            raise BundleFileError(f"{label}: field '{name}' is missing")
        if not valid(record[name]):
            raise BundleFileError(f"{label}: field '{name}' must be {what}, not {_json_kind(record[name])}")
    return record


def read_checkpoint_file(path: Path, label: str | None = None) -> dict[str, Any]:
    """A checkpoint file (one kept outside the log, or a bundle's checkpoint.json), every field checked."""
    label = label or str(path)
    return check_record(read_json_file(path, label)[1], CHECKPOINT_FIELDS, label)


def sha256_of(handle: BinaryIO) -> str:
    digest = hashlib.sha256()
    for block in iter(lambda: handle.read(1 << 20), b""):
        digest.update(block)
    return digest.hexdigest()


def sha256_file(path: Path, label: str | None = None) -> str:
    with open_regular_file(path, label or str(path)) as handle:
        return sha256_of(handle)


# -- audit/verification/trust.py -----------------------------------------------------------------------------
# The keys an auditor trusts (``--trust``): a PEM or hex key file or a key id, and the bundle's key
# chain they pin.

def load_trusted_key(value: str) -> tuple[str, Ed25519PublicKey | None]:
    """A `--trust` value: a public key file (PEM, or the raw key as 64 hex digits) or a key id (16 hex
    digits). Returns the key id and the key (None when pinned by id: the bundle must announce it)."""
    path = Path(value)
    if is_hex(value.lower(), 16) and not path.exists():
        return value.lower(), None
    data = read_bounded(path, value, 64 << 10)
    if data.lstrip().startswith(b"-----BEGIN"):
        try:
            key = load_pem_public_key(data)
        except ValueError:
            raise BundleFileError(f"{value}: not a readable PEM public key") from None
        if not isinstance(key, Ed25519PublicKey):
            raise BundleFileError(f"{value}: not an Ed25519 public key")
        return key_id_of(key), key
    text = data.decode("ascii", "replace").strip().lower()
    if not is_hex(text, 64):
        raise BundleFileError(
            f"{value}: neither a PEM public key, an Ed25519 public key in hex (64 digits), nor a key id (16 hex digits)"
        )
    key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(text))
    return key_id_of(key), key


def bundle_key_chain(
    key_events: Sequence[tuple[int, dict[str, Any]]], anchors: Mapping[str, Ed25519PublicKey] | None, log_id: str,
) -> tuple[ChainVerifier, list[str]]:
    """The log's key events (announcements, handovers, endorsements) run through `ChainVerifier`'s own
    key rules, without the rows between them: a subset bundle holds only these and the selected entries."""
    chain = ChainVerifier(anchors, log_id)
    problems = []
    register = getattr(chain, "register_key_event", None) or chain._register_key
    for seq, payload in key_events:
        try:
            register(seq, payload)
        except ChainProblem as problem:
            problems.append(f"key_events.jsonl: {problem.problem}")
            break  # later keys depend on this one
    return chain, problems


# -- audit/verification/bundle.py ----------------------------------------------------------------------------
# ``verify_bundle``: the check of an exported bundle directory against its signed manifest,
# checkpoints, proofs and the keys the auditor trusts.

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


# -- audit/verification/script.py ----------------------------------------------------------------------------
# The auditor's command line: ``python verify_bundle.py BUNDLE --trust KEY [--checkpoint MINE.json]
# [--json]``.

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Verify a Docket audit export bundle offline.")
    parser.add_argument("bundle", type=Path, nargs="?", default=Path(__file__).resolve().parent)
    parser.add_argument("--checkpoint", type=Path, help="a checkpoint file you kept, to compare with the bundle")
    parser.add_argument(
        "--trust", action="append", default=[], metavar="KEY",
        help="the log's public key (PEM or hex file) or key id, as its owner gave it to you; repeatable",
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    try:
        report = verify_bundle(args.bundle, args.checkpoint, args.trust)
    except BundleFileError as error:  # a --trust value that is no key
        print(f"error: --trust {error}", file=sys.stderr)
        return 2
    except (OSError, ValueError, KeyError, TypeError, RecursionError) as error:
        # Fail closed on anything the checks above did not foresee, naming it, never with a traceback.
        report = BundleReport(problems=[f"{args.bundle}: cannot be checked as a bundle ({type(error).__name__}: {error})"])
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
        for warning in report.warnings:  # stdout holds the JSON alone
            print(f"WARNING {warning}", file=sys.stderr)
        return 0 if report.ok else 1
    for problem in report.problems:
        print(f"FAIL {problem}")
    if report.ok:
        pinned = f", signed by pinned key {', '.join(report.pinned)}" if report.pinned else ""
        print(f"OK {args.bundle}: every file and entry matches the signed manifest and checkpoint{pinned}")
    for warning in report.warnings:  # last, where it is read
        print(f"WARNING {warning}")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
