"""FAISS over the live chunks: inner product on normalised vectors, ids are chunk row ids.

The index type follows the size: exact search (``FlatIP``, scanned as one matrix-vector product) up to
``FLAT_LIMIT`` vectors, where it costs a few milliseconds a query; HNSW beyond (graph search,
sub-linear; its recall against exact search is measured by ``python -m bench.retrieval_bench``). HNSW
cannot delete, so a removal rebuilds it from the registry; a search restricted to a few documents is
done exactly on their vectors, since a graph walk filtered down to a small set can miss its best members.

The index is a cache of the registry. It is saved atomically (write a temp file, fsync, rename) with a
manifest naming the model, dimension, count, registry generation and the index file's SHA-256. If the
manifest does not match the registry (a crash between the SQL commit and the save, a hand-edited file),
the caller rebuilds the index from the registry's stored vectors.
"""

from __future__ import annotations

import hashlib
import json
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import faiss
import numpy as np

from ingest.files import atomic_write

INDEX_FILE = "faiss.index"
MANIFEST_FILE = "manifest.json"
IndexKind = Literal["flat", "hnsw"]
FLAT_LIMIT = 100_000  # vectors; beyond this a flat scan costs a query more than HNSW's walk (docs/retrieval.md, "Speed")
HNSW_M = 32  # graph degree: recall/memory trade-off (FAISS's usual 16-64)
HNSW_EF_CONSTRUCTION = 80
HNSW_EF_SEARCH = 96  # candidates explored per query: recall@10 vs flat ~0.99 at 100k (bench/)
EXACT_FILTER_LIMIT = 20_000  # filtered searches over at most this many ids are exact, whatever the kind


@contextmanager
def _one_thread():
    """FAISS searches of one query on the calling thread alone, then the thread's own setting back.

    A single query gains nothing from OpenMP's team (FAISS splits work across queries, not vectors),
    but pays for waking it, which on a busy 2-core machine costs more than the search itself
    (docs/retrieval.md, "Speed"). OpenMP's thread count is
    per calling thread, so building (HNSW ``add``) elsewhere keeps every core."""
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


def _best(ids: np.ndarray, scores: np.ndarray, k: int) -> list[tuple[int, float]]:
    """The ``k`` best (id, score) pairs, best first, equal scores in the ids' order: what a stable sort of
    all the scores gives, in linear time (only the scores that reach the k-th best are sorted)."""
    if k < len(scores):
        kth = np.partition(scores, len(scores) - k)[len(scores) - k]
        reaching = np.flatnonzero(scores >= kth)  # in the ids' order, ties at the k-th score included
    else:
        reaching = np.arange(len(scores))
    top = reaching[np.argsort(-scores[reaching], kind="stable")[:k]]
    return [(int(ids[i]), float(scores[i])) for i in top]


def index_kind_for(count: int) -> IndexKind:
    return "flat" if count <= FLAT_LIMIT else "hnsw"


