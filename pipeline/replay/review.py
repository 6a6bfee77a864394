"""Review cells replayed: one cell on its frozen index, or every cell of a review into a new review.

A cell is its ``review_finding`` entry, which carries the cell's whole answer record, so replaying a cell
is replaying that entry (``pipeline.replay.runner``), plus the verdict the same judge gives the replayed
answer. A whole review replays each of its cells frozen into a new review (its own ``review_started``
entry says which review it replays), so ``docket review diff OLD NEW`` shows which verdicts moved. A
review against today's corpus is a new run (`docket review run CHECKLIST --new`), not a replay.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from typing import Any

from pipeline.app import Docket
from pipeline.records import AnswerRecord
from pipeline.replay.runner import Against, ReplayReport, replay_entry
from pipeline.review.checklist import Checklist
from pipeline.review.runner import COMPLETED_EVENT, STARTED_EVENT, record_finding, review_state
from pipeline.review.state import Cell, Review, utc_now
from pipeline.review.verdicts import judge


def find_cell(review: Review, item: str, doc: str) -> Cell:
    """The cell of checklist item ``item`` and the review document ``doc`` (name, registry id or SHA-256
    prefix); LookupError naming what is there otherwise."""
    items = [i["id"] for i in review.checklist["items"]]
    if item not in items:
        raise LookupError(f"--item {item}: review {review.id} has no such item (its items: {', '.join(items)})")
    ready = review.ready_documents
    matches = [d for d in ready if doc in (d.name, str(d.document_id)) or (len(doc) >= 6 and (d.sha256 or "").startswith(doc.lower()))]
    if not matches:
        names = ", ".join(d.name for d in ready)
        raise LookupError(f"--doc {doc}: review {review.id} reviewed no such document (it reviewed: {names})")
    if len(matches) > 1:
        raise LookupError(f"--doc {doc}: matches {len(matches)} documents of review {review.id}; use more of its SHA-256")
    cell = review.cells.get((item, matches[0].sha256))
    if cell is None:
        raise LookupError(f"review {review.id} has no recorded cell for {item} × {matches[0].name} (not run, or the "
                          "item does not apply to it)")
    return cell


def replay_cell(docket: Docket, review_ref: str, item: str, doc: str, against: Against = "frozen") -> ReplayReport:
    state = review_state(docket)
    try:
        review = state.load(review_ref)
    finally:
        state.close()
    return replay_entry(docket, find_cell(review, item, doc).audit_seq, against)


@dataclass
class ReviewReplay:
    old: Review
    new: Review
    reports: list[tuple[Cell, ReplayReport]]

    def outcomes(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for _, report in self.reports:
            counts[report.outcome] = counts.get(report.outcome, 0) + 1
        return counts

    def to_dict(self) -> dict[str, Any]:
        return {
            "replays_review": self.old.id, "review_id": self.new.id, "outcomes": self.outcomes(),
            "cells": [{"item_id": cell.item_id, "doc_sha256": cell.doc_sha256, "replays_seq": cell.audit_seq,
                       "replay_seq": report.audit_seq, "outcome": report.outcome,
                       "verdict": report.verdict} for cell, report in self.reports],
        }


def replay_review(docket: Docket, review_ref: str) -> ReviewReplay:
    """Every cell of the review replayed frozen, recorded as the cells of a new review."""
    s = docket.settings
    state = review_state(docket)
    try:
        old = state.load(review_ref)
        new = Review(
            id=uuid.uuid4().hex[:12],
            # Never the key of a run: `docket review run` must not continue a replay as if it were its own.
            resume_key=hashlib.sha256(f"replay of {old.id} at {utc_now()}".encode()).hexdigest(),
            checklist=old.checklist, checklist_sha256=old.checklist_sha256, collection=old.collection,
            reasoner=old.reasoner, model=old.model, config_hash=old.config_hash, index_generation=old.index_generation,
            created_at=utc_now(), created_by=s.actor, started_seq=0, documents=list(old.documents),
        )
        started = docket.audit.append(
            STARTED_EVENT,
            {"review_id": new.id, "replays_review": old.id, "against": "frozen", "checklist": new.checklist,
             "checklist_sha256": new.checklist_sha256, "collection": new.collection, "reasoner": new.reasoner,
             "model": new.model, "config_hash": new.config_hash, "index_generation": new.index_generation,
             "documents": [d.__dict__ for d in new.documents]},
            actor=s.actor, request_id=new.id, status="started",
            subjects=[f"review:{new.id}", f"review:{old.id}", *sorted({d.sha256 for d in new.documents if d.sha256})],
        )
        new.started_seq = started.seq
        state.create(new)
        checklist = Checklist.model_validate(old.checklist)
        reports = []
        for cell in sorted(old.cells.values(), key=lambda c: c.audit_seq):
            report = replay_entry(docket, cell.audit_seq, "frozen")
            record_finding(docket, state, new, _finding(cell, report, checklist, new))
            reports.append((cell, report))
        _complete(docket, state, new, old)
        return ReviewReplay(old, state.load(new.id), reports)
    finally:
        state.close()


def _finding(cell: Cell, report: ReplayReport, checklist: Checklist, new: Review) -> dict[str, Any]:
    """The replayed cell as a finding of the new review (the fields ``pipeline.review.runner`` writes)."""
    old = cell.finding.to_payload()
    keep = ("item_id", "item_title", "severity", "requirement", "question", "document", "reasoner", "model")
    base = {"review_id": new.id, **{k: old.get(k) for k in keep}, "replays_seq": cell.audit_seq,
            "replay_seq": report.audit_seq, "replay_outcome": report.outcome}
    if report.replayed is None:  # something it needs is gone: the cell is not judged on a substitute
        missing = "; ".join(m["detail"] for m in report.to_dict()["missing"]) or "nothing to replay"
        return {**base, "verdict": "needs-review", "basis": f"not replayed: {missing}", "confidence": "0.00",
                "rationale": "", "citations": [], "grounding": {}, "failed": True, "error": missing}
    record = AnswerRecord.model_validate(report.replayed)
    judgement = judge(record, old.get("reasoner") or record.reasoner, checklist.item(cell.item_id))
    return {
        **base, "verdict": judgement.verdict, "basis": judgement.basis, "confidence": f"{judgement.confidence:.2f}",
        "rationale": judgement.rationale, "citations": judgement.citations, "grounding": judgement.grounding,
        "failed": record.status in ("error", "incomplete"), "error": record.error, "answer": record.answer,
        "trace": record.trace, "trace_format": record.trace_format, "answer_record": report.replayed,
        "status": record.status, "index_generation": record.retrieval.index_generation,
    }


def _complete(docket: Docket, state, new: Review, old: Review) -> None:
    """The new review's summary entry and a signed checkpoint, as a completed run has."""
    s = docket.settings
    review = state.load(new.id)
    counts: dict[str, int] = {}
    for cell in review.cells.values():
        counts[cell.verdict] = counts.get(cell.verdict, 0) + 1
    docket.audit.append(
        COMPLETED_EVENT,
        {"review_id": new.id, "replays_review": old.id, "cells": len(review.cells), "verdicts": counts,
         "failed_cells": sum(c.failed for c in review.cells.values()),
         "failed_documents": [{"name": d.name, "error": d.error} for d in review.documents if d.status == "failed"],
         "finding_seqs": sorted(c.audit_seq for c in review.cells.values())},
        actor=s.actor, request_id=new.id, subjects=[f"review:{new.id}"], status="completed",
    )
    path = s.home / "checkpoints" / f"review-{new.id}.json"
    checkpoint = docket.audit.checkpoint(path, actor=s.actor)
    state.complete(new.id, {**checkpoint, "file": str(path)})
