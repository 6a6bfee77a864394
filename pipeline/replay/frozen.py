"""The search as it ran when an answer was recorded: over the chunks of the versions live then.

A frozen index is built from a corpus snapshot (``pipeline.replay.snapshots``): the chunk rows of exactly
those document versions, their stored vectors (never re-encoded), BM25 over exactly their texts (so the
IDF statistics are that corpus's, not today's), and the page/opening/statement/name facts the document
signals read. The search then runs the same steps as ``DocumentStore.search`` with the same pure
functions (``ingest.retrieval.rank_chunks``, ``rerank``, ``mmr``), the question embedded by the recorded
encoder.

When the snapshot is today's corpus (nothing ingested or removed since), the store's own FAISS and BM25
indexes are used: they are the ones the original search used. Otherwise FAISS is built from the stored
vectors (a flat index up to ``FLAT_LIMIT`` chunks: exact, and built in well under a second at 100k) and
BM25 is built from the texts, then kept under ``index/replay/`` so the next replay of the same corpus
loads it (BM25's tokenising is the expensive part; see docs/replay.md for the timings).

Frozen means frozen: a version gone from the registry, a version with fewer chunks than the snapshot
says, a chunk whose text no longer matches its hash, a vector of another encoder, an encoder that no
longer loads: each is a ``Missing`` line, and no search is run on a substitute.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sqlalchemy import select

from ingest.lexical import LexicalIndex
from ingest.registry import ChunkRow, Document, DocumentVersion
from ingest.retrieval import ChunkFacts, RetrievalOptions, SearchMode, mmr, needs_facts, rank_chunks, rerank
from ingest.search import search_plan, search_scope
from ingest.passages import source_label
from ingest.store import ChunkHit, DocumentStore
from ingest.structure import document_label
from ingest.vector_index import VectorIndex, index_kind_for
from pipeline.replay.snapshots import CorpusSnapshot

log = logging.getLogger(__name__)

# The texts BM25 indexes, as the store builds them (ingest.store.LEXICAL_LAYOUT names the layout): if the
# store's layout is ever another, a rebuilt BM25 here would not be the one the answer was found with.
LEXICAL_LAYOUT = "document_label(name)\\ncontext\\ntext/1"
REPLAY_CACHE = "replay"  # under the workspace's index folder: BM25 of replayed corpora
CACHED_CORPORA = 3  # BM25 copies kept there, the most recently used
_BATCH = 500  # ids per IN (...) list


@dataclass(frozen=True)
class Missing:
    """Something a frozen replay needs that is not there any more, in one line."""

    what: str  # entry, settings, corpus, version, chunks, text, vectors, encoder, bm25
    detail: str

    def to_dict(self) -> dict[str, str]:
        return {"what": self.what, "detail": self.detail}


@dataclass
class FrozenIndex:
    """The indexes of one corpus snapshot, and which document (and collection) each chunk is of."""

    snapshot: CorpusSnapshot
    vectors: VectorIndex
    lexical: LexicalIndex
    facts: ChunkFacts
    chunk_ids: np.ndarray  # int64, ascending
    chunk_documents: np.ndarray  # int64 document id of each chunk, aligned with chunk_ids
    collections: dict[int, str]  # document id -> collection
    source: str  # "live" (the store's own indexes) or "rebuilt" / "rebuilt, BM25 from the replay cache"
    _allowed: dict[tuple, list[int]] = field(default_factory=dict)

    def allowed(self, collection: str | None, document_ids: list[int] | None) -> list[int] | None:
        """The chunk ids a search of ``collection`` / ``document_ids`` may return (None: no filter), as
        ``DocumentStore._allowed_ids`` gives them for the live corpus."""
        if not (collection or document_ids):
            return None
        key = (collection, tuple(sorted(document_ids or ())))
        if key not in self._allowed:
            keep = np.ones(len(self.chunk_ids), dtype=bool)
            if collection:
                in_collection = [d for d, c in self.collections.items() if c == collection]
                keep &= np.isin(self.chunk_documents, np.asarray(in_collection, dtype=np.int64))
            if document_ids:
                keep &= np.isin(self.chunk_documents, np.asarray(document_ids, dtype=np.int64))
            self._allowed[key] = self.chunk_ids[keep].tolist()
        return self._allowed[key]


@dataclass(frozen=True)
class _VersionFacts:
    document_id: int
    name: str
    collection: str
    version: int
    sha256: str


def open_frozen(
    store: DocumentStore, snapshot: CorpusSnapshot, embedding_model: str, dimension: int, current: CorpusSnapshot
) -> tuple[FrozenIndex | None, list[Missing]]:
    """The frozen index of ``snapshot``, or None and every part that is missing."""
    versions, missing = _versions(store, snapshot)
    if missing:
        return None, missing
    if snapshot.sha256 == current.sha256:
        return _live_index(store, snapshot, versions, embedding_model)
    return _rebuilt_index(store, snapshot, versions, embedding_model, dimension)


def _versions(store: DocumentStore, snapshot: CorpusSnapshot) -> tuple[dict[int, _VersionFacts], list[Missing]]:
    found: dict[int, _VersionFacts] = {}
    wanted = [v.version_id for v in snapshot.versions]
    with store.sessions() as session:
        for ids in _batches(wanted):
            rows = session.execute(
                select(DocumentVersion.id, Document.id, Document.name, Document.collection, DocumentVersion.version,
                       DocumentVersion.sha256)
                .join(Document, Document.id == DocumentVersion.document_id)
                .where(DocumentVersion.id.in_(ids))
            ).all()
            found.update({row[0]: _VersionFacts(*row[1:]) for row in rows})
    missing = []
    for v in snapshot.versions:
        have = found.get(v.version_id)
        if have is None:
            missing.append(Missing("version", f"document {v.document_id} version {v.version} ({v.sha256[:12]}): "
                                              "no longer in the registry"))
        elif have.sha256 != v.sha256 or have.document_id != v.document_id:
            missing.append(Missing("version", f"registry version id {v.version_id} is now {have.name} version "
                                              f"{have.version} ({have.sha256[:12]}), not {v.sha256[:12]}"))
    return found, missing


def _live_index(store, snapshot, versions, embedding_model) -> tuple[FrozenIndex | None, list[Missing]]:
    """Today's corpus is the snapshot's: the store's own indexes, which the original search used."""
    rows = _fact_rows(store, [v.version_id for v in snapshot.versions])
    missing = _count_check(snapshot, versions, rows)
    if missing:
        return None, missing
    vectors = store.vectors()
    if store.encoder.model_id != embedding_model:
        return None, [Missing("vectors", f"the live index holds vectors of {store.encoder.model_id}, the answer's "
                                         f"search used {embedding_model}")]
    return _frozen(snapshot, versions, rows, vectors, store.lexical(), "live"), []


