"""BM25 beside FAISS, over the same live chunks (bm25s, built from the registry's context + text).

Tokenisation, the same for chunks and questions:

- English words are lowercased and stemmed (Snowball, PyStemmer), so "flows" meets "Flow s" and
  "terminated" meets "termination"; a few function words are dropped.
- Numbers keep their decimals and lose thousands separators ("1,577" -> "1577", "10.2", "12%"), so the
  figures of a table match the figures of a question; section numbers stay whole ("12.3").
- Mixed tokens stay whole and also yield their parts: "FY2018" -> "fy2018", "fy", "2018"; "PP&E" ->
  "pp&e", "pp", "e"; "10-K" -> "10-k", "10", "k"; "non-compete" -> "non-compet", "non", "compet".
  A defined term ("Effective Date") is its words; capitals carry no meaning for BM25.
- Japanese and Chinese have no spaces: a run of kana/kanji becomes overlapping character bigrams (the
  usual dictionary-free choice for CJK search; a one-character run stays a unigram).

Queries may weight their terms (see ``ingest.query``): a question's instructions count less than its
content words.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache

import bm25s
import numpy as np
import Stemmer

logging.getLogger("bm25s").setLevel(logging.WARNING)  # it logs every index build at DEBUG

_CJK = r"\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff66-\uff9f"
_TOKEN = re.compile(
    rf"(?P<cjk>[{_CJK}]+)"
    r"|(?P<number>\d+(?:[.,]\d+)*%?)(?![^\W_]|[&\-][^\W_])"  # 1,577  10.2  12%  12.3 (not the 10 of "10-K" or "2018a")
    rf"|(?P<word>[^\W_{_CJK}]+(?:[&'’\-./][^\W_{_CJK}]+)*)",  # words, FY2018, PP&E, 10-K, U.S.
    re.UNICODE,
)
_PART = re.compile(r"\d+|[^\W\d_]+")
_STOPWORDS = frozenset(
    "a an and are as at be by for from has have in is it its of on or that the this to was were will with "
    "what which who whom how when where does did do shall".split()
)
_stemmer = Stemmer.Stemmer("english")


@lru_cache(maxsize=200_000)
def _stem(word: str) -> str:
    return _stemmer.stemWord(word) if word.isalpha() else word


def _word_tokens(word: str) -> list[str]:
    word = re.sub(r"'s$", "", word.lower().replace("’", "'"))  # the company's -> company
    parts = _PART.findall(word)
    if len(parts) <= 1:
        return [] if word in _STOPWORDS else [_stem(word.replace("'", ""))]
    whole = "".join(_stem(p) if p.isalpha() else p for p in re.split(r"(\W)", word))
    return [whole] + [_stem(p) for p in parts if p not in _STOPWORDS]


def tokenize(text: str) -> list[str]:
    """BM25 terms of ``text`` (see the module docstring)."""
    tokens: list[str] = []
    for match in _TOKEN.finditer(text):
        kind, value = match.lastgroup, match.group()
        if kind == "cjk":
            tokens.extend([value] if len(value) == 1 else [value[i : i + 2] for i in range(len(value) - 1)])
        elif kind == "number":
            tokens.append(value.replace(",", ""))
        else:
            tokens.extend(_word_tokens(value))
    return tokens


@dataclass
class LexicalIndex:
    ids: list[int] = field(default_factory=list)
    _bm25: bm25s.BM25 | None = None
    _id_array: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    _position: dict[int, int] = field(default_factory=dict)  # chunk id -> row, built on first use

    @classmethod
    def build(cls, ids: list[int], texts: list[str]) -> LexicalIndex:
        index = cls(ids=list(ids), _id_array=np.asarray(ids, dtype=np.int64))
        if ids:
            corpus = [tokenize(t) or ["\u2205"] for t in texts]  # bm25s wants no empty documents
            index._bm25 = bm25s.BM25()
            index._bm25.index(corpus, show_progress=False)
        return index

    def scores(
        self, query: str | Mapping[str, float], allowed_ids: set[int] | list[int] | None = None
    ) -> np.ndarray | None:
        """BM25 score of every indexed chunk (aligned with ``ids``; 0 outside ``allowed_ids``), or None
        when no query term is in the index. ``query`` is text or {term: weight} (terms from ``tokenize``)."""
        if self._bm25 is None:
            return None
        weights = Counter(tokenize(query)) if isinstance(query, str) else query
        vocab = self._bm25.vocab_dict
        known = {vocab[t]: w for t, w in weights.items() if t in vocab and w > 0}
        if not known:
            return None
        mask = None
        if allowed_ids is not None:
            mask = np.isin(self._id_array, np.fromiter(allowed_ids, dtype=np.int64)).astype(np.float32)
        scores = np.zeros(len(self.ids), dtype=np.float32)
        for token_id, weight in known.items():
            scores += weight * self._bm25.get_scores_from_ids([token_id], weight_mask=mask)
        return scores

    def top(self, scores: np.ndarray | None, k: int) -> list[tuple[int, float]]:
        if scores is None or k <= 0:
            return []
        k = min(k, len(scores))
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top], kind="stable")]
        return [(self.ids[i], float(scores[i])) for i in top if scores[i] > 0]

    def score_of(self, scores: np.ndarray | None, chunk_ids: list[int]) -> list[tuple[int, float]]:
        """(chunk id, score) for given chunks: completes a fusion for chunks BM25 did not rank."""
        if scores is None:
            return [(cid, 0.0) for cid in chunk_ids]
        if len(self._position) != len(self.ids):
            self._position = {cid: i for i, cid in enumerate(self.ids)}
        return [(cid, float(scores[self._position[cid]]) if cid in self._position else 0.0) for cid in chunk_ids]

    def search(
        self, query: str | Mapping[str, float], k: int, allowed_ids: set[int] | list[int] | None = None
    ) -> list[tuple[int, float]]:
        """Top-k (chunk id, BM25 score)."""
        return self.top(self.scores(query, allowed_ids), k)
