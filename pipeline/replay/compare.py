"""A replayed answer beside its original: the evidence rank by rank, and the texts as word diffs.

Evidence is the same when, at every rank, the chunk id, the document's SHA-256 and the text's SHA-256
are equal and the score is within ``SCORE_TOLERANCE``. Scores are compared within a tolerance, not
bit for bit, because the question is embedded again: the same encoder on the same machine gives the same
vector, but ONNX Runtime and BLAS may sum in another order on another machine or thread count, which
moves a cosine in its seventh digit. Ids, hashes and ranks are compared exactly.
"""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass
from typing import Any

SCORE_TOLERANCE = 1e-6
_WORDS = re.compile(r"\s+|[^\s]+")


@dataclass(frozen=True)
class EvidenceRow:
    rank: int
    recorded: dict[str, Any] | None  # chunk_id, doc_sha256, doc_name, page, text_sha256, score
    replayed: dict[str, Any] | None
    score_delta: float | None

    @property
    def same(self) -> bool:
        if self.recorded is None or self.replayed is None:
            return False
        keys = ("chunk_id", "doc_sha256", "text_sha256")
        return all(self.recorded[k] == self.replayed[k] for k in keys) and abs(self.score_delta or 0.0) <= SCORE_TOLERANCE

    def to_dict(self) -> dict[str, Any]:
        return {"rank": self.rank, "same": self.same, "recorded": self.recorded, "replayed": self.replayed,
                "score_delta": None if self.score_delta is None else repr(self.score_delta)}


@dataclass(frozen=True)
class EvidenceComparison:
    rows: list[EvidenceRow]

    @property
    def same(self) -> bool:
        return all(row.same for row in self.rows)

    @property
    def max_score_delta(self) -> float:
        return max((abs(r.score_delta) for r in self.rows if r.score_delta is not None), default=0.0)

    def to_dict(self) -> dict[str, Any]:
        return {"same": self.same, "tolerance": repr(SCORE_TOLERANCE), "max_score_delta": repr(self.max_score_delta),
                "rows": [r.to_dict() for r in self.rows]}


def _evidence_key(e: dict[str, Any]) -> dict[str, Any]:
    return {"chunk_id": int(e["chunk_id"]), "doc_sha256": e["doc_sha256"], "doc_name": e["doc_name"],
            "page": int(e["page"]), "text_sha256": e["text_sha256"], "score": float(e["score"])}


def compare_evidence(recorded: list[dict[str, Any]], replayed: list[dict[str, Any]]) -> EvidenceComparison:
    """Both lists in payload form (scores may be strings, as the log keeps them)."""
    rows = []
    for rank in range(1, max(len(recorded), len(replayed)) + 1):
        a = _evidence_key(recorded[rank - 1]) if rank <= len(recorded) else None
        b = _evidence_key(replayed[rank - 1]) if rank <= len(replayed) else None
        delta = b["score"] - a["score"] if a and b else None
        rows.append(EvidenceRow(rank, a, b, delta))
    return EvidenceComparison(rows)


# -- texts ------------------------------------------------------------------------------------------------

Op = tuple[str, str]  # ("=", text) unchanged, ("-", text) only in the original, ("+", text) only in the replay


def word_diff(a: str, b: str) -> list[Op]:
    """``a`` to ``b`` word by word (whitespace kept), as runs of unchanged, removed and added text."""
    left, right = _WORDS.findall(a), _WORDS.findall(b)
    ops: list[Op] = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, left, right, autojunk=False).get_opcodes():
        if tag == "equal":
            ops.append(("=", "".join(left[i1:i2])))
            continue
        if i2 > i1:
            ops.append(("-", "".join(left[i1:i2])))
        if j2 > j1:
            ops.append(("+", "".join(right[j1:j2])))
    return ops


def render_word_diff(ops: list[Op]) -> str:
    """git's --word-diff=plain form: [-removed-]{+added+}."""
    marks = {"=": "{}", "-": "[-{}-]", "+": "{{+{}+}}"}
    return "".join(marks[op].format(text) for op, text in ops)


@dataclass(frozen=True)
class TextChange:
    field: str
    recorded: str
    replayed: str

    @property
    def same(self) -> bool:
        return self.recorded == self.replayed

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"field": self.field, "same": self.same}
        if not self.same:
            out["diff"] = [list(op) for op in word_diff(self.recorded, self.replayed)]
        return out


# The fields whose change is a changed answer; the trace is shown as a diff too, but a language model's
# thinking differs between calls even when its answer does not, so it does not by itself change the outcome.
ANSWER_FIELDS = ("status", "answer", "withheld_answer", "citations", "grounding", "error")
SHOWN_FIELDS = (*ANSWER_FIELDS, "trace")


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def compare_texts(recorded: dict[str, Any], replayed: dict[str, Any]) -> list[TextChange]:
    """The answer's fields, original against replay; both in payload form."""
    return [TextChange(name, _text(recorded.get(name)), _text(replayed.get(name))) for name in SHOWN_FIELDS]