def _rebuilt_index(store, snapshot, versions, embedding_model, dimension) -> tuple[FrozenIndex | None, list[Missing]]:
    from ingest.store import LEXICAL_LAYOUT as STORE_LAYOUT, lexical_recipe

    if STORE_LAYOUT != LEXICAL_LAYOUT:
        return None, [Missing("bm25", f"the store now indexes BM25 texts as {STORE_LAYOUT!r}; replay rebuilds them as "
                                      f"{LEXICAL_LAYOUT!r}, so it cannot rebuild the BM25 of the answer's time")]
    cache = store.index_dir / REPLAY_CACHE / snapshot.sha256[:32]
    recipe = lexical_recipe()
    lexical = LexicalIndex.load(cache, snapshot.generation, recipe)
    version_ids = [v.version_id for v in snapshot.versions]
    ids, version_of, pages, starts, contexts, texts = [], [], [], [], [], []
    matrix = np.zeros((snapshot.chunks, dimension), dtype=np.float32)
    missing: list[Missing] = []
    other_models: dict[str, int] = {}
    with store.sessions() as session:
        columns = [ChunkRow.id, ChunkRow.version_id, ChunkRow.page, ChunkRow.char_start, ChunkRow.context,
                   ChunkRow.embedding_model, ChunkRow.embedding]
        if lexical is None:  # the texts are needed only to build BM25 (and their hashes are checked then)
            columns += [ChunkRow.text, ChunkRow.text_sha256]
        for batch in _batches(version_ids):
            for row in session.execute(select(*columns).where(ChunkRow.version_id.in_(batch))):
                if len(ids) >= len(matrix):
                    matrix = np.concatenate([matrix, np.zeros((len(matrix) + 1, dimension), np.float32)])
                if row.embedding_model != embedding_model:
                    other_models[row.embedding_model] = other_models.get(row.embedding_model, 0) + 1
                elif len(row.embedding) != dimension * 4:
                    missing.append(Missing("vectors", f"chunk {row.id}: its stored vector has {len(row.embedding) // 4} "
                                                      f"dimensions, the encoder {dimension}"))
                else:
                    matrix[len(ids)] = np.frombuffer(row.embedding, dtype=np.float32)
                if lexical is None:
                    if hashlib.sha256(row.text.encode("utf-8")).hexdigest() != row.text_sha256:
                        facts = versions[row.version_id]
                        missing.append(Missing("text", f"chunk {row.id} ({facts.name} version {facts.version}, page "
                                                       f"{row.page}): its text no longer matches its recorded hash "
                                                       "(redacted or edited in the registry)"))
                    texts.append(f"{document_label(versions[row.version_id].name)}\n{row.context}\n{row.text}")
                ids.append(row.id)
                version_of.append(row.version_id)
                pages.append(row.page)
                starts.append(row.char_start)
                contexts.append(row.context)
    for model, count in other_models.items():
        missing.append(Missing("vectors", f"{count} chunks hold vectors of {model}, not of {embedding_model}, the "
                                          "answer's encoder"))
    rows = list(zip(ids, version_of, pages, starts, contexts, strict=True))
    missing += _count_check(snapshot, versions, rows)
    if missing:
        return None, missing
    order = np.argsort(np.asarray(ids, dtype=np.int64), kind="stable")  # chunk id order, as the store's rebuild reads
    sorted_ids = np.asarray(ids, dtype=np.int64)[order]
    vectors = VectorIndex(dimension, snapshot.generation, kind=index_kind_for(len(ids)))
    vectors.add(sorted_ids, matrix[: len(ids)][order])
    source = "rebuilt, BM25 from the replay cache"
    if lexical is None:
        lexical = LexicalIndex.build(sorted_ids.tolist(), [texts[i] for i in order])
        source = "rebuilt"
        _save_lexical(cache, lexical, snapshot.generation, recipe)
    else:
        os.utime(cache, None)  # most recently used
    return _frozen(snapshot, versions, [rows[i] for i in order], vectors, lexical, source), []


