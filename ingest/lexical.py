"""BM25 beside FAISS, over the same live chunks (bm25s, built from the registry's text).

Tokenisation keeps numbers ("1,577", "10.2", "2018"), section numbers and defined terms, lowercases, and
splits CJK text into single characters (Japanese has no spaces; character unigrams are a robust choice
for BM25 without a dictionary).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field

import bm25s
import numpy as np

logging.getLogger("bm25s").setLevel(logging.WARNING)  # it logs every index build at DEBUG

# Words with inner apostrophes/hyphens, numbers with separators, or one CJK character each.
_TOKEN = re.compile(
    r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]"  # kana and CJK ideographs, one by one
    r"|\d+(?:[.,]\d+)*%?"  # 1,577  10.2  12%
    r"|[^\W\d_]+(?:['’-][^\W\d_]+)*",  # words
    re.UNICODE,
)
_STOPWORDS = frozenset(
    "a an and are as at be by for from has have in is it its of on or that the this to was were will with "
    "what which who whom how when where does did do shall".split()
)


def tokenize(text: str) -> list[str]:
    tokens = [t.lower().replace(",", "") for t in _TOKEN.findall(text)]
    return [t for t in tokens if t not in _STOPWORDS]


@dataclass
class LexicalIndex:
    ids: list[int] = field(default_factory=list)
    _bm25: bm25s.BM25 | None = None

    @classmethod
    def build(cls, ids: list[int], texts: list[str]) -> LexicalIndex:
        index = cls(ids=list(ids))
        if ids:
            corpus = [tokenize(t) or ["\u2205"] for t in texts]  # bm25s wants no empty documents
            index._bm25 = bm25s.BM25()
            index._bm25.index(corpus, show_progress=False)
        return index

    def search(self, query: str, k: int, allowed_ids: set[int] | None = None) -> list[tuple[int, float]]:
        if self._bm25 is None or k <= 0:
            return []
        terms = tokenize(query)
        if not terms:
            return []
        scores = self._bm25.get_scores(terms)
        if allowed_ids is not None:
            mask = np.fromiter((i in allowed_ids for i in self.ids), dtype=bool, count=len(self.ids))
            scores = np.where(mask, scores, 0.0)
        top = np.argsort(-scores)[:k]
        return [(self.ids[i], float(scores[i])) for i in top if scores[i] > 0]
