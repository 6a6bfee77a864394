"""Search the live chunks: hybrid (dense + BM25) or either alone, over the documents a caller may read.

The ranking steps are ``ingest.retrieval``'s; this module narrows the chunk ids both retrievers search
(collection, documents, the caller's allowed documents) before either ranks, reranks and diversifies
when asked, reads the hits from the registry and widens them to their neighbours.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import replace

from sqlalchemy import func, select
from sqlalchemy.orm import sessionmaker

from ingest.embedding import Encoder
from ingest.index_cache import IndexCache
from ingest.passages import Passage, source_label
from ingest.query import QueryExpander, QueryPlan, plain_query, plan_query
from ingest.registry import ChunkRow, Document, DocumentVersion, PageRow, live_chunks
from ingest.retrieval import ChunkFacts, RetrievalOptions, SearchMode, mmr, named_versions, needs_facts, rank_chunks, rerank


def search_plan(query: str, options: RetrievalOptions, expanders: Sequence[QueryExpander],
                document_ids: Collection[int] | None, *, named: bool = False) -> QueryPlan:
    """The query a search runs for ``query`` (``ingest.query``), searching ``document_ids`` (None: all),
    or, ``named``, the documents the question names (``search_scope``)."""
    if not options.query_analysis:
        return plain_query(query)
    one_document = named or (document_ids is not None and len(document_ids) == 1)
    return plan_query(query, expanders if options.query_expansion else (), one_document=one_document)


def search_scope(query: str, plan: QueryPlan, options: RetrievalOptions, expanders: Sequence[QueryExpander],
                 document_ids: Collection[int] | None, allowed: list[int] | None,
                 facts: ChunkFacts | None) -> tuple[QueryPlan, list[int] | None]:
    """The plan a search runs and the chunk ids it searches (None: all): ``plan`` (``search_plan``'s)
    and the filters', or, when the question names some of the documents searched (``named_versions``;
    hybrid searches only, which read ``facts``), the plan within those and their chunks. The live search
    and the frozen replay (``pipeline.replay.frozen``) both scope through here."""
    if facts is None or not options.name_routing or (document_ids is not None and len(document_ids) == 1):
        return plan, allowed
    named = named_versions(facts, plan, allowed)
    if not named:
        return plan, allowed
    return search_plan(query, options, expanders, document_ids, named=True), facts.chunks_of(named, allowed)


# A search result: a passage, ranked and labelled (ingest.passages). The name callers have used.
ChunkHit = Passage


class Search:
    def __init__(self, sessions: sessionmaker, indexes: IndexCache, encoder: Encoder,
                 expanders: Sequence[QueryExpander] = ()):
        self.sessions = sessions
        self.indexes = indexes
        self.encoder = encoder
        self.expanders = tuple(expanders)  # the caller's domain knowledge of answers' wording (ingest.query)
        self._allowed_cache: dict[tuple, list[int]] = {}  # (generation, collection, document ids) -> chunk ids
        self._allowed_set: tuple[list[int], frozenset[int]] | None = None

    def live_chunk_ids(self, collection: str | None = None, document_ids: list[int] | None = None) -> list[int]:
        with self.sessions() as session:
            query = live_chunks(select(ChunkRow.id)).join(Document, Document.id == DocumentVersion.document_id)
            if collection:
                query = query.where(Document.collection == collection)
            if document_ids:
                query = query.where(Document.id.in_(document_ids))
            return list(session.execute(query).scalars())


    def live_collections(self, document_ids: list[int] | None = None) -> list[str]:
        """The collections that have live chunks (of these documents, if given), sorted."""
        with self.sessions() as session:
            query = live_chunks(select(Document.collection).distinct().select_from(ChunkRow)).join(
                Document, Document.id == DocumentVersion.document_id
            )
            if document_ids:
                query = query.where(Document.id.in_(document_ids))
            return sorted(session.execute(query).scalars())


    def count_live_chunks(self) -> int:
        with self.sessions() as session:
            return session.execute(live_chunks(select(func.count(ChunkRow.id)))).scalar_one()


    def search(
        self,
        query: str,
        k: int = 5,
        *,
        collection: str | None = None,
        document_ids: list[int] | None = None,
        mode: SearchMode = "hybrid",
        candidates: int | None = None,
        rrf_k: int | None = None,
        options: RetrievalOptions | None = None,
        allowed_documents: Collection[int] | None = None,
    ) -> list[ChunkHit]:
        """The top-k live chunks for ``query`` (see ``ingest.retrieval`` for the steps and options).

        ``candidates`` and ``rrf_k``, when given, override the same fields of ``options``.
        ``allowed_documents`` are the ids of the documents the caller may read (None: any; empty: none).
        They narrow the chunk ids both retrievers search before either ranks, so the k hits are the best
        k of what the caller may read, never what is left of a top-k after dropping the rest."""
        options = options or RetrievalOptions()
        overrides = {"candidates": candidates, "rrf_k": rrf_k}
        options = replace(options, **{name: v for name, v in overrides.items() if v is not None})
        if allowed_documents is not None:
            permitted = set(allowed_documents)
            document_ids = sorted(permitted & set(document_ids)) if document_ids else sorted(permitted)
            if not document_ids:
                return []
        plan = search_plan(query, options, self.expanders, document_ids)
        allowed = self._allowed_ids(collection, document_ids)
        if allowed is not None and not allowed:
            return []
        depth = max(options.candidates, k)
        lexical_index = self.indexes.lexical() if mode in ("hybrid", "bm25") else None
        # lexical() has just brought the BM25 index to the registry's generation: the facts follow it.
        facts = self.indexes.chunk_facts() if needs_facts(mode, plan, options) else None  # hybrid only
        filtered = allowed
        plan, allowed = search_scope(query, plan, options, self.expanders, document_ids, allowed, facts)
        query_vector = self.encoder.encode_query(plan.text) if mode in ("hybrid", "dense") else None
        allowed_set = None
        if facts is not None:
            allowed_set = self._allowed_set_of(allowed) if allowed is filtered else frozenset(allowed)
        scored = rank_chunks(
            plan, query_vector, self.indexes.vectors() if query_vector is not None else None, lexical_index, facts, options,
            mode=mode, depth=depth, allowed=allowed, allowed_set=allowed_set,
        )
        if options.reranker:
            texts = {cid: f"{row.context}\n{row.text}" for cid, row in self._rows([c for c, _ in scored[: options.rerank_candidates]]).items()}
            scored = rerank(plan.text, scored, texts, options.reranker, options.rerank_candidates)
        if options.mmr_lambda < 1.0:
            pool = scored[: max(options.candidates, k)]
            scored = mmr(pool, self.indexes.vectors().vectors([c for c, _ in pool]), k, options.mmr_lambda)
        hits = self._hits(scored[:k])
        return self._expand(hits, options.neighbours) if options.neighbours else hits


    def _allowed_set_of(self, allowed: list[int] | None) -> frozenset[int] | None:
        """``allowed`` as a set; _allowed_ids returns the same cached list while the filter and generation
        hold, so one set per list."""
        if allowed is None:
            return None
        cached = self._allowed_set
        if cached is None or cached[0] is not allowed:
            cached = self._allowed_set = (allowed, frozenset(allowed))
        return cached[1]


    def _allowed_ids(self, collection: str | None, document_ids: list[int] | None) -> list[int] | None:
        """Live chunk ids under the filters (None = no filter); cached per index generation."""
        if not (collection or document_ids):
            return None
        key = (self.indexes.generation(), collection, tuple(sorted(document_ids or ())))
        if key not in self._allowed_cache:
            if len(self._allowed_cache) > 64:
                self._allowed_cache.clear()
            self._allowed_cache[key] = self.live_chunk_ids(collection, document_ids)
        return self._allowed_cache[key]


    def _rows(self, chunk_ids: list[int]) -> dict[int, ChunkRow]:
        with self.sessions() as session:
            rows = session.execute(select(ChunkRow).where(ChunkRow.id.in_(chunk_ids))).scalars().all()
        return {row.id: row for row in rows}


    def _expand(self, hits: list[ChunkHit], neighbours: int) -> list[ChunkHit]:
        return expand_hits(self.sessions, hits, neighbours)

    def _hits(self, scored: list[tuple[int, float]]) -> list[ChunkHit]:
        if not scored:
            return []
        with self.sessions() as session:
            rows = session.execute(
                select(ChunkRow, Document.name, Document.id)
                .join(DocumentVersion, ChunkRow.version_id == DocumentVersion.id)
                .join(Document, Document.id == DocumentVersion.document_id)
                .where(ChunkRow.id.in_([cid for cid, _ in scored]))
            ).all()
        by_id = {row[0].id: row for row in rows}
        hits: list[Passage] = []
        for chunk_id, score in scored:
            if chunk_id not in by_id:
                continue
            chunk, name, doc_id = by_id[chunk_id]
            rank = len(hits) + 1
            hits.append(
                Passage(
                    label=source_label(rank), rank=rank, chunk_id=chunk_id, doc_sha256=chunk.doc_sha256, doc_name=name,
                    page=chunk.page, char_start=chunk.char_start, char_end=chunk.char_end, text=chunk.text, score=score,
                    method=chunk.method, confidence=chunk.confidence, context=chunk.context, document_id=doc_id,
                )
            )
        return hits


def expand_hits(sessions, hits: list[ChunkHit], neighbours: int) -> list[ChunkHit]:
    """Each hit widened to the span of its ``neighbours`` adjacent chunks on each side, same page.

    The widened text is read from the page, so it is still exactly ``page.text[start:end]``. Search
    and a frozen replay (pipeline/replay/frozen.py) widen hits through this one function."""
    out = []
    with sessions() as session:
        for hit in hits:
            version_id, = session.execute(select(ChunkRow.version_id).where(ChunkRow.id == hit.chunk_id)).one()
            spans = session.execute(
                select(ChunkRow.id, ChunkRow.char_start, ChunkRow.char_end)
                .where(ChunkRow.version_id == version_id, ChunkRow.page == hit.page)
                .order_by(ChunkRow.char_start)
            ).all()
            at = next(i for i, row in enumerate(spans) if row[0] == hit.chunk_id)
            window = spans[max(0, at - neighbours) : at + neighbours + 1]
            start, end = min(r[1] for r in window), max(r[2] for r in window)
            page_text = session.execute(
                select(PageRow.text).where(PageRow.version_id == version_id, PageRow.number == hit.page)
            ).scalar_one()
            out.append(replace(hit, char_start=start, char_end=end, text=page_text[start:end]))
    return out
