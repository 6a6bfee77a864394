"""Reviews: start (a job), list, progress, grid, one cell, sign-off, report download.

The functions of ``docket review``: ``run_review``, ``sign_off``, ``render``. A review is the caller's to
see when they may read every document it covers; one started through the service covers documents named
by id (never a path on the server) or the collection's documents the caller may read.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from pipeline.service import identity_adapter as identity
from pipeline.service.deps import allowed, service
from pipeline.service.errors import ApiError, bad_request, not_found
from pipeline.service.routes.documents import visible_document
from pipeline.service.state import Job, Principal, ServiceState

router = APIRouter(prefix="/reviews", tags=["reviews"])
_CHECKLIST_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,80}$")
_MEDIA = {"html": "text/html; charset=utf-8", "md": "text/markdown; charset=utf-8", "csv": "text/csv; charset=utf-8",
          "json": "application/json"}


class ReviewRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    checklist: str | None = Field(None, max_length=80, description="A shipped checklist: commercial-contract, 10k-filing.")
    checklist_yaml: str | None = Field(None, max_length=200_000, description="Or a checklist's YAML text.")
    collection: str | None = Field(None, max_length=200)
    documents: list[Annotated[str, Field(min_length=1, max_length=300)]] = Field(default_factory=list, max_length=500)
    new: bool = False
    force: bool = False


class SignOffRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    decision: Literal["accept", "override"]
    note: str = Field(min_length=1, max_length=4000)
    item: str | None = Field(None, max_length=200)
    doc: str | None = Field(None, max_length=300)
    verdict: str | None = Field(None, max_length=40)
    acknowledge_open: int | None = Field(
        None, ge=0, le=10_000_000, description="Accept the whole review with this many open items left open "
        "(it must be their number); recorded in the sign_off entry. Without it such an accept is refused (409).")


def _review_errors(exc: Exception) -> ApiError:
    return bad_request(str(exc).strip("'\""), "review")


def _checklist(body: ReviewRequest):
    from pipeline.review.checklist import ChecklistError, load_checklist, parse_checklist

    try:
        if body.checklist_yaml is not None:
            return parse_checklist(body.checklist_yaml, "checklist_yaml")
        if body.checklist is None:
            raise bad_request("give checklist (a shipped name) or checklist_yaml")
        if not _CHECKLIST_NAME.match(body.checklist):  # a name, never a path on the server
            raise bad_request(f"checklist {body.checklist!r}: give a shipped checklist's name, e.g. commercial-contract")
        return load_checklist(body.checklist)
    except ChecklistError as exc:
        raise bad_request(str(exc), "checklist") from None


def _load(state: ServiceState, ref: str):
    from pipeline.review.runner import review_state

    reviews = review_state(state.docket)
    try:
        return reviews.load(ref)
    except LookupError:
        raise not_found("review", ref) from None
    finally:
        reviews.close()


def visible_review(state: ServiceState, principal: Principal, ref: str, action: str = "read_review"):
    review = _load(state, ref)
    ids = [d.document_id for d in review.documents if d.document_id is not None]
    permitted = identity.allowed_documents(state, principal, action=action)
    if permitted is not None and not all(i in permitted for i in ids):
        identity.record_denied(state, principal, action, review.collection, detail=f"review {review.id}")
        raise not_found("review", ref)
    return review


@router.post("", status_code=202, summary="Start (or continue) a review: a job; GET /jobs/{id} for progress")
def start_review(body: ReviewRequest, principal: Principal = Depends(allowed("run_review")),
                 state: ServiceState = Depends(service)):
    from pipeline.review.runner import RunHooks, run_review

    collection = body.collection or state.settings.collection
    if body.documents:
        ids = [str(visible_document(state, principal, ref, collection, "run_review").id) for ref in body.documents]
    else:
        permitted = identity.allowed_documents(state, principal, collection, "run_review")
        ids = [] if permitted is None else [str(d.id) for d in state.docket.store.documents(collection) if d.id in permitted]
        if permitted is not None and not ids:
            raise not_found("collection", collection, "no documents you may review are in it")
    checklist = _checklist(body)  # after the documents: a bad checklist must not tell what exists
    docket = state.docket_for(principal)

    def work(job: Job) -> dict[str, Any]:
        def on_plan(review, todo: int, done: int) -> None:
            job.result["review_id"] = review.id
            job.stage, job.total, job.done = "reviewing", todo, 0

        def on_cell(_cell, _name: str) -> None:
            job.done += 1

        outcome = run_review(docket, checklist, collection=collection, documents=ids, force=body.force, new=body.new,
                             hooks=RunHooks(on_plan, on_cell))
        from pipeline.review.reports import summary

        return {"review_id": outcome.review.id, "ran": outcome.ran, "restored": outcome.restored,
                "resumed": outcome.resumed, "summary": summary(outcome.review)}

    job = state.jobs.submit("review", principal.name, work)
    return {"job": job.to_dict()}


@router.get("", summary="The reviews you may read")
def list_reviews(principal: Principal = Depends(allowed("read_review")), state: ServiceState = Depends(service)):
    from pipeline.review.runner import review_state

    reviews = review_state(state.docket)
    try:
        rows = reviews.list()
    finally:
        reviews.close()
    visible = [row for row in rows if _visible_quietly(state, principal, row["id"])]
    return {"reviews": visible}


def _visible_quietly(state: ServiceState, principal: Principal, review_id: str) -> bool:
    """Whether the principal may read the review (a list leaves the others out; it records no denial for them)."""
    review = _load(state, review_id)
    permitted = identity.allowed_documents(state, principal, action="read_review")
    ids = [d.document_id for d in review.documents if d.document_id is not None]
    return permitted is None or all(i in permitted for i in ids)


@router.get("/{review_id}", summary="A review's grid (documents x items), summary and progress")
def show_review(review_id: str, principal: Principal = Depends(allowed("read_review")),
                state: ServiceState = Depends(service)):
    from pipeline.review.reports import to_json

    return to_json(visible_review(state, principal, review_id))


@router.get("/{review_id}/cells/{item}/{doc}", summary="One cell: the finding, its evidence and sign-offs")
def show_cell(review_id: str, item: str, doc: str, principal: Principal = Depends(allowed("read_review")),
              state: ServiceState = Depends(service)):
    from pipeline.review.reports import reviewed_verdict, signoffs_for
    from pipeline.review.runner import ReviewError
    from pipeline.review.signoff import find_document

    review = visible_review(state, principal, review_id)
    try:
        document = find_document(review, doc)
    except ReviewError:
        raise not_found("document", doc, "of this review") from None
    cell = review.cells.get((item, document.sha256))
    if cell is None:
        raise not_found("cell", f"{item} x {doc}", "it is not run yet, or the item is not in the checklist")
    return {**cell.finding.to_payload(), "audit_seq": cell.audit_seq, "reviewed_verdict": reviewed_verdict(review, cell),
            "signoffs": [s.__dict__ for s in signoffs_for(review, cell.item_id, cell.doc_sha256)]}


def record_sign_off(state: ServiceState, principal: Principal, review_id: str, body: SignOffRequest):
    """``signoff.sign_off`` as the principal, on a review they may sign off (the API's and the web page's);
    raises its ``ReviewError`` or ``SignOffRefused``."""
    from pipeline.review.signoff import sign_off

    review = visible_review(state, principal, review_id, "sign_off")
    return sign_off(state.docket_for(principal), review.id, body.decision, body.note, item=body.item,
                    doc=body.doc, verdict=body.verdict, acknowledge_open=body.acknowledge_open)


@router.post("/{review_id}/sign-off", summary="Accept or override findings; appended to the audit log")
def sign_off_review(review_id: str, body: SignOffRequest, principal: Principal = Depends(allowed("sign_off")),
                    state: ServiceState = Depends(service)):
    from dataclasses import asdict

    from pipeline.review.runner import ReviewError
    from pipeline.review.signoff import SignOffRefused

    try:
        record = record_sign_off(state, principal, review_id, body)
    except SignOffRefused as exc:  # the review's state, not the request's form: 409, with the count to send
        raise ApiError(409, "open_items", exc.message(f'send "acknowledge_open": {len(exc.items)}')) from None
    except ReviewError as exc:
        raise _review_errors(exc) from None
    return {"signed_off": asdict(record), "acknowledged_open": body.acknowledge_open or 0}


@router.get("/{review_id}/report", summary="The review as HTML, Markdown, CSV or JSON (a download)")
def review_report(review_id: str, format: Annotated[Literal["html", "md", "csv", "json"], Query()] = "html",
                  principal: Principal = Depends(allowed("read_review")), state: ServiceState = Depends(service)):
    from pipeline.review.reports import render

    review = visible_review(state, principal, review_id)
    return Response(render(review, format), media_type=_MEDIA[format], headers={
        "Content-Disposition": f'attachment; filename="review-{review.id}.{format}"'})
