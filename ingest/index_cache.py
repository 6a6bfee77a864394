"""The derived indexes of the live chunks, cached by the registry's generation: FAISS and BM25.

Both are caches of the registry, whose chunk rows carry their vectors and text. ``IndexState.generation``
counts changes to the live chunk set; each index is held in memory at a generation, else loaded from
the copy saved in the index folder at that generation, else rebuilt from the registry and saved. The
writer lock lets one process at a time change the chunk set (ingest, removal). An update after a
commit changes a copy of the FAISS index and swaps it in whole, so a search holding the old one (the
service's asks run beside an upload's ingest) reads a whole index.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

from ingest.embedding import Encoder
from ingest.lexical import LexicalIndex
from ingest.registry import ChunkRow, Document, DocumentVersion, IndexState, live_chunks
from ingest.retrieval import ChunkFacts
from ingest.structure import document_label
from ingest.vector_index import VectorIndex, index_kind_for

log = logging.getLogger(__name__)

# The texts BM25 indexes, named in its saved copy's manifest (see IndexCache._rebuild_lexical): the
# layout, and the source of ingest/structure.py, whose document_label turns a file name into words.
LEXICAL_LAYOUT = "document_label(name)\\ncontext\\ntext/1"


@lru_cache(maxsize=1)
def lexical_recipe() -> str:
    structure = Path(__file__).with_name("structure.py").read_bytes()
    return f"{LEXICAL_LAYOUT} structure.py:{hashlib.sha256(structure).hexdigest()}"


# Seconds a search waits for this process's ingest to publish the index of the generation it committed
# (a save of the index file), before rebuilding that index itself.
WRITER_WAIT_S = 30.0


class IndexCache:
    def __init__(self, sessions: sessionmaker, index_dir: Path, encoder: Encoder):
        self.sessions = sessions
        self.index_dir = Path(index_dir)
        self.encoder = encoder
        # The FAISS index searches read. It is never changed once published: an update builds a copy and
        # swaps it in (update), so a search holding the old one (the service's asks run beside an
        # upload's ingest) reads a whole index. The condition guards the swap and lets a search wait for
        # this process's writer instead of rebuilding the index the writer is about to publish.
        self._vectors: VectorIndex | None = None
        self._vectors_changed = threading.Condition()
        self._writer_thread: int | None = None  # the thread inside _writer_lock, if any
        self._lexical: tuple[int, LexicalIndex] | None = None  # (generation, index)
        self._facts: tuple[int, ChunkFacts] | None = None  # (generation, facts)

    @contextmanager
    def _writer_lock(self) -> Iterator[None]:
        """One writer at a time per workspace index (several `docket ingest` processes queue here)."""
        self.index_dir.mkdir(parents=True, exist_ok=True)
        with open(self.index_dir / ".lock", "w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                with self._vectors_changed:
                    self._writer_thread = threading.get_ident()
                    self._vectors = None  # another process may have written since we last looked
                self.vectors()  # load (or rebuild) now, so each file below updates it incrementally
                yield
            finally:
                with self._vectors_changed:
                    self._writer_thread = None
                    self._vectors_changed.notify_all()
                fcntl.flock(fh, fcntl.LOCK_UN)


    writer_lock = _writer_lock  # public: the Ray driver holds it for its run, as ingest does


    def generation(self) -> int:
        with self.sessions() as session:
            return session.get(IndexState, 1).generation


    def vectors(self) -> VectorIndex:
        """The FAISS index at the registry's generation; the caller may search it for as long as it likes."""
        current = self._vectors  # read once: another thread may swap it
        if current is not None and current.generation == self.generation():
            return current
        with self._vectors_changed:
            waited_until = time.monotonic() + WRITER_WAIT_S
            while True:
                generation, current = self.generation(), self._vectors
                if current is not None and current.generation == generation:
                    return current
                # This process's ingest has committed a generation and will swap in its index next: wait
                # for it, rather than rebuild from the registry what it is about to publish.
                left = waited_until - time.monotonic()
                if self._writer_thread in (None, threading.get_ident()) or left <= 0:
                    break
                self._vectors_changed.wait(left)
            loaded = VectorIndex.load(self.index_dir, self.encoder.model_id, self.encoder.dimension, generation)
            if loaded is None:
                loaded = self._rebuild_vectors(generation)
            self._vectors = loaded
            self._vectors_changed.notify_all()
            return loaded


    def _rebuild_vectors(self, generation: int) -> VectorIndex:
        log.info("rebuilding the FAISS index from the registry (generation %d)", generation)
        ids, blobs = [], []
        with self.sessions() as session:
            for chunk_id, blob in session.execute(
                live_chunks(select(ChunkRow.id, ChunkRow.embedding)).where(
                    ChunkRow.embedding_model == self.encoder.model_id
                )
            ):
                ids.append(chunk_id)
                blobs.append(blob)
        index = VectorIndex(self.encoder.dimension, kind=index_kind_for(len(ids)))
        if ids:
            matrix = np.frombuffer(b"".join(blobs), dtype=np.float32).reshape(len(ids), self.encoder.dimension)
            index.add(np.asarray(ids, dtype=np.int64), matrix)
        index.save(self.index_dir, self.encoder.model_id, generation)
        return index


    def update(self, new_ids: np.ndarray, new_vectors: np.ndarray, retired_ids: list[int]) -> None:
        generation = self.generation()
        with self._vectors_changed:
            index = self._vectors
            stale = index is None or index.generation != generation - 1
            # Removal from HNSW, or growth past the flat limit: rebuild, choosing the type for the new size.
            if stale or (retired_ids and not index.can_remove) or index_kind_for(index.count + len(new_ids)) != index.kind:
                self._vectors = None
            else:
                # Changed on a copy, published whole (see __init__): a search may be reading `index` now.
                updated = index.copy()
                updated.remove(retired_ids)
                updated.add(new_ids, new_vectors)
                updated.save(self.index_dir, self.encoder.model_id, generation)
                self._vectors = updated
                self._vectors_changed.notify_all()
                return
        self.vectors()  # loads (or rebuilds) at the registry's current generation


    def lexical(self) -> LexicalIndex:
        """BM25 over the live chunks at the registry's generation: held in memory, else loaded from the
        copy saved beside the FAISS index at that generation, else rebuilt from the registry and saved
        (an ingest or removal bumps the generation, so a saved copy of older chunks is never used)."""
        generation = self.generation()
        if self._lexical is None or self._lexical[0] != generation:
            index = LexicalIndex.load(self.index_dir, generation, lexical_recipe())
            if index is None:
                index = self._rebuild_lexical(generation)
            self._lexical = (generation, index)
        return self._lexical[1]


    def _rebuild_lexical(self, generation: int) -> LexicalIndex:
        log.info("rebuilding the BM25 index from the registry (generation %d)", generation)
        with self.sessions() as session:
            rows = session.execute(
                live_chunks(select(ChunkRow.id, Document.name, ChunkRow.context, ChunkRow.text)).join(
                    Document, Document.id == DocumentVersion.document_id
                )
            ).all()
        # BM25 also reads the document's name (as words): questions name the company or the contract.
        # (LEXICAL_LAYOUT names this layout: change one, change the other.)
        texts = [f"{document_label(name)}\n{context}\n{text}" for _, name, context, text in rows]
        index = LexicalIndex.build([r[0] for r in rows], texts)
        # Saved only if no ingest committed while the rows were read: the copy must be the generation's.
        if self.generation() == generation:
            try:
                index.save(self.index_dir, generation, lexical_recipe())
            except OSError as exc:  # a read-only workspace still answers, rebuilding in each process
                log.warning("could not save the BM25 index in %s: %s", self.index_dir, exc)
        return index


    def chunk_facts(self) -> ChunkFacts:
        """Page, opening, statement and document-name facts of every live chunk at the generation of the
        BM25 index ``lexical()`` last returned (``ingest.retrieval.ChunkFacts``), read from the registry when
        that generation changes: the facts follow the BM25 index they rank beside."""
        generation = self._lexical[0] if self._lexical is not None else self.generation()
        cached = self._facts
        if cached is None or cached[0] != generation:
            with self.sessions() as session:
                rows = session.execute(
                    live_chunks(select(ChunkRow.id, ChunkRow.version_id, ChunkRow.page, ChunkRow.char_start, ChunkRow.context))
                ).all()
                names = session.execute(
                    select(DocumentVersion.id, Document.name)
                    .join(Document, Document.id == DocumentVersion.document_id)
                    .where(DocumentVersion.status == "current")
                ).all()
            cached = self._facts = (generation, ChunkFacts.build([tuple(r) for r in rows], dict(names)))
        return cached[1]

