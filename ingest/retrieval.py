"""Retrieval options and the pure steps of a search: fusion, MMR diversity, cross-encoder reranking.

A hybrid search runs the dense (FAISS) and lexical (BM25) retrievers on the analysed query (see
``ingest.query``), takes ``candidates`` hits from each and fuses them:

- ``convex`` (default): w_dense * cosine + w_lexical * BM25 / (this query's best BM25), over the union of
  both candidate lists; the store scores each candidate on both scales (``convex_fusion`` alone counts a
  chunk missing from a list as 0). Scores keep how much better the
  best hit is than the next, which ranks throw away; on CUAD it lifted within-contract R@1 from 0.54
  (RRF) to 0.71 with the same candidates (docs/retrieval.md).
- ``rrf``: weighted reciprocal-rank fusion, score(d) = sum_r w_r / (k + rank_r(d)) with k = 60
  (Cormack et al., 2009). Ranks only: needs no calibration at all.

After convex fusion, the *document signals*: what the question says about where its answer is (a
financial statement it names or whose line items it asks about, a contract's opening for its parties and
date, a document it names) is added to the fused score of the chunks there (``document_signals``), and
*page pooling* lets a page whose several chunks all match outrank a page with one (``pool_pages``), and
a page's later chunks step back behind other pages' best (``spread_pages``). All read ``ChunkFacts``,
which the store builds once per index generation.

Then, optionally: a cross-encoder reranks the first ``rerank_candidates`` (a local model folder; none ships
with Docket), MMR re-orders for diversity (``mmr_lambda`` < 1), and the store widens each hit to its
``neighbours`` adjacent chunks on the same page.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from ingest.lexical import tokenize
from ingest.query import STATEMENT_KINDS, QueryPlan
from ingest.structure import document_label, statement_kind

if TYPE_CHECKING:
    from ingest.lexical import LexicalIndex
    from ingest.vector_index import VectorIndex

Ranking = list[tuple[int, float]]
Fusion = Literal["rrf", "convex"]
SearchMode = Literal["hybrid", "dense", "bm25"]


@dataclass(frozen=True)
class RetrievalOptions:
    fusion: Fusion = "convex"
    rrf_k: int = 60
    dense_weight: float = 1.0
    lexical_weight: float = 1.0
    candidates: int = 50  # hits taken from each retriever before fusion
    query_analysis: bool = True  # content/instruction split, statement names, glossary (ingest.query)
    query_expansion: bool = True  # the store's expanders: how an answering passage is worded (ingest.query)
    mmr_lambda: float = 1.0  # 1.0 = relevance only; lower trades relevance for diversity
    neighbours: int = 0  # adjacent chunks (each side, same page) merged into each hit
    reranker: str | None = None  # local cross-encoder folder; None = no reranking
    rerank_candidates: int = 20
    # Document signals and page pooling (hybrid searches; see document_signals and pool_pages). Each
    # boost is on the convex scale, where a perfect BM25 match is worth 1: half of that.
    statement_boost: float = 0.5  # a chunk on a statement page the question is about (x 1 named, 0.5 implied)
    opening_boost: float = 0.5  # a document's first chunks, for parties/date questions
    name_boost: float = 0.5  # x how well the question names a chunk's document, when several are searched
    page_pooling: float = 0.1  # a page's best chunk gains this x its next two chunks' scores; 0 = off
    page_repeat_penalty: float = 0.2  # taken off a page's n-th chunk n - 1 times (see spread_pages); 0 = off
    name_routing: bool = True  # searched over several documents, a question that names some searches those (named_versions)

    @classmethod
    def from_settings(cls, section: Any) -> RetrievalOptions:
        """Options from a settings section (pydantic model or mapping): the fields of the same names."""
        data = section.model_dump() if hasattr(section, "model_dump") else dict(section)
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass
class ChunkFacts:
    """What a search knows of every live chunk besides its text and vector: its document version and
    page, whether it opens its document, and which primary financial statement (if any) its headings
    say it belongs to; and which versions' document names hold each word.

    Built by the store once per index generation from the registry's rows: aligned arrays plus a
    chunk id -> row map."""

    ids: np.ndarray  # int64
    version: np.ndarray  # int64 document version id
    page_key: np.ndarray  # int64, one value per (document version, page)
    opening: np.ndarray  # bool: among the first OPENING_CHUNKS chunks of its document version
    statement: np.ndarray  # int8: 1 + index in STATEMENT_KINDS, 0 = not on a statement page
    row: dict[int, int] = field(default_factory=dict)
    by_signal: dict[str, np.ndarray] = field(default_factory=dict)  # statement kind or OPENING -> chunk ids
    name_index: dict[str, frozenset[int]] = field(default_factory=dict)  # BM25 term -> versions whose name has it

    @classmethod
    def build(cls, rows: Sequence[tuple[int, int, int, int, str]], names: dict[int, str] | None = None) -> ChunkFacts:
        """``rows``: (chunk id, version id, page, char start, context) of every live chunk; ``names``:
        version id -> document (file) name."""
        ordered = sorted(rows, key=lambda r: (r[1], r[2], r[3]))
        ids = np.asarray([r[0] for r in ordered], dtype=np.int64)
        version = np.asarray([r[1] for r in ordered], dtype=np.int64)
        page_key = np.asarray([r[1] * 1_000_000 + r[2] for r in ordered], dtype=np.int64)
        opening = np.zeros(len(ordered), dtype=bool)
        seen: dict[int, int] = {}
        for i, r in enumerate(ordered):
            seen[r[1]] = seen.get(r[1], 0) + 1
            opening[i] = seen[r[1]] <= OPENING_CHUNKS
        statement = np.asarray([_statement_code(r[4]) for r in ordered], dtype=np.int8)
        holders: dict[str, set[int]] = {}
        for v, name in (names or {}).items():
            for term in set(tokenize(document_label(name))):
                holders.setdefault(term, set()).add(v)
        name_index = {term: frozenset(vs) for term, vs in holders.items()}
        row = {int(c): i for i, c in enumerate(ids)}
        by_signal = {kind: ids[statement == code + 1] for code, kind in enumerate(STATEMENT_KINDS)}
        by_signal[OPENING] = ids[opening]
        return cls(ids, version, page_key, opening, statement, row, by_signal, name_index)

    def rows_of(self, chunk_ids: Sequence[int]) -> np.ndarray:
        return np.asarray([self.row.get(c, -1) for c in chunk_ids], dtype=np.int64)

    def versions_of(self, chunk_ids: Sequence[int] | None) -> np.ndarray:
        """The document versions ``chunk_ids`` belong to (None: every live chunk), one per chunk."""
        if chunk_ids is None:
            return self.version
        rows = self.rows_of(chunk_ids)
        return np.where(rows >= 0, self.version[np.maximum(rows, 0)], -1)

    def chunks_of(self, versions: set[int], chunk_ids: Sequence[int] | None) -> list[int]:
        """Those of ``chunk_ids`` (None: every live chunk) that belong to ``versions``."""
        pool = self.ids if chunk_ids is None else np.asarray(chunk_ids, dtype=np.int64)
        keep = np.isin(self.versions_of(chunk_ids), np.fromiter(versions, dtype=np.int64))
        return pool[keep].tolist()

    def with_signal(self, plan: QueryPlan) -> np.ndarray:
        """Chunk ids on a page of a statement the question is about, or opening their document when it
        asks about openings: candidates for the search even if neither retriever ranked them."""
        parts = [self.by_signal[kind] for kind in plan.statements if kind in self.by_signal]
        if plan.opening:
            parts.append(self.by_signal[OPENING])
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)

    def name_match(self, terms: dict[str, float], versions: set[int]) -> dict[int, float]:
        """How well the question names each of ``versions``' documents, in [0, 1] (1 = the best named).

        A question term found in a document's name counts its query weight times its rarity among the
        names of ``versions`` (log(1 + N / names holding it)): "3M" or "NETGEAR" picks a document,
        "10-K" or "2022", shared by many names, picks little. Empty when no document is named or only
        one is searched."""
        if len(versions) < 2:
            return {}
        score: dict[int, float] = {}
        for term, weight in terms.items():
            holders = self.name_index.get(term, frozenset()) & versions
            if holders:
                value = weight * math.log(1 + len(versions) / len(holders))
                for version in holders:
                    score[version] = score.get(version, 0.0) + value
        if not score:
            return {}
        top = max(score.values())
        return {v: s / top for v, s in score.items()}


def named_versions(facts: ChunkFacts, plan: QueryPlan, chunk_ids: Sequence[int] | None) -> set[int]:
    """The document versions among ``chunk_ids``' (None: every live chunk's) that the question names:
    those its naming terms (``QueryPlan.names``: a reference clause, the first name) match best
    (``ChunkFacts.name_match``). Empty when it names none of them, or names them all alike.

    A question that names a filing or a contract ("for 3M", "In the SUPPLY AGREEMENT (Acme)") asks
    about that document; searched over many, the others' pages that discuss the same line item or
    clause fill the top k, and the name boost (``document_signals``) reaches only the documents among
    the candidates. Routed, the search is the one a user who picked the document would run."""
    if not plan.names:
        return set()
    versions = {int(v) for v in np.unique(facts.versions_of(chunk_ids)) if v >= 0}
    named = facts.name_match(plan.names, versions)
    best = {v for v, share in named.items() if share >= 1.0 - 1e-9}
    return best if len(best) < len(versions) else set()


OPENING_CHUNKS = 2  # a contract's title, parties and date fit in its first two chunks
OPENING = "opening"


def _statement_code(context: str) -> int:
    for part in re.split(r" \| |; ", context):
        kind = statement_kind(part)
        if kind:
            return STATEMENT_KINDS.index(kind) + 1
    return 0


def document_signals(ranking: Ranking, facts: ChunkFacts, plan: QueryPlan, options: RetrievalOptions) -> Ranking:
    """Fused scores plus what the question says about *where* its answer is:

    - ``statement_boost`` x weight for a chunk on a page of a financial statement the question names
      (weight 1) or whose line items it asks about (0.5, see ``ingest.query.statement_kinds``): a table
      row "Purchases of property, plant and equipment (1,577)" shares few words with "FY2018 capex",
      and loses to the MD&A prose that discusses it;
    - ``opening_boost`` for a chunk among the first chunks of its document when the question asks for
      the parties or the date: a contract's preamble says them once, and "date" and "party" are words
      every clause uses;
    - ``name_boost`` x how well the question names the chunk's document (``ChunkFacts.name_match``),
      when the candidates span several documents: "What drove gross margin for AMCOR?" asks about
      AMCOR's filing, however well another company's MD&A discusses gross margins."""
    if not ranking:
        return ranking
    rows = facts.rows_of([c for c, _ in ranking])
    valid = rows >= 0
    safe = np.where(valid, rows, 0)
    bonus = np.zeros(len(ranking), dtype=np.float64)
    if plan.statements and options.statement_boost:
        codes = np.where(valid, facts.statement[safe], 0)
        for kind, weight in plan.statements.items():
            bonus += options.statement_boost * weight * (codes == STATEMENT_KINDS.index(kind) + 1)
    if plan.opening and options.opening_boost:
        bonus += options.opening_boost * np.where(valid, facts.opening[safe], False)
    if options.name_boost:
        versions = np.where(valid, facts.version[safe], -1)
        named = facts.name_match(plan.terms, {int(v) for v in versions if v >= 0})
        if named:
            bonus += options.name_boost * np.asarray([named.get(int(v), 0.0) for v in versions])
    if not bonus.any():
        return ranking
    scored = [(cid, score + float(b)) for (cid, score), b in zip(ranking, bonus, strict=True)]
    return sorted(scored, key=lambda item: (-item[1], item[0]))


def pool_pages(ranking: Ranking, facts: ChunkFacts, weight: float, others: int = 2) -> Ranking:
    """Each page's best chunk re-scored as its page: its own score plus ``weight`` x the scores of the
    page's next ``others`` best candidate chunks. A statement table or a long clause spans several
    chunks, each a partial match; their page is a better match than any one of them. A page's other
    chunks keep their own scores (so the top k still spans several pages)."""
    if weight <= 0 or not ranking:
        return ranking
    rows = facts.rows_of([c for c, _ in ranking])
    first: dict[int, int] = {}
    support: dict[int, list[float]] = {}
    for i, r in enumerate(rows):
        page = int(facts.page_key[r]) if r >= 0 else -1 - i
        if page not in first:
            first[page] = i
        elif len(support.setdefault(page, [])) < others:
            support[page].append(max(ranking[i][1], 0.0))
    scored = list(ranking)
    for page, i in first.items():
        cid, score = ranking[i]
        scored[i] = (cid, score + weight * sum(support.get(page, ())))
    return sorted(scored, key=lambda item: (-item[1], item[0]))


def spread_pages(ranking: Ranking, facts: ChunkFacts, penalty: float) -> Ranking:
    """Each chunk loses ``penalty`` once for every better-ranked chunk of its own page: a page's second
    chunk steps back behind other pages' best chunks unless it beats them by more than ``penalty``.

    A financial statement is printed on one page and chunked into several blocks of rows, each carrying
    the same title, header and units, so they match a question alike and fill the top k with one page;
    page pooling has already credited the page's best chunk with them. Stepping them back lets the top k
    reach the other pages that may hold the answer (the note behind a line item, the MD&A paragraph).
    Applied after ``pool_pages``; the order within one page is kept."""
    if penalty <= 0 or not ranking:
        return ranking
    rows = facts.rows_of([c for c, _ in ranking])
    seen: dict[int, int] = {}
    scored: Ranking = []
    for i, r in enumerate(rows):
        page = int(facts.page_key[r]) if r >= 0 else -1 - i
        before = seen.get(page, 0)
        seen[page] = before + 1
        cid, score = ranking[i]
        scored.append((cid, score - penalty * before))
    return sorted(scored, key=lambda item: (-item[1], item[0]))


def rank_chunks(
    plan: QueryPlan,
    query_vector: np.ndarray | None,
    vectors: VectorIndex | None,
    lexical: LexicalIndex | None,
    facts: ChunkFacts | None,
    options: RetrievalOptions,
    *,
    mode: SearchMode = "hybrid",
    depth: int | None = None,
    allowed: list[int] | None = None,
    allowed_set: frozenset[int] | None = None,
) -> Ranking:
    """Every chunk a search considers, best first: both retrievers, convex completion, the signalled
    chunks, fusion, the document signals, page pooling and spreading (reranking, MMR and neighbours come after).

    ``DocumentStore.search`` calls this between its registry reads, and ``bench.retrieval_bench`` times
    this very function, so the latency it reports is the store's. ``depth`` hits come from each
    retriever (default ``options.candidates``); ``allowed`` restricts both to those chunk ids (document
    filters) and ``allowed_set`` is the same ids as a set, which a caller that repeats a filter caches.
    ``facts`` is needed only when ``signals_apply``, page pooling or spreading is on."""
    depth = depth or options.candidates
    dense: Ranking = []
    found: Ranking = []
    bm25 = None
    if mode in ("hybrid", "dense"):
        dense = vectors.search(query_vector, depth, allowed)
    if mode in ("hybrid", "bm25"):
        bm25 = lexical.scores(plan.terms, allowed)
        found = lexical.top(bm25, depth)
    if mode != "hybrid":
        return dense or found
    signals = signals_apply(plan, options)
    if options.fusion == "convex":
        # Score every candidate on both scales: a chunk ranked by one retriever only is not thereby worth
        # 0 to the other (its cosine is read from FAISS, its BM25 from the score array).
        in_dense, in_lexical = {c for c, _ in dense}, {c for c, _ in found}
        only_lexical = [c for c, _ in found if c not in in_dense]
        if signals and (plan.statements or plan.opening):
            # Chunks the question's document signals point to (its statements' pages, the documents'
            # openings) join the candidates even when neither retriever ranked them: at most `depth` of
            # them, the best by BM25 (a corpus of many filings has many statement pages).
            pointed = facts.with_signal(plan).tolist()
            if allowed is not None:
                allowed_set = allowed_set if allowed_set is not None else frozenset(allowed)
                pointed = [c for c in pointed if c in allowed_set]
            signalled = lexical.score_of(bm25, pointed)
            extra = [c for c, _ in sorted(signalled, key=lambda item: -item[1])[:depth]]
            only_lexical += [c for c in extra if c not in in_dense and c not in in_lexical]
        read = vectors.vectors(only_lexical)
        dense = dense + [(c, float(read[c] @ query_vector)) for c in only_lexical]
        found = found + lexical.score_of(bm25, [c for c, _ in dense if c not in in_lexical])
    scored = fuse(dense, found, options)
    if signals:
        scored = document_signals(scored, facts, plan, options)
    if options.page_pooling > 0:
        scored = pool_pages(scored, facts, options.page_pooling)
    if options.page_repeat_penalty > 0:
        scored = spread_pages(scored, facts, options.page_repeat_penalty)
    return scored


def signals_apply(plan: QueryPlan, options: RetrievalOptions) -> bool:
    """Whether a hybrid search's document signals have anything to add: they are boosts on the convex
    scale (see ``document_signals``), and each needs its option on and, but for names, a question about it."""
    return options.fusion == "convex" and bool(
        (options.statement_boost and plan.statements) or (options.opening_boost and plan.opening) or options.name_boost
    )


def needs_facts(mode: SearchMode, plan: QueryPlan, options: RetrievalOptions) -> bool:
    """Whether ``rank_chunks`` will read ``ChunkFacts`` (so a caller builds them only then)."""
    return mode == "hybrid" and (
        signals_apply(plan, options) or options.page_pooling > 0 or options.page_repeat_penalty > 0
        or (options.name_routing and bool(plan.names))
    )


def reciprocal_rank_fusion(
    rankings: Sequence[Ranking], k: int = 60, weights: Sequence[float] | None = None
) -> Ranking:
    """score(d) = sum over rankings of w / (k + rank(d)), rank from 1 (Cormack et al., 2009)."""
    weights = weights or [1.0] * len(rankings)
    fused: dict[int, float] = {}
    for ranking, weight in zip(rankings, weights, strict=True):
        for rank, (chunk_id, _score) in enumerate(ranking, start=1):
            fused[chunk_id] = fused.get(chunk_id, 0.0) + weight / (k + rank)
    return sorted(fused.items(), key=lambda item: (-item[1], item[0]))


def convex_fusion(dense: Ranking, lexical: Ranking, dense_weight: float, lexical_weight: float) -> Ranking:
    """w_d * cosine + w_l * BM25 / (this query's best BM25); missing from a list counts 0."""
    top = max((s for _, s in lexical), default=0.0) or 1.0
    fused: dict[int, float] = {}
    for chunk_id, score in dense:
        fused[chunk_id] = dense_weight * score
    for chunk_id, score in lexical:
        fused[chunk_id] = fused.get(chunk_id, 0.0) + lexical_weight * score / top
    return sorted(fused.items(), key=lambda item: (-item[1], item[0]))


def fuse(dense: Ranking, lexical: Ranking, options: RetrievalOptions) -> Ranking:
    if options.fusion == "convex":
        return convex_fusion(dense, lexical, options.dense_weight, options.lexical_weight)
    return reciprocal_rank_fusion([dense, lexical], options.rrf_k, [options.dense_weight, options.lexical_weight])


def mmr(ranking: Ranking, vectors: dict[int, np.ndarray], k: int, lam: float) -> Ranking:
    """Maximal marginal relevance (Carbonell & Goldstein, 1998) over the fused order.

    Relevance is the fused score rescaled to [0, 1]; redundancy is the highest cosine to a chunk already
    chosen. Each step picks argmax lam * relevance - (1 - lam) * redundancy."""
    if lam >= 1.0 or len(ranking) <= 1:
        return ranking[:k]
    scores = np.asarray([s for _, s in ranking], dtype=np.float32)
    span = float(scores.max() - scores.min()) or 1.0
    relevance = (scores - scores.min()) / span
    chosen: list[int] = []
    redundancy = np.zeros(len(ranking), dtype=np.float32)
    matrix = np.stack([vectors[cid] for cid, _ in ranking])
    available = np.ones(len(ranking), dtype=bool)
    for _ in range(min(k, len(ranking))):
        value = np.where(available, lam * relevance - (1 - lam) * redundancy, -np.inf)
        best = int(np.argmax(value))
        chosen.append(best)
        available[best] = False
        redundancy = np.maximum(redundancy, matrix @ matrix[best])
    return [ranking[i] for i in chosen]


class RerankerError(RuntimeError):
    pass


@lru_cache(maxsize=2)
def _cross_encoder(path: str):
    from sentence_transformers import CrossEncoder

    return CrossEncoder(path, local_files_only=True)


def rerank(query: str, ranking: Ranking, texts: dict[int, str], model_path: str, depth: int) -> Ranking:
    """The first ``depth`` hits re-ordered by a local cross-encoder's score; the rest keep their order."""
    folder = Path(model_path).expanduser()
    if not (folder / "config.json").is_file():
        raise RerankerError(
            f"retrieval.reranker: {model_path!r} is not a local cross-encoder folder (Docket never downloads "
            "models); set it to a folder with the model files, or leave it empty"
        )
    head, tail = ranking[:depth], ranking[depth:]
    if not head:
        return ranking
    scores = _cross_encoder(str(folder)).predict([(query, texts[cid]) for cid, _ in head], show_progress_bar=False)
    order = np.argsort(-np.asarray(scores), kind="stable")
    return [(head[i][0], float(scores[i])) for i in order] + tail
