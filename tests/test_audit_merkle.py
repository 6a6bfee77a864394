"""RFC 9162 Merkle proofs and RFC 8785 canonical JSON, checked against independent implementations."""

from __future__ import annotations

import hashlib
import json

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from audit.canonical import canonical_payload
from audit.merkle import MerkleTree
from audit.verification.formats import STRUCTURAL_EVENTS
from audit.verification.jcs import canonical_json
from audit.verification.tree import Frontier, verify_consistency, verify_inclusion
from audit.verification.entries import leaf_bytes
from audit.verification.chain import ChainProblem, RangeChecker

# -- naive RFC 9162 section 2.1, written straight from the text ------------------------------------


def naive_mth(leaves: list[bytes]) -> bytes:
    n = len(leaves)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return hashlib.sha256(b"\x00" + leaves[0]).digest()
    k = 1 << ((n - 1).bit_length() - 1)
    return hashlib.sha256(b"\x01" + naive_mth(leaves[:k]) + naive_mth(leaves[k:])).digest()


def naive_path(m: int, leaves: list[bytes]) -> list[bytes]:
    n = len(leaves)
    if n == 1:
        return []
    k = 1 << ((n - 1).bit_length() - 1)
    if m < k:
        return naive_path(m, leaves[:k]) + [naive_mth(leaves[k:])]
    return naive_path(m - k, leaves[k:]) + [naive_mth(leaves[:k])]


def naive_subproof(m: int, leaves: list[bytes], complete: bool) -> list[bytes]:
    n = len(leaves)
    if m == n:
        return [] if complete else [naive_mth(leaves)]
    k = 1 << ((n - 1).bit_length() - 1)
    if m <= k:
        return naive_subproof(m, leaves[:k], complete) + [naive_mth(leaves[k:])]
    return naive_subproof(m - k, leaves[k:], False) + [naive_mth(leaves[:k])]


def leaf_hashes(data: list[bytes]) -> list[bytes]:
    return [hashlib.sha256(b"\x00" + d).digest() for d in data]


leaf_data = st.lists(st.binary(max_size=8), min_size=1, max_size=70)


@settings(max_examples=150, deadline=None)
@given(data=leaf_data, pick=st.integers(min_value=0))
def test_inclusion_matches_rfc_text_and_verifies(data: list[bytes], pick: int) -> None:
    index = pick % len(data)
    tree = MerkleTree(leaf_hashes(data))
    root = naive_mth(data)
    assert tree.root() == root
    frontier = Frontier()
    for h in leaf_hashes(data):
        frontier.append(h)
    assert frontier.root() == root
    path = tree.inclusion_path(index)
    assert path == naive_path(index, data)
    leaf = leaf_hashes(data)[index]
    assert verify_inclusion(index, len(data), leaf, path, root)


@settings(max_examples=200, deadline=None)
@given(data=st.lists(st.binary(max_size=4), max_size=300), cuts=st.lists(st.integers(min_value=0, max_value=300), max_size=8))
def test_frontier_extended_in_batches_is_the_rfc_tree(data: list[bytes], cuts: list[int]) -> None:
    """Verification grows the tree a batch of leaves at a time; any split into batches gives RFC 9162's tree."""
    hashes = leaf_hashes(data)
    bounds = sorted({0, len(data), *(c for c in cuts if c <= len(data))})
    frontier, one_by_one = Frontier(), Frontier()
    for lo, hi in zip(bounds, bounds[1:]):
        frontier.extend(b"".join(hashes[lo:hi]))
        for h in hashes[lo:hi]:
            one_by_one.append(h)
        assert (frontier.size, frontier.hashes) == (one_by_one.size, one_by_one.hashes) == (hi, frontier.hashes)
        assert frontier.root() == naive_mth(data[:hi])
    assert frontier.root() == naive_mth(data)
    frontier.extend(b"")
    assert frontier.size == len(data)
    with pytest.raises(ValueError):
        frontier.extend(b"\x00" * 31)


@settings(max_examples=150, deadline=None)
@given(data=leaf_data, pick=st.integers(min_value=0))
def test_consistency_matches_rfc_text_and_verifies(data: list[bytes], pick: int) -> None:
    first = pick % (len(data) + 1)
    tree = MerkleTree(leaf_hashes(data))
    path = tree.consistency_path(first)
    expected = [] if first in (0, len(data)) else naive_subproof(first, data, True)
    assert path == expected
    assert verify_consistency(first, len(data), naive_mth(data[:first]), naive_mth(data), path)


@settings(max_examples=100, deadline=None)
@given(data=st.lists(st.binary(max_size=4), min_size=2, max_size=40, unique=True), pick=st.integers(min_value=0), flip=st.integers(0, 255))
def test_malformed_inclusion_proofs_are_rejected(data: list[bytes], pick: int, flip: int) -> None:
    index = pick % len(data)
    hashes = leaf_hashes(data)
    tree = MerkleTree(hashes)
    root, path, leaf = tree.root(), tree.inclusion_path(index), hashes[index]
    size = len(data)
    assert not verify_inclusion(index, size, leaf, path[:-1], root)  # truncated
    assert not verify_inclusion(index, size, leaf, [*path, path[0]], root)  # extended
    assert not verify_inclusion(size, size, leaf, path, root)  # index out of range
    assert not verify_inclusion(index, size, hashlib.sha256(leaf).digest(), path, root)  # other leaf
    corrupted = bytearray(path[pick % len(path)])
    corrupted[flip % 32] ^= 1 + flip % 255
    bad = list(path)
    bad[pick % len(path)] = bytes(corrupted)
    assert not verify_inclusion(index, size, leaf, bad, root)
    if (index ^ 1) < size:
        assert not verify_inclusion(index ^ 1, size, leaf, path, root)  # wrong position