def _save_lexical(cache: Path, lexical: LexicalIndex, generation: int, recipe: str) -> None:
    try:
        lexical.save(cache, generation, recipe)
        kept = sorted((p for p in cache.parent.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime, reverse=True)
        for old in kept[CACHED_CORPORA:]:
            for file in old.iterdir():
                file.unlink()
            old.rmdir()
    except OSError as exc:  # a read-only workspace replays too, rebuilding each time
        log.warning("could not keep the replayed BM25 index in %s: %s", cache, exc)


def _fact_rows(store: DocumentStore, version_ids: list[int]) -> list[tuple[int, int, int, int, str]]:
    rows = []
    with store.sessions() as session:
        for batch in _batches(version_ids):
            rows += session.execute(
                select(ChunkRow.id, ChunkRow.version_id, ChunkRow.page, ChunkRow.char_start, ChunkRow.context)
                .where(ChunkRow.version_id.in_(batch))
            ).all()
    return sorted((tuple(r) for r in rows), key=lambda r: r[0])


def _count_check(snapshot: CorpusSnapshot, versions: dict[int, _VersionFacts], rows) -> list[Missing]:
    counts: dict[int, int] = {}
    for row in rows:
        counts[row[1]] = counts.get(row[1], 0) + 1
    missing = []
    for v in snapshot.versions:
        have = counts.get(v.version_id, 0)
        if have != v.chunks:
            facts = versions[v.version_id]
            missing.append(Missing("chunks", f"{facts.name} version {v.version} ({v.sha256[:12]}): {have} of its "
                                             f"{v.chunks} chunks are in the registry (removed by retention or by hand)"))
    return missing


def _frozen(snapshot, versions, rows, vectors, lexical, source) -> FrozenIndex:
    facts = ChunkFacts.build(rows, {vid: v.name for vid, v in versions.items()})
    ids = np.asarray([r[0] for r in rows], dtype=np.int64)
    documents = np.asarray([versions[r[1]].document_id for r in rows], dtype=np.int64)
    collections = {v.document_id: v.collection for v in versions.values()}
    return FrozenIndex(snapshot, vectors, lexical, facts, ids, documents, collections, source)


def _batches(ids: list[int]) -> Iterator[list[int]]:
    for start in range(0, len(ids), _BATCH):
        yield ids[start : start + _BATCH]


# -- the search ------------------------------------------------------------------------------------------


def frozen_search(
    store: DocumentStore,
    index: FrozenIndex,
    encode_query,
    question: str,
    k: int,
    *,
    collection: str | None,
    document_ids: list[int] | None,
    mode: SearchMode,
    options: RetrievalOptions,
) -> tuple[list[ChunkHit], list[Missing]]:
    """``DocumentStore.search`` over the frozen index: the same steps, in the same order, with the same
    functions; the registry is read only for the rows of the hits (old versions' rows stay there). Also
    a ``Missing`` for each hit whose text no longer matches its recorded hash (the hits are not shown then)."""
    plan = search_plan(question, options, store.searcher.expanders, document_ids)
    allowed = index.allowed(collection, document_ids)
    if allowed is not None and not allowed:
        return [], []
    depth = max(options.candidates, k)
    facts = index.facts if needs_facts(mode, plan, options) else None
    plan, allowed = search_scope(question, plan, options, store.searcher.expanders, document_ids, allowed, facts)
    query_vector = encode_query(plan.text) if mode in ("hybrid", "dense") else None
    scored = rank_chunks(
        plan, query_vector, index.vectors if query_vector is not None else None,
        index.lexical if mode in ("hybrid", "bm25") else None, facts, options, mode=mode, depth=depth,
        allowed=allowed, allowed_set=frozenset(allowed) if facts is not None and allowed is not None else None,
    )
    if options.reranker:
        head = _rows(store, [c for c, _ in scored[: options.rerank_candidates]])
        texts = {cid: f"{row.context}\n{row.text}" for cid, (row, _, _) in head.items()}
        scored = rerank(plan.text, scored, texts, options.reranker, options.rerank_candidates)
    if options.mmr_lambda < 1.0:
        pool = scored[: max(options.candidates, k)]
        scored = mmr(pool, index.vectors.vectors([c for c, _ in pool]), k, options.mmr_lambda)
    hits, altered = _hits(store, scored[:k])
    if altered:
        return [], altered
    return (_expand(store, hits, options.neighbours) if options.neighbours else hits), []


def _rows(store: DocumentStore, chunk_ids: list[int]) -> dict[int, tuple[ChunkRow, str, int]]:
    if not chunk_ids:
        return {}
    with store.sessions() as session:
        rows = session.execute(
            select(ChunkRow, Document.name, Document.id)
            .join(DocumentVersion, ChunkRow.version_id == DocumentVersion.id)
            .join(Document, Document.id == DocumentVersion.document_id)
            .where(ChunkRow.id.in_(chunk_ids))
        ).all()
    return {row[0].id: (row[0], row[1], row[2]) for row in rows}


def _hits(store: DocumentStore, scored: list[tuple[int, float]]) -> tuple[list[ChunkHit], list[Missing]]:
    rows = _rows(store, [cid for cid, _ in scored])
    hits, altered = [], []
    for chunk_id, score in scored:
        if chunk_id not in rows:
            altered.append(Missing("chunks", f"chunk {chunk_id}, found by the frozen search, is no longer in the registry"))
            continue
        chunk, name, doc_id = rows[chunk_id]
        if hashlib.sha256(chunk.text.encode("utf-8")).hexdigest() != chunk.text_sha256:
            altered.append(Missing("text", f"chunk {chunk_id} ({name}, page {chunk.page}): its text no longer matches "
                                           "its recorded hash (redacted or edited in the registry)"))
            continue
        rank = len(hits) + 1
        hits.append(ChunkHit(source_label(rank), rank, chunk_id, chunk.doc_sha256, name, chunk.page, chunk.char_start,
                             chunk.char_end, chunk.text, score, chunk.method, chunk.confidence, chunk.context, doc_id))
    return hits, altered


def _expand(store: DocumentStore, hits: list[ChunkHit], neighbours: int) -> list[ChunkHit]:
    """Each hit widened to its ``neighbours`` adjacent chunks on each side, same page, as search does."""
    from ingest.search import expand_hits

    return expand_hits(store.sessions, hits, neighbours)