def _base_index(kind: IndexKind, dimension: int) -> faiss.Index:
    if kind == "hnsw":
        index = faiss.IndexHNSWFlat(dimension, HNSW_M, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        return index
    return faiss.IndexFlatIP(dimension)


@dataclass(frozen=True)
class Manifest:
    model: str
    dimension: int
    count: int
    generation: int
    index_sha256: str
    faiss_version: str = faiss.__version__
    index_type: str = "flat"


class VectorIndex:
    def __init__(self, dimension: int, generation: int = -1, kind: IndexKind = "flat"):
        self.dimension = dimension
        self.generation = generation  # the registry generation this index reflects
        self.kind: IndexKind = kind
        self.index = faiss.IndexIDMap2(_base_index(kind, dimension))

    @property
    def count(self) -> int:
        return int(self.index.ntotal)

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        if len(ids):
            self.index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), ids.astype(np.int64))

    def copy(self) -> VectorIndex:
        """A separate index with the same vectors: what the store changes instead of the one searches read."""
        twin = VectorIndex(self.dimension, self.generation, self.kind)
        twin.index = faiss.clone_index(self.index)
        return twin

    @property
    def can_remove(self) -> bool:
        return self.kind == "flat"

    def remove(self, ids: list[int]) -> None:
        """Drop vectors (flat only: an HNSW index is rebuilt instead, see ``can_remove``)."""
        if ids:
            if not self.can_remove:
                raise ValueError("an HNSW index cannot remove vectors; rebuild it")
            self.index.remove_ids(np.asarray(ids, dtype=np.int64))

    def vectors(self, ids: list[int]) -> dict[int, np.ndarray]:
        if not ids:
            return {}
        matrix = self.index.reconstruct_batch(np.asarray(ids, dtype=np.int64))
        return dict(zip(ids, matrix, strict=True))

    def _flat_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """A flat index's vectors and their chunk ids, row by row: views of FAISS's storage, not copies
        (valid until the next add or remove, so taken afresh for each search)."""
        flat = faiss.downcast_index(self.index.index)
        matrix = faiss.rev_swig_ptr(flat.get_xb(), self.count * self.dimension).reshape(self.count, self.dimension)
        return matrix, faiss.rev_swig_ptr(self.index.id_map.data(), self.count)

    def search(self, query: np.ndarray, k: int, allowed_ids: list[int] | None = None) -> list[tuple[int, float]]:
        """Top-k (chunk id, cosine) pairs; ``allowed_ids`` restricts the search (document filters)."""
        if self.count == 0 or k <= 0:
            return []
        query = query.reshape(1, -1).astype(np.float32)
        if self.kind == "flat" and allowed_ids is None:
            # The exact scan as one matrix-vector product over FAISS's own storage: the same inner
            # products as IndexFlatIP.search, which for one query walks the vectors one call and heap
            # update at a time (the two timed at 100k vectors: docs/retrieval.md, "Speed").
            matrix, ids = self._flat_arrays()
            return _best(ids, matrix @ query[0], k)
        if allowed_ids is not None:
            if not allowed_ids:
                return []
            ids = np.asarray(allowed_ids, dtype=np.int64)
            if self.kind == "hnsw" and len(ids) <= EXACT_FILTER_LIMIT:
                with _one_thread():
                    scores = self.index.reconstruct_batch(ids) @ query[0]
                return _best(ids, scores, k)
            selector = faiss.IDSelectorBatch(ids)
            params = faiss.SearchParametersHNSW(sel=selector, efSearch=max(HNSW_EF_SEARCH, k)) if self.kind == "hnsw" else faiss.SearchParameters(sel=selector)
        else:
            params = faiss.SearchParametersHNSW(efSearch=max(HNSW_EF_SEARCH, k)) if self.kind == "hnsw" else None
        with _one_thread():
            scores, found = self.index.search(query, min(k, self.count), params=params)
        return [(int(i), float(s)) for i, s in zip(found[0], scores[0], strict=True) if i != -1]

    # -- persistence --------------------------------------------------------------------------------
    def save(self, directory: Path, model: str, generation: int) -> Manifest:
        directory.mkdir(parents=True, exist_ok=True)
        blob = faiss.serialize_index(self.index).tobytes()
        manifest = Manifest(
            model, self.dimension, self.count, generation, hashlib.sha256(blob).hexdigest(), index_type=self.kind
        )
        self.generation = generation
        # Index first, manifest last: a manifest never describes an index that is not on disk.
        atomic_write(directory / INDEX_FILE, blob)
        atomic_write(directory / MANIFEST_FILE, json.dumps(asdict(manifest), indent=2).encode())
        return manifest

    @classmethod
    def load(cls, directory: Path, model: str, dimension: int, generation: int) -> VectorIndex | None:
        """The saved index if it matches (model, dimension, generation, checksum); otherwise None."""
        try:
            manifest = Manifest(**json.loads((directory / MANIFEST_FILE).read_text()))
            blob = (directory / INDEX_FILE).read_bytes()
        except (OSError, ValueError, TypeError):
            return None
        if (
            manifest.model != model
            or manifest.dimension != dimension
            or manifest.generation != generation
            or hashlib.sha256(blob).hexdigest() != manifest.index_sha256
        ):
            return None
        loaded = cls(dimension, generation, "hnsw" if manifest.index_type == "hnsw" else "flat")
        loaded.index = faiss.deserialize_index(np.frombuffer(blob, dtype=np.uint8))
        return loaded if loaded.count == manifest.count else None
