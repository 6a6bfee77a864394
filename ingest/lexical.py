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

The index is bm25s's eager one: every (term, chunk) BM25 score computed at build time and held as a
sparse matrix by term (CSC arrays: ``data``, ``indices``, ``indptr``). bm25s (and SciPy, which it imports)
is needed only to build it; scoring reads the three arrays with numpy, the same arithmetic as bm25s's
``get_scores_from_ids``. ``save`` writes the arrays and the vocabulary beside the FAISS index, under a
manifest naming the registry generation, the recipe of the indexed texts and this module's SHA-256, so
a new process loads the index instead of re-tokenising every chunk, and any change to the chunks, the
texts or the tokenisation makes the saved copy unusable (``load`` returns None and the caller rebuilds).
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import Stemmer

from ingest.files import atomic_write

INDEX_FILE = "bm25.npz"
MANIFEST_FILE = "bm25.json"
FORMAT = 1  # of the saved arrays; a saved index of another format is rebuilt

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


@lru_cache(maxsize=1)
def tokenizer_digest() -> str:
    """SHA-256 of this module's source: a saved index was tokenised by exactly this code, or is rebuilt."""
    return hashlib.sha256(Path(__file__).read_bytes()).hexdigest()


@dataclass
class LexicalIndex:
    ids: list[int] = field(default_factory=list)
    # bm25s's eager index, by term: the BM25 scores of term t are data[indptr[t]:indptr[t+1]], for the
    # chunks at rows indices[indptr[t]:indptr[t+1]].
    _vocab: dict[str, int] = field(default_factory=dict)  # term -> column
    _data: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.float32))
    _indices: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int32))
    _indptr: np.ndarray = field(default_factory=lambda: np.zeros(1, dtype=np.int64))
    _id_array: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    _position: dict[int, int] = field(default_factory=dict)  # chunk id -> row, built on first use

    @classmethod
    def build(cls, ids: list[int], texts: list[str]) -> LexicalIndex:
        index = cls(ids=list(ids), _id_array=np.asarray(ids, dtype=np.int64))
        if ids:
            import bm25s  # and SciPy: only to build; a loaded index is scored with numpy alone

            logging.getLogger("bm25s").setLevel(logging.WARNING)  # it logs every index build at DEBUG
            corpus = [tokenize(t) or ["\u2205"] for t in texts]  # bm25s wants no empty documents
            bm25 = bm25s.BM25()
            bm25.index(corpus, show_progress=False)
            # The default method (Lucene's BM25) has no score for absent terms; scores() relies on that.
            assert bm25.nonoccurrence_array is None, "a BM25 variant with non-occurrence scores"
            index._vocab = dict(bm25.vocab_dict)
            index._data = np.asarray(bm25.scores["data"], dtype=np.float32)
            index._indices = np.asarray(bm25.scores["indices"])
            index._indptr = np.asarray(bm25.scores["indptr"])
        return index

    def _term_scores(self, column: int, mask: np.ndarray | None) -> np.ndarray:
        """One term's BM25 score of every chunk: bm25s's ``get_scores_from_ids([column], weight_mask=mask)``,
        the same operations in the same order, so the same float32 values."""
        start, end = self._indptr[column], self._indptr[column + 1]
        scores = np.zeros(len(self.ids), dtype=np.float32)
        np.add.at(scores, self._indices[start:end], self._data[start:end])
        if mask is not None:
            scores *= mask
        return scores

    def scores(
        self, query: str | Mapping[str, float], allowed_ids: set[int] | list[int] | None = None
    ) -> np.ndarray | None:
        """BM25 score of every indexed chunk (aligned with ``ids``; 0 outside ``allowed_ids``), or None
        when no query term is in the index. ``query`` is text or {term: weight} (terms from ``tokenize``)."""
        if not self.ids:
            return None
        weights = Counter(tokenize(query)) if isinstance(query, str) else query
        vocab = self._vocab
        columns = len(self._indptr) - 1  # the empty term bm25s adds to the vocabulary has none
        known = {vocab[t]: w for t, w in weights.items() if t in vocab and w > 0 and vocab[t] < columns}
        if not known:
            return None
        mask = None
        if allowed_ids is not None:
            mask = np.isin(self._id_array, np.fromiter(allowed_ids, dtype=np.int64)).astype(np.float32)
        scores = np.zeros(len(self.ids), dtype=np.float32)
        for column, weight in known.items():
            scores += weight * self._term_scores(column, mask)
        return scores

    # -- persistence --------------------------------------------------------------------------------
    def save(self, directory: Path, generation: int, recipe: str) -> None:
        """Write the index and then its manifest (atomically each: a manifest never names arrays that are
        not on disk). ``recipe`` names how the caller made the texts; ``load`` must be given the same."""
        directory.mkdir(parents=True, exist_ok=True)
        terms = [""] * len(self._vocab)
        for term, column in self._vocab.items():
            terms[column] = term
        buffer = io.BytesIO()
        np.savez(
            buffer,
            ids=self._id_array,
            data=self._data,
            indices=self._indices,
            indptr=self._indptr,
            # Terms never hold a newline (tokenize splits on whitespace), so one joined string keeps them.
            terms=np.frombuffer("\n".join(terms).encode("utf-8"), dtype=np.uint8),
        )
        blob = buffer.getvalue()
        manifest = {
            "format": FORMAT,
            "generation": generation,
            "recipe": recipe,
            "tokenizer_sha256": tokenizer_digest(),
            "count": len(self.ids),
            "terms": len(terms),
            "index_sha256": hashlib.sha256(blob).hexdigest(),
        }
        atomic_write(directory / INDEX_FILE, blob)
        atomic_write(directory / MANIFEST_FILE, json.dumps(manifest, indent=2).encode())

    @classmethod
    def load(cls, directory: Path, generation: int, recipe: str) -> LexicalIndex | None:
        """The saved index if it was built at ``generation`` from texts made by ``recipe``, tokenised by
        this module, and its file matches its checksum; otherwise None (the caller rebuilds)."""
        try:
            manifest = json.loads((directory / MANIFEST_FILE).read_text())
            if not (
                isinstance(manifest, dict)
                and manifest.get("format") == FORMAT
                and manifest.get("generation") == generation
                and manifest.get("recipe") == recipe
                and manifest.get("tokenizer_sha256") == tokenizer_digest()
            ):
                return None
            blob = (directory / INDEX_FILE).read_bytes()
            if hashlib.sha256(blob).hexdigest() != manifest.get("index_sha256"):
                return None
            with np.load(io.BytesIO(blob), allow_pickle=False) as arrays:
                ids, data, indices, indptr = (arrays[k] for k in ("ids", "data", "indices", "indptr"))
                terms = arrays["terms"].tobytes().decode("utf-8").split("\n") if len(indptr) > 1 else []
        except (OSError, ValueError, KeyError, UnicodeDecodeError):
            return None
        # bm25s adds the empty term to the vocabulary after the matrix, so it may have no column.
        if len(ids) != manifest.get("count") or len(terms) != manifest.get("terms") or len(indptr) - 1 > len(terms):
            return None
        return cls(
            ids=ids.tolist(), _id_array=ids, _data=data, _indices=indices, _indptr=indptr,
            _vocab={term: column for column, term in enumerate(terms)},
        )

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
