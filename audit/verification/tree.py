"""RFC 9162 Merkle hashing on the verifier's side: leaf ``H(0x00||d)`` and node ``H(0x01||l||r)``
hashes, a compact frontier, and the inclusion and consistency proof checks of sections 2.1.3.2 and
2.1.4.2. The prover's tree (all levels, the proofs' paths) is ``audit.merkle``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from audit.verification.formats import EMPTY_ROOT


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