@settings(max_examples=100, deadline=None)
@given(data=st.lists(st.binary(max_size=4), min_size=3, max_size=40, unique=True), pick=st.integers(min_value=0))
def test_malformed_consistency_proofs_are_rejected(data: list[bytes], pick: int) -> None:
    size = len(data)
    first = 1 + pick % (size - 1)  # 1..size-1: a real, non-empty proof
    tree = MerkleTree(leaf_hashes(data))
    path = tree.consistency_path(first)
    old, new = naive_mth(data[:first]), naive_mth(data)
    assert path
    assert not verify_consistency(first, size, old, new, path[:-1])
    assert not verify_consistency(first, size, old, new, [*path, path[0]])
    assert not verify_consistency(first, size, new, new, path)  # wrong old root
    assert not verify_consistency(size, first, new, old, path)  # sizes reversed
    assert not verify_consistency(first, size, old, new, [])


# -- canonical JSON: rfc8785 (what audit/ writes) == the stdlib version (what verifiers run) --------

json_scalars = st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | st.text()
float_free_json = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(value=float_free_json)
def test_stdlib_canonical_json_equals_rfc8785(value: object) -> None:
    assert canonical_json(value) == rfc8785.dumps(value)


def test_keys_sort_by_utf16_code_units_not_code_points() -> None:
    # U+E000 sorts after U+1F600 in UTF-16 (the emoji starts with surrogate 0xD83D) but before it by code point.
    value = {"\ue000": 1, "\U0001f600": 2}
    expected = '{"\U0001f600":2,"\ue000":1}'.encode()
    assert rfc8785.dumps(value) == expected
    assert canonical_json(value) == expected


def test_float_is_refused_with_its_json_path() -> None:
    with pytest.raises(TypeError, match=r"\$\.evidence\[1\]\.score"):
        canonical_payload({"evidence": [{"score": "0.5"}, {"score": 0.25}]})
    assert json.loads(canonical_payload({"score": "0.25"})) == {"score": "0.25"}


short_text = st.text(max_size=12)


@settings(max_examples=200, deadline=None)
@given(
    seq=st.integers(1, 2**53 - 1), actor=short_text, event_type=short_text, request_id=st.none() | short_text,
    status=st.none() | short_text, subjects=st.lists(short_text, max_size=3), time=short_text,
)
def test_hand_written_leaf_encoding_is_rfc8785(
    seq: int, actor: str, event_type: str, request_id: str | None, status: str | None, subjects: list[str], time: str
) -> None:
    entry = {
        "seq": seq, "time": time, "event_type": event_type, "actor": actor, "request_id": request_id,
        "subjects": subjects, "status": status, "payload_commitment": "ab" * 32, "prev_hash": "cd" * 32,
    }
    assert leaf_bytes(entry) == rfc8785.dumps({"v": 1, **entry})


@settings(max_examples=300, deadline=None)
@given(
    seq=st.integers(1, 2**53 - 1), actor=short_text, event_type=short_text, request_id=st.none() | short_text,
    status=st.none() | short_text, subjects=st.lists(short_text, max_size=3), time=short_text,
    commitment=short_text, prev_hash=short_text, flip=st.integers(0, 8),
)
def test_the_checks_inline_leaf_encoding_is_rfc8785(
    seq: int, actor: str, event_type: str, request_id: str | None, status: str | None, subjects: list[str], time: str,
    commitment: str, prev_hash: str, flip: int,
) -> None:
    # RangeChecker.check_rows writes the leaf with its own f-string (the hot loop of verify): a row
    # whose stored leaf hash is RFC 9162's over the RFC 8785 leaf passes, and the same row with any
    # one field changed fails, whatever the characters (quotes, controls, non-ASCII) of its strings.
    if event_type in STRUCTURAL_EVENTS:  # their payloads cannot be missing; the leaf is what is tested here
        event_type += "_"
    fields = {
        "seq": seq, "time": time, "event_type": event_type, "actor": actor, "request_id": request_id,
        "subjects": subjects, "status": status, "payload_commitment": commitment, "prev_hash": prev_hash,
    }
    stored_leaf = hashlib.sha256(b"\x00" + rfc8785.dumps({"v": 1, **fields})).hexdigest()
    row = [seq, time, event_type, actor, request_id, json.dumps(subjects), status, commitment, prev_hash, stored_leaf, None, None]
    RangeChecker(seq - 1, prev_hash, None, lambda note: None).check_rows([tuple(row)])  # passes

    index = [1, 2, 3, 4, 5, 6, 7, 0, 8][flip]  # one leaf field: time .. payload_commitment, seq, prev_hash
    changed = list(row)
    if index == 0:
        changed[0] = seq + 1
    elif index == 5:
        changed[5] = json.dumps([*subjects, "x"])
    else:
        changed[index] = (row[index] or "") + "\""
    head = changed[8]  # a changed prev_hash still chains to the row before: only its leaf hash can tell
    with pytest.raises(ChainProblem):
        RangeChecker(changed[0] - 1, head, None, lambda note: None).check_rows([tuple(changed)])
