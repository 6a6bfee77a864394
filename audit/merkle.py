"""RFC 9162 proofs on the prover's side: the tree over all leaf hashes, inclusion and consistency paths.

Checking proofs (and hashing) lives in `audit.verification.tree`, which the stand-alone verifier is built from.
"""

from __future__ import annotations

from audit.verification.formats import EMPTY_ROOT
from audit.verification.tree import node_hash


class MerkleTree:
    """All levels of the tree, bottom-up. RFC 9162's split at the largest power of two below n is the
    same tree as pairing nodes level by level and carrying an odd last node up unchanged."""

    def __init__(self, leaves: list[bytes]) -> None:
        self.levels = [leaves]
        while len(self.levels[-1]) > 1:
            below = self.levels[-1]
            above = [node_hash(below[i], below[i + 1]) for i in range(0, len(below) - 1, 2)]
            if len(below) % 2:
                above.append(below[-1])
            self.levels.append(above)

    @property
    def size(self) -> int:
        return len(self.levels[0])

    def root(self) -> bytes:
        return self.levels[-1][0] if self.size else bytes.fromhex(EMPTY_ROOT)

    def inclusion_path(self, index: int) -> list[bytes]:
        if not 0 <= index < self.size:
            raise IndexError(f"leaf {index} is outside a tree of size {self.size}")
        path = []
        for level in self.levels[:-1]:
            sibling = index ^ 1
            if sibling < len(level):
                path.append(level[sibling])
            index //= 2
        return path

    def subtree_root(self, start: int, end: int) -> bytes:
        """Root of leaves [start, end) in RFC 9162 terms (any range the consistency proof asks for)."""
        width = end - start
        if width == 1:
            return self.levels[0][start]
        split = 1 << ((width - 1).bit_length() - 1)
        # A perfect, aligned subtree is a stored node: avoids recomputing it.
        if width == split * 2 and start % width == 0:
            return self.levels[width.bit_length() - 1][start // width]
        return node_hash(self.subtree_root(start, start + split), self.subtree_root(start + split, end))

    def consistency_path(self, first: int) -> list[bytes]:
        """RFC 9162 2.1.4.1 SUBPROOF(m, D[0:n], true)."""
        if not 0 <= first <= self.size:
            raise IndexError(f"size {first} is outside a tree of size {self.size}")
        if first in (0, self.size):
            return []
        return self._subproof(first, 0, self.size, True)

    def _subproof(self, m: int, start: int, end: int, complete: bool) -> list[bytes]:
        n = end - start
        if m == n:
            return [] if complete else [self.subtree_root(start, end)]
        k = 1 << ((n - 1).bit_length() - 1)
        if m <= k:
            return self._subproof(m, start, start + k, complete) + [self.subtree_root(start + k, end)]
        return self._subproof(m - k, start + k, end, False) + [self.subtree_root(start, start + k)]
