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

Then, optionally: a cross-encoder reranks the first ``rerank_candidates`` (a local model folder; none ships
with Docket), MMR re-orders for diversity (``mmr_lambda`` < 1), and the store widens each hit to its
``neighbours`` adjacent chunks on the same page.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import numpy as np

Ranking = list[tuple[int, float]]
Fusion = Literal["rrf", "convex"]


@dataclass(frozen=True)
class RetrievalOptions:
    fusion: Fusion = "convex"
    rrf_k: int = 60
    dense_weight: float = 1.0
    lexical_weight: float = 1.0
    candidates: int = 50  # hits taken from each retriever before fusion
    query_analysis: bool = True  # content/instruction split, statement names, glossary (ingest.query)
    mmr_lambda: float = 1.0  # 1.0 = relevance only; lower trades relevance for diversity
    neighbours: int = 0  # adjacent chunks (each side, same page) merged into each hit
    reranker: str | None = None  # local cross-encoder folder; None = no reranking
    rerank_candidates: int = 20

    @classmethod
    def from_settings(cls, section: Any) -> RetrievalOptions:
        """Options from a settings section (pydantic model or mapping): the fields of the same names."""
        data = section.model_dump() if hasattr(section, "model_dump") else dict(section)
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


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
