"""FAISS over the live chunks: inner product on normalised vectors, ids are chunk row ids.

The index is a cache of the registry. It is saved atomically (write a temp file, fsync, rename) with a
manifest naming the model, dimension, count, registry generation and the index file's SHA-256. If the
manifest does not match the registry (a crash between the SQL commit and the save, a hand-edited file),
the caller rebuilds the index from the registry's stored vectors.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import faiss
import numpy as np

INDEX_FILE = "faiss.index"
MANIFEST_FILE = "manifest.json"


@dataclass(frozen=True)
class Manifest:
    model: str
    dimension: int
    count: int
    generation: int
    index_sha256: str
    faiss_version: str = faiss.__version__
    index_type: str = "IDMap2,FlatIP"


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class VectorIndex:
    def __init__(self, dimension: int, generation: int = -1):
        self.dimension = dimension
        self.generation = generation  # the registry generation this index reflects
        self.index = faiss.IndexIDMap2(faiss.IndexFlatIP(dimension))

    @property
    def count(self) -> int:
        return int(self.index.ntotal)

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        if len(ids):
            self.index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), ids.astype(np.int64))

    def remove(self, ids: list[int]) -> None:
        if ids:
            self.index.remove_ids(np.asarray(ids, dtype=np.int64))

    def search(self, query: np.ndarray, k: int, allowed_ids: list[int] | None = None) -> list[tuple[int, float]]:
        """Top-k (chunk id, cosine) pairs; ``allowed_ids`` restricts the search (document filters)."""
        if self.count == 0 or k <= 0:
            return []
        params = None
        if allowed_ids is not None:
            if not allowed_ids:
                return []
            params = faiss.SearchParameters(sel=faiss.IDSelectorBatch(np.asarray(allowed_ids, dtype=np.int64)))
        scores, ids = self.index.search(query.reshape(1, -1).astype(np.float32), min(k, self.count), params=params)
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0], strict=True) if i != -1]

    # -- persistence --------------------------------------------------------------------------------
    def save(self, directory: Path, model: str, generation: int) -> Manifest:
        directory.mkdir(parents=True, exist_ok=True)
        blob = faiss.serialize_index(self.index).tobytes()
        manifest = Manifest(model, self.dimension, self.count, generation, hashlib.sha256(blob).hexdigest())
        self.generation = generation
        # Index first, manifest last: a manifest never describes an index that is not on disk.
        _atomic_write(directory / INDEX_FILE, blob)
        _atomic_write(directory / MANIFEST_FILE, json.dumps(asdict(manifest), indent=2).encode())
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
        loaded = cls(dimension, generation)
        loaded.index = faiss.deserialize_index(np.frombuffer(blob, dtype=np.uint8))
        return loaded if loaded.count == manifest.count else None
