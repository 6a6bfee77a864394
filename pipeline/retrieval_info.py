"""How an answer's passages were found: ``AnswerRecord.retrieval`` and ``AnswerRecord.document_filter``, typed.

``RetrievalInfo``: the retrieval settings in force (``pipeline.settings.RetrievalSettings``, the same
names), the top-k asked for, the encoder that embedded the question and the index generation searched.
``DocumentFilterInfo``: the --type/--since/--until filters as given. The rest of the search's scope is
the record's own fields (``collection``, ``documents``, ``searched_document_ids``), the scores each
passage's (``evidence``).

In the log the weights are text (it keeps no floats; ``records.floats_to_strings``); they read back as
floats. A payload from an older Docket may lack a setting added since, or hold one removed since: the
first reads as None and is not written back, the second is kept as it was (``PayloadModel``).
"""

from __future__ import annotations

from pipeline.payload_model import PayloadModel


class RetrievalInfo(PayloadModel):
    top_k: int | None = None
    mode: str | None = None  # hybrid | dense | bm25
    fusion: str | None = None  # convex | rrf
    dense_weight: float | None = None
    lexical_weight: float | None = None
    rrf_k: int | None = None
    candidates: int | None = None
    query_analysis: bool | None = None
    query_expansion: bool | None = None
    mmr_lambda: float | None = None
    neighbours: int | None = None
    reranker: str | None = None
    rerank_candidates: int | None = None
    statement_boost: float | None = None
    opening_boost: float | None = None
    name_boost: float | None = None
    page_pooling: float | None = None
    page_repeat_penalty: float | None = None
    name_routing: bool | None = None
    embedding_model: str | None = None
    embedding_backend: str | None = None
    index_generation: int | None = None


class DocumentFilterInfo(PayloadModel):
    """The document filters as given; a filter not given is absent (``{}`` when none was)."""

    types: list[str] = []  # any of these document types
    since: str | None = None  # ISO date: documents dated on or after
    until: str | None = None  # ISO date: documents dated on or before
