"""Compare two reviews cell by cell: which verdicts changed, and against which document versions.

Cells are matched by (item id, document); a document is the same document across reviews when it
has the same registry id (a re-ingested file keeps its id and gets a new version), else the same name.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

from pipeline.review.state import Cell, Review, ReviewDocument

Change = Literal["same", "changed", "only-a", "only-b"]


@dataclass(frozen=True)
class CellChange:
    item_id: str
    document: str
    change: Change
    verdict_a: str | None
    verdict_b: str | None
    sha256_a: str | None
    sha256_b: str | None
    seq_a: int | None
    seq_b: int | None

    @property
    def document_changed(self) -> bool:
        return bool(self.sha256_a and self.sha256_b and self.sha256_a != self.sha256_b)


@dataclass(frozen=True)
class ReviewDiff:
    a: str
    b: str
    context: dict[str, Any]  # checklist, reasoner, index generation of each side
    cells: list[CellChange]

    def counts(self) -> dict[str, int]:
        out = {"same": 0, "changed": 0, "only-a": 0, "only-b": 0}
        for c in self.cells:
            out[c.change] += 1
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"a": self.a, "b": self.b, "context": self.context, "counts": self.counts(),
                "cells": [{**asdict(c), "document_changed": c.document_changed} for c in self.cells]}


def diff_reviews(a: Review, b: Review) -> ReviewDiff:
    left, right = _by_key(a), _by_key(b)
    changes = []
    for key in list(left) + [k for k in right if k not in left]:
        (doc_a, cell_a), (doc_b, cell_b) = left.get(key, (None, None)), right.get(key, (None, None))
        if cell_a and cell_b:
            change: Change = "same" if cell_a.verdict == cell_b.verdict else "changed"
        else:
            change = "only-a" if cell_a else "only-b"
        changes.append(CellChange(
            item_id=key[0], document=(doc_a or doc_b).name, change=change,  # type: ignore[union-attr]
            verdict_a=cell_a.verdict if cell_a else None, verdict_b=cell_b.verdict if cell_b else None,
            sha256_a=doc_a.sha256 if doc_a else None, sha256_b=doc_b.sha256 if doc_b else None,
            seq_a=cell_a.audit_seq if cell_a else None, seq_b=cell_b.audit_seq if cell_b else None,
        ))
    context = {
        side: {"checklist": r.checklist["name"], "checklist_sha256": r.checklist_sha256, "reasoner": r.reasoner,
               "model": r.model, "index_generation": r.index_generation, "created_at": r.created_at}
        for side, r in (("a", a), ("b", b))
    }
    return ReviewDiff(a.id, b.id, context, changes)


def _by_key(review: Review) -> dict[tuple[str, str], tuple[ReviewDocument, Cell]]:
    out = {}
    for doc in review.ready_documents:
        identity = f"id:{doc.document_id}" if doc.document_id is not None else f"name:{doc.name}"
        for item in review.checklist["items"]:
            cell = review.cells.get((item["id"], doc.sha256))
            if cell is not None:
                out[(item["id"], identity)] = (doc, cell)
    return out
