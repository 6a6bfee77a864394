"""The reviews: the list and starting one, a review's grid, its report, one cell's finding, and signing off.

Each goes through the service's review routes (``pipeline.service.routes.reviews``) and the review
package's own rules (``pipeline.review.signoff``: a whole-review accept is refused while items are
open unless the reviewer acknowledges them), so a page decides exactly what the API would.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import ValidationError

from pipeline.service import identity_adapter as identity
from pipeline.service.errors import ApiError
from pipeline.service.state import Principal, ServiceState
from pipeline.web.common import TRACE_LABELS, Visitor, _state, allowed_visitor, html_page, may, render, require, visitor

router = APIRouter(include_in_schema=False)
CHECKLISTS = ("commercial-contract", "10k-filing")


def _reviewable(state: ServiceState, principal: Principal) -> dict[str, list]:
    """The documents the principal may review, by collection (the start form's selection)."""
    visible = identity.allowed_documents(state, principal, action="run_review")
    by_collection: dict[str, list] = {}
    for d in state.docket.store.documents():
        if visible is None or d.id in visible:
            by_collection.setdefault(d.collection, []).append(d)
    return dict(sorted(by_collection.items()))


@router.get("/reviews", response_class=HTMLResponse)
@html_page
def reviews_page(request: Request):
    from pipeline.service.routes.reviews import list_reviews

    who, state = allowed_visitor(request, "read_review")
    listed = list_reviews(principal=who.principal, state=state)["reviews"]
    can_run = may(state, who.principal, "run_review")
    reviewable = _reviewable(state, who.principal) if can_run else {}
    return render(request, "reviews.html", who, reviews=listed, can_run=can_run, checklists=CHECKLISTS,
                  collections=list(reviewable), reviewable=reviewable, default=state.settings.collection)


@router.post("/reviews", response_class=HTMLResponse)
@html_page
def review_start(request: Request, checklist: Annotated[str, Form(max_length=80)] = "",
                 collection: Annotated[str, Form(max_length=200)] = "",
                 documents: Annotated[list[str] | None, Form(max_length=500)] = None,
                 csrf_token: Annotated[str, Form()] = ""):
    """A review of the whole collection picked, or of the documents ticked (then their collection)."""
    from pipeline.service.routes.documents import visible_document
    from pipeline.service.routes.reviews import ReviewRequest, start_review

    who, state = allowed_visitor(request, "run_review", csrf_token)
    picked = [d for d in documents or [] if d.strip()]
    if picked:
        # Each ticked document must be one the visitor may review (404 otherwise, as the API answers),
        # and a review covers one collection.
        found = [visible_document(state, who.principal, ref, None, "run_review") for ref in picked]
        collections = sorted({d.collection for d in found})
        if len(collections) > 1:
            raise ApiError(400, "bad_request", f"The ticked documents are in {len(collections)} collections "
                           f"({', '.join(collections)}); a review covers one: tick documents of one collection.")
        collection = collections[0]
    try:
        body = ReviewRequest(checklist=checklist or None, collection=collection or None, documents=picked)
    except ValidationError:
        raise ApiError(400, "bad_request", "Pick a checklist and a collection (or up to 500 documents).") from None
    job = start_review(body=body, principal=who.principal, state=state)["job"]
    return render(request, "fragment_job.html", who, job=job)


def _review_view(state: ServiceState, principal: Principal, review_id: str):
    from pipeline.review.reports import counts_by_severity, reviewed_verdict
    from pipeline.service.routes.reviews import visible_review

    review = visible_review(state, principal, review_id)
    grid = {(c.item_id, c.doc_sha256): {"verdict": reviewed_verdict(review, c), "cell": c} for c in review.cells.values()}
    expected = {(item_id, doc.sha256) for item_id, doc in review.expected_cells()}
    return review, grid, counts_by_severity(review), expected


@router.get("/reviews/{review_id}", response_class=HTMLResponse)
@html_page
def review_page(request: Request, review_id: str, show: str = "all"):
    who = visitor(request)
    require(_state(request), who.principal, "read_review")
    return _render_review(request, who, review_id, show, None)


def _render_review(request: Request, who: Visitor, review_id: str, show: str, message: str | None, status: int = 200):
    from pipeline.review.reports import NOT_RUN, open_items, whole_review_signoffs
    from pipeline.review.verdicts import VERDICT_LABELS

    state = _state(request)
    review, grid, by_severity, expected = _review_view(state, who.principal, review_id)
    return render(request, "review.html", who, status=status, review=review, grid=grid, by_severity=by_severity,
                  expected=expected, show=show, labels=VERDICT_LABELS, not_run=NOT_RUN, open_items=open_items(review),
                  whole=whole_review_signoffs(review), message=message,
                  can_sign=identity.can(state, who.principal, "sign_off", review.collection))


@router.get("/reviews/{review_id}/report", response_class=HTMLResponse)
@html_page
def review_report_page(request: Request, review_id: str):
    """The review report (``pipeline/review/reports.to_html``, the same file the API downloads), shown
    in the browser to read or print to PDF."""
    from pipeline.review.reports import to_html
    from pipeline.service.routes.reviews import visible_review

    who, state = allowed_visitor(request, "read_review")
    return HTMLResponse(to_html(visible_review(state, who.principal, review_id)))


@router.get("/reviews/{review_id}/cells/{item}/{doc}", response_class=HTMLResponse)
@html_page
def review_cell(request: Request, review_id: str, item: str, doc: str):
    from pipeline.review.verdicts import VERDICT_LABELS, VERDICTS
    from pipeline.service.routes.reviews import show_cell, visible_review

    who, state = allowed_visitor(request, "read_review")
    cell = show_cell(review_id=review_id, item=item, doc=doc, principal=who.principal, state=state)
    review = visible_review(state, who.principal, review_id)
    evidence = (cell.get("answer_record") or {}).get("evidence", [])
    cited = {c.get("label") for c in cell.get("citations") or []}  # the sources the answer cites
    return render(request, "cell.html", who, review=review, cell=cell, evidence=evidence, cited=cited,
                  labels=VERDICT_LABELS, verdicts=VERDICTS, trace_label=TRACE_LABELS.get(cell.get("trace_format", "none")),
                  can_sign=identity.can(state, who.principal, "sign_off", review.collection))


@router.post("/reviews/{review_id}/sign-off", response_class=HTMLResponse)
@html_page
def review_sign_off(request: Request, review_id: str, decision: Annotated[str, Form(max_length=20)] = "accept",
                    note: Annotated[str, Form(max_length=4000)] = "", item: Annotated[str, Form(max_length=200)] = "",
                    doc: Annotated[str, Form(max_length=300)] = "", verdict: Annotated[str, Form(max_length=40)] = "",
                    acknowledge_open: Annotated[str, Form(max_length=10)] = "", csrf_token: Annotated[str, Form()] = ""):
    """One cell's sign-off, or the whole review's, through ``signoff.sign_off`` (its rule: a whole-review
    accept is refused while items are open, unless the tick box, whose value is their number, is ticked)."""
    from pipeline.review.runner import ReviewError
    from pipeline.review.signoff import SignOffRefused
    from pipeline.service.routes.reviews import SignOffRequest, record_sign_off

    who, state = allowed_visitor(request, "sign_off", csrf_token)
    whole = not item and not doc
    if not note.strip():
        raise ApiError(400, "bad_request", "Say why in the note: it goes into the audit log with the decision.")
    if acknowledge_open and not acknowledge_open.isdigit():
        raise ApiError(400, "bad_request", "acknowledge_open: the number of open items, as the page shows it.")
    try:
        body = SignOffRequest(decision=decision, note=note.strip(), item=item or None, doc=doc or None,
                              verdict=verdict or None, acknowledge_open=int(acknowledge_open) if acknowledge_open else None)
    except ValidationError:
        raise ApiError(400, "bad_request", "decision must be accept or override, with a note") from None
    try:
        record_sign_off(state, who.principal, review_id, body)
    except SignOffRefused as exc:
        n = len(exc.items)
        message = exc.message(f"tick “I accept the review with its {n} open items left open”")
        return _render_review(request, who, review_id, "all", message[0].upper() + message[1:], status=409)
    except ReviewError as exc:
        raise ApiError(400, "review", str(exc)) from None
    target = f"/reviews/{quote(review_id)}" + (f"/cells/{quote(item)}/{quote(doc)}" if not whole else "")
    return RedirectResponse(target, status_code=303)
