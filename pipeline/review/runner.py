"""Run a checklist over documents: one cell per (item, document), each judged and recorded.

A cell is asked with retrieval restricted to its document (through ``ask``, which records the call
as an ``answer`` entry), judged (``verdicts.judge``), then recorded as one ``review_finding`` audit
entry and one ``review_cells`` row. Cells run on a thread pool bounded by ``llm.concurrency``, or as
tasks on a Ray cluster (``compute.engine: ray``, pipeline/compute/review.py); the main thread alone
records them, so the order of writes is simple: audit entry first (the record of truth), then the row.
A run killed between the two is repaired on the next run from the audit log.
Running the same review again continues it; ``force`` redoes its cells.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ingest.extract import SUPPORTED_SUFFIXES
from pipeline.app import Docket
from pipeline.ask import AskOptions, ask
from pipeline.documents import ingest_documents
from pipeline.records import floats_to_strings
from pipeline.review.checklist import Checklist, ChecklistItem
from pipeline.review.errors import ReviewError
from pipeline.review.findings import FindingDocument, ReviewFinding, read_finding
from pipeline.review.state import Cell, Review, ReviewDocument, ReviewState, utc_now
from pipeline.review.verdicts import Judgement, judge, review_question

FINDING_EVENT = "review_finding"
STARTED_EVENT = "review_started"
COMPLETED_EVENT = "review_completed"


class ReviewInterrupted(Exception):
    def __init__(self, review_id: str, done: int, total: int):
        self.review_id, self.done, self.total = review_id, done, total
        super().__init__(
            f"review {review_id} interrupted with {done} of {total} cells recorded; "
            "run the same command again to continue"
        )


@dataclass
class RunHooks:
    """Progress callbacks (the CLI draws a progress bar from them)."""

    on_plan: Callable[[Review, int, int], None] | None = None  # (review, cells to run, cells already done)
    on_cell: Callable[[Cell, str], None] | None = None  # (recorded cell, document name)


# Evaluates cells, in any order and wherever it likes, handing each finding to ``record`` (on the calling
# thread) as it completes; returns when every cell is recorded. Arguments: (docket, review, cells, workers,
# record). ``evaluate_on_threads`` is the local one; ``pipeline.compute.review.evaluate_on_ray`` the Ray one.
CellExecutor = Callable[
    [Docket, "Review", list[tuple[ChecklistItem, ReviewDocument]], int, Callable[[ReviewFinding], None]], None
]


@dataclass
class RunOutcome:
    review: Review
    ran: int  # cells evaluated in this run
    restored: int  # cells found in the audit log but missing from the state tables
    resumed: bool


def review_state(docket: Docket) -> ReviewState:
    return ReviewState(docket.settings.resolved_registry_url)


def run_review(
    docket: Docket,
    checklist: Checklist,
    *,
    collection: str | None = None,
    documents: Sequence[str] = (),
    force: bool = False,
    new: bool = False,
    concurrency: int | None = None,
    hooks: RunHooks | None = None,
) -> RunOutcome:
    """Run (or continue) the review of ``checklist`` over ``documents`` (refs or file paths) or a collection."""
    hooks = hooks or RunHooks()
    s = docket.settings
    collection = collection or s.collection
    targets = resolve_targets(docket, collection, documents)
    ready = [d for d in targets if d.status == "ready"]
    if not ready:
        failures = "; ".join(d.error or d.name for d in targets)
        raise ReviewError(
            f"no documents to review in collection {collection!r}"
            + (f" ({failures})" if failures else "; run `docket ingest PATH` first")
        )
    state = review_state(docket)
    try:
        key = resume_key(checklist, collection, ready, docket)
        existing = None if new else state.find_resumable(key)
        if existing is None:
            review = _start(docket, state, checklist, collection, targets, key)
        else:
            review = state.load(existing)
        restored = restore_from_audit(docket, state, review)
        review = state.load(review.id)
        return _execute(docket, state, review, checklist, force, concurrency, hooks, restored, existing is not None)
    finally:
        state.close()


def resolve_targets(docket: Docket, collection: str, refs: Sequence[str]) -> list[ReviewDocument]:
    """The documents to review. A ref that is a file path is ingested first; one that fails to
    ingest (or names no document) is reported as a failed document, and the others go on."""
    store = docket.store
    if not refs:
        found = store.documents(collection)
        return [_ready(i, doc) for i, doc in enumerate(found)]
    out: list[ReviewDocument] = []
    for position, ref in enumerate(refs):
        path = Path(ref).expanduser()
        try:
            # A document name ends in .pdf too: only an existing file or a path with a folder is a path.
            if path.is_file() or (len(path.parts) > 1 and path.suffix.lower() in SUPPORTED_SUFFIXES):
                result = ingest_documents(docket, [path], collection).results[0]  # recorded in the audit log
                if result.outcome == "failed":
                    out.append(ReviewDocument(position, path.name, "failed", error=f"failed to ingest: {result.error}"))
                    continue
                ref = str(result.document_id)
            out.append(_ready(position, store.resolve(ref, collection)))
        except LookupError as exc:
            out.append(ReviewDocument(position, ref, "failed", error=str(exc).strip("'\"")))
    return out


def _ready(position: int, doc) -> ReviewDocument:
    current = [v for v in doc.versions if v.status == "current"]
    if not current:
        return ReviewDocument(position, doc.name, "failed", document_id=doc.id,
                              error=f"{doc.name}: removed from the live index; re-ingest it to review it")
    version = current[-1]
    return ReviewDocument(position, doc.name, "ready", doc.id, version.sha256, version.version)


def resume_key(checklist: Checklist, collection: str, ready: list[ReviewDocument], docket: Docket) -> str:
    """Same checklist, documents (by content) and reasoner: the same review, so it is continued."""
    s = docket.settings
    model = s.llm.model if s.reasoner == "magistral" else None
    blob = json.dumps([checklist.fingerprint(), collection, sorted(d.sha256 for d in ready), s.reasoner, model])
    return hashlib.sha256(blob.encode()).hexdigest()


def _start(docket: Docket, state: ReviewState, checklist: Checklist, collection: str,
           targets: list[ReviewDocument], key: str) -> Review:
    s = docket.settings
    review = Review(
        id=uuid.uuid4().hex[:12],
        resume_key=key,
        checklist=checklist.model_dump(mode="json"),
        checklist_sha256=checklist.fingerprint(),
        collection=collection,
        reasoner=s.reasoner,
        model=s.llm.model if s.reasoner == "magistral" else None,
        config_hash=s.config_hash(),
        index_generation=docket.store.generation(),
        created_at=utc_now(),
        created_by=s.actor,
        started_seq=0,
        documents=targets,
    )
    payload = {
        "review_id": review.id,
        "checklist": review.checklist,
        "checklist_sha256": review.checklist_sha256,
        "collection": collection,
        "reasoner": review.reasoner,
        "model": review.model,
        "config_hash": review.config_hash,
        "index_generation": review.index_generation,
        "documents": [d.__dict__ for d in targets],
    }
    appended = docket.audit.append(
        STARTED_EVENT, payload, actor=s.actor, request_id=review.id,
        subjects=[f"review:{review.id}", *sorted({d.sha256 for d in targets if d.sha256})], status="started",
    )
    review.started_seq = appended.seq
    state.create(review)
    return review


def restore_from_audit(docket: Docket, state: ReviewState, review: Review) -> int:
    """Cells the audit log holds that the state tables lack (a run killed between the two writes)."""
    restored = 0
    for entry in docket.audit.entries(event_type=FINDING_EVENT, subject=f"review:{review.id}"):
        if entry.payload is None:  # redacted: the verdict is gone with the payload
            continue
        finding = read_finding(entry.payload, f"audit entry #{entry.seq}", entry.seq)
        key = finding.key
        cell = review.cells.get(key)
        if cell is None or cell.audit_seq < entry.seq:
            restored_cell = _cell(finding, entry.seq)
            state.put_cell(review.id, restored_cell)
            review.cells[key] = restored_cell
            restored += 1
    return restored


def _execute(docket: Docket, state: ReviewState, review: Review, checklist: Checklist, force: bool,
             concurrency: int | None, hooks: RunHooks, restored: int, resumed: bool) -> RunOutcome:
    s = docket.settings
    expected = review.expected_cells()
    todo = [
        (item_id, doc) for item_id, doc in expected
        if force or (cell := review.cells.get((item_id, doc.sha256))) is None or cell.failed
    ]
    if hooks.on_plan:
        hooks.on_plan(review, len(todo), len(expected) - len(todo))
    if todo or review.completed_at is None:
        state.reopen(review.id)
    workers = (concurrency or s.llm.concurrency) if s.reasoner == "magistral" else 1
    ran = 0

    def record(finding: ReviewFinding) -> None:
        nonlocal ran
        cell = record_finding(docket, state, review, finding)
        ran += 1
        if hooks.on_cell:
            hooks.on_cell(cell, cell.finding.document.name)

    executor: CellExecutor = evaluate_on_threads
    if s.compute.engine == "ray":
        from pipeline.compute.review import evaluate_on_ray as executor
    try:
        executor(docket, review, [(checklist.item(item_id), doc) for item_id, doc in todo], workers, record)
    except KeyboardInterrupt:
        # Cells already recorded are whole; the ones in flight are dropped and redone next time.
        raise ReviewInterrupted(review.id, len(review.cells), len(expected)) from None
    final = state.load(review.id)
    if final.completed_at is None and all((i, d.sha256) in final.cells for i, d in expected):
        _complete(docket, state, final)
        final = state.load(review.id)
    return RunOutcome(final, ran, restored, resumed)


def evaluate_on_threads(docket: Docket, review: Review, cells: list[tuple[ChecklistItem, ReviewDocument]],
                        workers: int, record: Callable[[ReviewFinding], None]) -> None:
    """The local ``CellExecutor``: cells on a pool of ``workers`` threads, recorded on this one."""
    _warm_up(docket)
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="review")
    try:
        pending: set[Future] = {pool.submit(evaluate_cell, docket, review, item, doc) for item, doc in cells}
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                record(future.result())
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)  # cells in flight are dropped and redone next time
        raise
    pool.shutdown(wait=True)


def _warm_up(docket: Docket) -> None:
    """Build the lazy parts once on this thread, so the workers do not race to build them."""
    _ = docket.reasoner, docket.audit
    docket.store.vectors()
    docket.store.lexical()


def cell_failure(review: Review, item: ChecklistItem, doc: ReviewDocument, error: str) -> ReviewFinding:
    """The finding of a cell that could not be evaluated (a failed cell: redone on the next run)."""
    return _finding(_cell_base(review, item, doc), Judgement("needs-review", error, "", 0.0), failed=True, error=error)


def _cell_base(review: Review, item: ChecklistItem, doc: ReviewDocument) -> dict[str, Any]:
    return {
        "review_id": review.id,
        "item_id": item.id,
        "item_title": item.title,
        "severity": item.severity,
        "requirement": item.requirement,
        "question": review_question(item, review.reasoner),
        "document": FindingDocument(id=doc.document_id, name=doc.name, sha256=doc.sha256, version=doc.version),
        "reasoner": review.reasoner,
        "model": review.model,
    }


def evaluate_cell(docket: Docket, review: Review, item: ChecklistItem, doc: ReviewDocument) -> ReviewFinding:
    """Ask one item of one document and judge the answer; returns the finding (not yet recorded)."""
    question = review_question(item, review.reasoner)
    base = _cell_base(review, item, doc)
    if not docket.store.live_chunk_ids(review.collection, [doc.document_id]):
        error = f"{doc.name} is no longer in the live index (removed or replaced during the review)"
        return _finding(base, Judgement("needs-review", error, "", 0.0), failed=True, error=error)
    # The finding entry carries the whole answer record: one audit entry per cell.
    record = ask(docket, question, AskOptions(collection=review.collection, documents=[str(doc.document_id)], record=False))
    other = sorted({e.doc_sha256 for e in record.evidence} - {doc.sha256})
    if other:
        error = f"{doc.name} changed during the review (now {other[0][:12]}); start a new review"
        return _finding(base, Judgement("needs-review", error, "", 0.0), failed=True, error=error)
    judgement = judge(record, review.reasoner, item)
    failed = record.status in ("error", "incomplete")
    return _finding(
        base, judgement, failed=failed, error=record.error,
        answer=record.answer, trace=record.trace, trace_format=record.trace_format, answer_record=record.audit_payload(),
        status=record.status, index_generation=record.retrieval.index_generation,
        attempts=record.call.attempts,
    )


def _finding(base: dict[str, Any], judgement: Judgement, *, failed: bool, error: str | None, **extra: Any) -> ReviewFinding:
    return ReviewFinding(
        **base,
        verdict=judgement.verdict,
        basis=judgement.basis,
        confidence=f"{judgement.confidence:.2f}",
        rationale=judgement.rationale,
        citations=judgement.citations,
        grounding=judgement.grounding,
        failed=failed,
        error=error,
        **extra,
    )


def record_finding(docket: Docket, state: ReviewState, review: Review, finding: ReviewFinding | dict[str, Any]) -> Cell:
    """One ``review_finding`` audit entry, then the state row. A redone cell names the entry it supersedes.
    ``review.cells`` is kept current (only the recording thread touches it). A finding given as its payload
    (a dict) is read as one."""
    if not isinstance(finding, ReviewFinding):
        finding = ReviewFinding.from_payload(finding)
    key = finding.key
    previous = review.cells.get(key)
    finding = finding.model_copy(update={"supersedes": previous.audit_seq if previous else None, "recorded_at": utc_now()})
    appended = docket.audit.append(
        FINDING_EVENT, floats_to_strings(finding.to_payload()), actor=docket.settings.actor, request_id=review.id,
        subjects=[f"review:{review.id}", finding.document.sha256, f"item:{finding.item_id}"],
        status=finding.verdict,
    )
    cell = _cell(finding, appended.seq)
    state.put_cell(review.id, cell)
    review.cells[key] = cell
    return cell


def _cell(finding: ReviewFinding, seq: int) -> Cell:
    return Cell(
        item_id=finding.item_id, doc_sha256=finding.document.sha256, verdict=finding.verdict,
        failed=finding.failed, confidence=finding.confidence_value, audit_seq=seq, finding=finding,
    )


def _complete(docket: Docket, state: ReviewState, review: Review) -> None:
    """A summary entry, then a signed checkpoint over the log (kept in the log and in a file)."""
    s = docket.settings
    counts: dict[str, int] = {}
    for cell in review.cells.values():
        counts[cell.verdict] = counts.get(cell.verdict, 0) + 1
    docket.audit.append(
        COMPLETED_EVENT,
        {
            "review_id": review.id,
            "cells": len(review.cells),
            "verdicts": counts,
            "failed_cells": sum(c.failed for c in review.cells.values()),
            "failed_documents": [{"name": d.name, "error": d.error} for d in review.documents if d.status == "failed"],
            "finding_seqs": sorted(c.audit_seq for c in review.cells.values()),
        },
        actor=s.actor, request_id=review.id, subjects=[f"review:{review.id}"], status="completed",
    )
    path = s.home / "checkpoints" / f"review-{review.id}.json"
    checkpoint = docket.audit.checkpoint(path, actor=s.actor)
    state.complete(review.id, {**checkpoint, "file": str(path)})
