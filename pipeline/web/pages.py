"""The pages: log in and out, ask, documents and the page viewer, the audit log, one entry, verify.

Each page calls the service's own route functions and checks (``pipeline.service.deps.allowed``,
``visible_document``, the audit routes' ``Visibility``), so a page shows exactly what the API would
answer the same user, and a document outside the grant is "not found" here as there. The visitor is
the browser session of ``POST /login`` (the service's session cookie, for path ``/``), and every form
that changes something carries the session's CSRF token (a hidden input, or htmx's header).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from pydantic import ValidationError

from pipeline.service import identity_adapter as identity
from pipeline.service.deps import CSRF_HEADER, SESSION_COOKIE, rate_limit, require_role
from pipeline.service.errors import ApiError, not_found
from pipeline.service.state import Principal, ServiceState

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=str(Path(__file__).with_name("templates")))
PAGE_ZOOM = 1.5  # the page images' scale: 1.5 pixels a PDF point

# The trace, labelled for what it is (trace_format in pipeline/reasoning.py).
TRACE_LABELS = {
    "thinking": "The model's reasoning (its own words; not checked against the documents)",
    "program-steps": "The program's steps (how the extractive answerer chose its passages)",
}
ROLE_HOME = {"reader": "/ask", "reviewer": "/reviews", "auditor": "/audit", "admin": "/documents"}


class LoginNeeded(Exception):
    pass


@dataclass(frozen=True)
class Visitor:
    principal: Principal
    csrf_token: str


def _state(request: Request) -> ServiceState:
    return request.app.state.service


def visitor(request: Request, submitted_csrf: str | None = None) -> Visitor:
    """The logged-in visitor (LoginNeeded otherwise); a state-changing request must carry the CSRF token."""
    state = _state(request)
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        raise LoginNeeded()
    rate_limit(state, "session:" + identity.token_key(cookie))
    found = identity.session_principal(state, cookie)
    if found is None:
        raise LoginNeeded()
    principal, info = found
    if request.method not in ("GET", "HEAD"):
        token = submitted_csrf or request.headers.get(CSRF_HEADER)
        if not identity.csrf_ok(info, token):
            raise ApiError(403, "csrf", "this form is out of date (its CSRF token does not match the session); "
                           "reload the page and submit it again")
    return Visitor(principal, info.csrf_token)


def may(state: ServiceState, principal: Principal, action: str) -> bool:
    return identity.can(state, principal, action)


def require(state: ServiceState, principal: Principal, action: str) -> None:
    """The API's own role check (403, recorded as a denied access)."""
    require_role(state, principal, action)


def render(request: Request, template: str, who: Visitor | None, status: int = 200, **context: Any) -> HTMLResponse:
    state = _state(request)
    nav = []
    if who is not None:
        p = who.principal
        nav = [(label, href) for label, href, action in (
            ("Ask", "/ask", "ask"), ("Documents", "/documents", "list_documents"), ("Reviews", "/reviews", "read_review"),
            ("Audit", "/audit", "read_audit"),
        ) if may(state, p, action)]
    return templates.TemplateResponse(request, template, {"who": who, "nav": nav, **context}, status_code=status)


def html_page(handler):
    """Login redirects and the service's errors as pages (the API answers JSON; a browser gets words)."""

    @functools.wraps(handler)
    def wrapped(**kwargs):
        request: Request = kwargs["request"]
        try:
            return handler(**kwargs)
        except LoginNeeded:
            target = "/login?next=" + quote(request.url.path + (f"?{request.url.query}" if request.url.query else ""))
            if request.headers.get("HX-Request"):
                return Response(status_code=204, headers={"HX-Redirect": target})
            return RedirectResponse(target, status_code=303)
        except ApiError as exc:
            who = None
            try:
                who = visitor(request) if request.method == "GET" else None
            except (LoginNeeded, ApiError):
                pass
            titles = {404: "Not found", 403: "Not allowed", 409: "Refused", 429: "Too many requests", 413: "Too large"}
            template = "fragment_error.html" if request.headers.get("HX-Request") else "error.html"
            response = render(request, template, who, status=exc.status, title=titles.get(exc.status, "Error"),
                              message=exc.message)
            response.headers.update(exc.headers)
            return response

    return wrapped


# -- log in, log out --------------------------------------------------------------------------------------
def _safe_next(target: str | None) -> str:
    return target if target and target.startswith("/") and not target.startswith("//") else "/"


@router.get("/", response_class=HTMLResponse)
@html_page
def home(request: Request):
    who = visitor(request)
    return RedirectResponse(ROLE_HOME.get(who.principal.role, "/ask"), status_code=303)


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, next: str | None = None):
    return render(request, "login.html", None, next=_safe_next(next), error=None)


@router.post("/login", response_class=HTMLResponse)
def login_submit(request: Request, name: Annotated[str, Form(max_length=64)] = "",
                 password: Annotated[str, Form(max_length=1024)] = "", next: Annotated[str, Form()] = "/"):
    state = _state(request)
    client = request.client.host if request.client else None
    try:
        rate_limit(state, f"login:{client}")
    except ApiError as exc:
        return render(request, "login.html", None, status=429, next=_safe_next(next), error=exc.message)
    principal = identity.login(state, name, password, client) if name and password else None
    if principal is None:  # recorded as login_failed by the identity layer
        return render(request, "login.html", None, status=401, next=_safe_next(next),
                      error="The name or password is wrong, or the user is disabled.")
    cookie, _csrf, _expires = identity.start_session(state, principal)
    target = _safe_next(next)
    response = RedirectResponse(target if target != "/" else ROLE_HOME.get(principal.role, "/ask"), status_code=303)
    response.set_cookie(SESSION_COOKIE, cookie, max_age=int(state.settings.service.session_hours * 3600), path="/",
                        httponly=True, samesite="strict", secure=state.settings.service.cookie_secure)
    return response


@router.post("/logout", response_class=HTMLResponse)
@html_page
def logout(request: Request, csrf_token: Annotated[str, Form()] = ""):
    visitor(request, csrf_token)
    identity.end_session(_state(request), request.cookies.get(SESSION_COOKIE))
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
    return response


# -- ask ----------------------------------------------------------------------------------------------------
def _collections(state: ServiceState, principal: Principal, action: str) -> list[str]:
    """The collections holding a document the principal may ``action`` (the picker shows only these)."""
    visible = identity.allowed_documents(state, principal, action=action)
    return sorted({d.collection for d in state.docket.store.documents() if visible is None or d.id in visible})


@router.get("/ask", response_class=HTMLResponse)
@html_page
def ask_page(request: Request):
    who = visitor(request)
    state = _state(request)
    require(state, who.principal, "ask")
    collections = _collections(state, who.principal, "ask")
    return render(request, "ask.html", who, collections=collections, default=state.settings.collection)


def _answer_view(state: ServiceState, principal: Principal, data: dict[str, Any]) -> dict[str, Any]:
    grounding = data.get("grounding") or {}
    return {
        "data": data,
        "trace_label": TRACE_LABELS.get(data.get("trace_format", "none")),
        "grounding_words": grounding.get("label") or f"not checked (the answer's status is {data.get('status')})",
        "audit_link": may(state, principal, "read_audit"),
    }


@router.post("/ask", response_class=HTMLResponse)
@html_page
def ask_submit(request: Request, question: Annotated[str, Form(max_length=4000)] = "",
               collection: Annotated[str, Form(max_length=200)] = "", csrf_token: Annotated[str, Form()] = ""):
    from pipeline.ask import ask
    from pipeline.service.routes.ask import AskRequest, _prepare, answer_json

    who = visitor(request, csrf_token)
    state = _state(request)
    require(state, who.principal, "ask")
    try:
        body = AskRequest(question=question.strip(), collection=collection or None)
    except ValidationError:
        raise ApiError(400, "bad_request", "Type a question (up to 4000 characters).") from None
    docket, options = _prepare(state, who.principal, body)
    data = answer_json(state, ask(docket, body.question, options))
    view = _answer_view(state, who.principal, data)
    if request.headers.get("HX-Request"):
        return render(request, "fragment_answer.html", who, **view)
    collections = _collections(state, who.principal, "ask")
    return render(request, "ask.html", who, collections=collections, default=body.collection, answers=[view])


# -- documents ------------------------------------------------------------------------------------------------
@router.get("/documents", response_class=HTMLResponse)
@html_page
def documents_page(request: Request, collection: str | None = None):
    from pipeline.service.routes.documents import list_documents

    who = visitor(request)
    state = _state(request)
    require(state, who.principal, "list_documents")
    listed = list_documents(collection=collection or None, include_removed=False, principal=who.principal, state=state)
    return render(request, "documents.html", who, documents=listed["documents"],
                  can_upload=may(state, who.principal, "manage_documents"),
                  can_read=may(state, who.principal, "read_document"), default=state.settings.collection)


@router.post("/documents", response_class=HTMLResponse)
@html_page
def upload_submit(request: Request, file: Annotated[UploadFile, File()], collection: Annotated[str, Form(max_length=200)] = "",
                  doc_type: Annotated[str, Form(max_length=100)] = "", csrf_token: Annotated[str, Form()] = ""):
    from pipeline.service.routes.documents import upload_document

    who = visitor(request, csrf_token)
    state = _state(request)
    require(state, who.principal, "manage_documents")
    answer = upload_document(file=file, collection=collection or None, doc_type=doc_type or None, doc_date=None,
                             principal=who.principal, state=state)
    import json

    job = json.loads(answer.body)["job"]
    return render(request, "fragment_job.html", who, job=job)


@router.get("/jobs/{job_id}", response_class=HTMLResponse)
@html_page
def job_fragment(request: Request, job_id: str):
    from pipeline.service.routes.documents import get_job

    who = visitor(request)
    job = get_job(job_id=job_id, principal=who.principal, state=_state(request))
    return render(request, "fragment_job.html", who, job=job)


def _page_details(state: ServiceState, principal: Principal, ref: str, seq: int | None):
    """The document (as ``GET /api/v1/documents/{ref}?pages=true`` shows it), or an auditor's cited page.

    A document outside the grant is "not found", exactly as the API answers; an auditor may open a page
    that the answer entry ``seq`` cites (the API's ``read_cited_page``)."""
    from pipeline.service.routes.documents import resolve, show_document

    try:
        return show_document(ref=ref, pages=True, collection=None, principal=principal, state=state), False
    except ApiError as exc:
        if exc.status not in (403, 404) or seq is None or not may(state, principal, "read_cited_page"):
            if exc.status == 403:  # a role that reads no documents: the same "not found" as outside the grant
                raise not_found("document", ref) from None
            raise
    from pipeline.service.routes.documents import _cited_by

    try:
        doc = resolve(state, ref, None)
    except LookupError:
        raise not_found("document", ref) from None
    version = next((v for v in reversed(doc.versions) if v.status == "current"), doc.versions[-1])
    pages = [{"page": p.number, "reader": p.method, "confidence": p.confidence, "width": p.width, "height": p.height,
              "engine": p.engine_version, "route": p.route} for p in version.pages]
    return {"id": doc.id, "name": doc.name, "collection": doc.collection, "sha256": version.sha256,
            "version": version.version, "pages": version.page_count, "page_details": pages,
            "cited_only": True}, lambda page: _cited_by(state, seq, version.sha256, page)


def _chunk_boxes(state: ServiceState, chunk_id: int | None, sha256: str, page: int) -> list[list[float]]:
    """The chunk's stored boxes, if it is on this page of this version (else none: nothing to highlight)."""
    from ingest.registry import ChunkRow

    if chunk_id is None or not 1 <= chunk_id <= 2**62:
        return []
    with state.docket.store.sessions() as session:
        row = session.get(ChunkRow, chunk_id)
        if row is None or row.doc_sha256 != sha256 or row.page != page:
            return []
        return [list(b)[:4] for b in row.boxes or []]


@router.get("/documents/{ref}", response_class=HTMLResponse)
@html_page
def document_first_page(request: Request, ref: str):
    visitor(request)
    return RedirectResponse(f"/documents/{quote(ref)}/pages/1", status_code=303)


@router.get("/documents/{ref}/pages/{page}", response_class=HTMLResponse)
@html_page
def document_page(request: Request, ref: str, page: int, chunk: int | None = None, seq: int | None = None):
    who = visitor(request)
    state = _state(request)
    doc, cited = _page_details(state, who.principal, ref, seq)
    count = doc["pages"]
    if not 1 <= page <= max(count, 1):
        raise not_found("page", page, f"the document has pages 1 to {count}")
    if cited and not cited(page):
        identity.record_denied(state, who.principal, "read_document", doc["collection"], doc["id"], detail=f"page {page}")
        raise not_found("document", ref)
    details = next((p for p in doc["page_details"] if p["page"] == page), None)
    boxes = _chunk_boxes(state, chunk, doc["sha256"], page)
    width, height = (details["width"], details["height"]) if details else (612.0, 792.0)
    overlays = [{"left": 100 * x0 / width, "top": 100 * y0 / height, "width": 100 * (x1 - x0) / width,
                 "height": 100 * (y1 - y0) / height, "box": [x0, y0, x1, y1]} for x0, y0, x1, y1 in boxes]
    image = f"/api/v1/documents/{doc['id']}/pages/{page}/image?zoom={PAGE_ZOOM}" + (f"&seq={seq}" if seq else "")
    return render(request, "page.html", who, doc=doc, page=page, details=details, overlays=overlays, image=image,
                  width=width, height=height, chunk=chunk, seq=seq, audit_link=may(state, who.principal, "read_audit"),
                  scanned=bool(details and details.get("confidence") is not None))


# -- audit --------------------------------------------------------------------------------------------------
@router.get("/audit", response_class=HTMLResponse)
@html_page
def audit_page(request: Request, actor: str = "", type: str = "", since: str = "", until: str = "", document: str = "",
               limit: int = 100):
    from pipeline.service.routes.audit import _filters, _list

    who = visitor(request)
    state = _state(request)
    require(state, who.principal, "read_audit")
    filters = _filters(since or None, until or None, actor or None, type or None, document or None, None, None)
    listed = _list(state, who.principal, "web list", filters, max(1, min(limit, 1000)))
    form = {"actor": actor, "type": type, "since": since, "until": until, "document": document}
    # The bundle button exports what the filter shows (the API's names: the document is a subject).
    bundle_query = urlencode({k: v for k, v in (("actor", actor), ("type", type), ("since", since), ("until", until),
                                                ("subject", document)) if v})
    return render(request, "audit.html", who, entries=listed["entries"], up_to=listed["up_to"], form=form,
                  can_verify=may(state, who.principal, "verify_audit"), bundle_query=bundle_query,
                  can_export=may(state, who.principal, "export_audit"), can_prove=may(state, who.principal, "prove_audit"))


@router.get("/audit/verify", response_class=HTMLResponse)
@html_page
def audit_verify(request: Request):
    from pipeline.service.routes.audit import verify_log

    who = visitor(request)
    state = _state(request)
    require(state, who.principal, "verify_audit")
    report = verify_log(principal=who.principal, state=state)
    return render(request, "fragment_verify.html", who, report=report)


@router.get("/audit/proof")
@html_page
def audit_proof(request: Request, seq: str = ""):
    """An entry's RFC 9162 inclusion proof (the API's ``prove_entry``) as a JSON file to keep."""
    import json

    from pipeline.service.routes.audit import MAX_SEQ, prove_entry

    who = visitor(request)
    state = _state(request)
    require(state, who.principal, "prove_audit")
    if not seq.strip().isdigit() or not 1 <= int(seq) <= MAX_SEQ:
        raise ApiError(400, "bad_request", f"seq {seq!r}: give the number of an entry (the Seq column of the log)")
    proof = prove_entry(seq=int(seq), size=None, principal=who.principal, state=state)
    return Response(json.dumps(proof, indent=2) + "\n", media_type="application/json", headers={
        "Content-Disposition": f'attachment; filename="docket-proof-seq-{int(seq)}.json"'})


# What an entry's payload points at, in words: the links the writers already record.
_LINKS = {
    "supersedes": "supersedes the finding",  # a redone review cell (pipeline/review/runner.record_finding)
    "finding_seq": "signs off the finding",  # a reviewer's sign-off on a cell (pipeline/review/signoff)
}
_SEQ_LINKS = {"sign_off": "approves", "rejection": "rejects", "correction": "corrects", "redaction": "redacts"}


def _points_at(entry: dict[str, Any]) -> list[tuple[str, int]]:
    """(what, seq) for each earlier entry this one names in its payload."""
    payload = entry.get("payload") or {}
    found = [(words, payload[key]) for key, words in _LINKS.items() if isinstance(payload.get(key), int)]
    if entry["event_type"] in _SEQ_LINKS and isinstance(payload.get("seq"), int):  # AuditLog.annotate / redact
        found.append((_SEQ_LINKS[entry["event_type"]], payload["seq"]))
    return found


def _pointed_at_by(state: ServiceState, principal: Principal, entry: dict[str, Any]) -> list[dict[str, Any]]:
    """The later entries that name this one: sign-offs, annotations and redactions (subject ``seq:N``), and a
    redone finding's replacement (its ``supersedes``); reads are left out. The look-up is logged as a read."""
    from audit import EntryFilter
    from pipeline.service.routes.audit import Visibility

    log = state.docket.audit
    seq = entry["seq"]
    visibility = Visibility(state, principal)
    later = [e for e in log.filtered(EntryFilter(subject=f"seq:{seq}")) if e.event_type != "read"]
    payload = entry.get("payload") or {}
    if entry["event_type"] == "review_finding" and payload.get("review_id"):
        later += [e for e in log.filtered(EntryFilter(event_type="review_finding", subject=f"review:{payload['review_id']}"))
                  if (e.payload or {}).get("supersedes") == seq]
    shown = sorted((e for e in later if e.seq > seq and visibility.sees(e)), key=lambda e: e.seq)
    log.append("read", {"command": "web entry links", "seq": seq, "returned": len(shown),
                        "seqs": [e.seq for e in shown]}, actor=principal.actor, subjects=(f"seq:{seq}",))
    return [{"seq": e.seq, "event_type": e.event_type, "actor": e.actor, "time": e.time, "status": e.status,
             "what": _points_at(e.to_dict())} for e in shown]


def _thumbnail(evidence: dict[str, Any], seq: int) -> str:
    """A small image of the cited page with the passage's boxes drawn: the API's page image route, which
    lets an auditor see a page only when entry ``seq`` is an answer (or a review finding) citing it."""
    boxes = [",".join(str(v) for v in box[:4]) for box in (evidence.get("boxes") or [])[:50]]
    query = urlencode([("zoom", THUMB_ZOOM), ("seq", seq), *(("box", b) for b in boxes)])
    return f"/api/v1/documents/{quote(str(evidence.get('doc_sha256', '')))}/pages/{int(evidence.get('page', 1))}/image?{query}"


THUMB_ZOOM = 0.3  # about 180 pixels across a letter page


@router.get("/audit/{seq}", response_class=HTMLResponse)
@html_page
def audit_entry(request: Request, seq: int):
    from pipeline.service.routes.audit import show_entry

    who = visitor(request)
    state = _state(request)
    require(state, who.principal, "read_audit")
    if not 1 <= seq <= 2**62:
        raise not_found("entry", seq)
    entry = show_entry(seq=seq, principal=who.principal, state=state)
    payload = entry.get("payload") or {}
    # A review finding carries its cell's answer record: shown as an answer, under the finding's verdict.
    finding = payload if entry["event_type"] == "review_finding" and payload.get("answer_record") else None
    record = finding["answer_record"] if finding else payload
    answer = entry["event_type"] == "answer" or finding is not None
    thumbnails = {i: _thumbnail(e, seq) for i, e in enumerate(record.get("evidence") or [])} if answer else {}
    return render(request, "entry.html", who, entry=entry, payload=payload, answer=answer, thumbnails=thumbnails,
                  record=record, finding=finding,
                  trace_label=TRACE_LABELS.get(record.get("trace_format", "none")),
                  grounding_words=(record.get("grounding") or {}).get("label"),
                  points_at=_points_at(entry), pointed_at_by=_pointed_at_by(state, who.principal, entry),
                  can_prove=may(state, who.principal, "prove_audit"))


@router.post("/audit/{seq}/replay", response_class=HTMLResponse)
@html_page
def audit_replay(request: Request, seq: int, against: Annotated[str, Form(max_length=10)] = "frozen",
                 csrf_token: Annotated[str, Form()] = ""):
    """The entry replayed (the API's ``replay_entry``, its access rule too), its report as a fragment
    under the entry (docs/replay.md)."""
    from pipeline.service.routes.audit import ReplayRequest, replay_entry

    who = visitor(request, csrf_token)
    if against not in ("frozen", "current"):
        raise ApiError(400, "bad_request", "Replay on its frozen index or on today's corpus (frozen or current).")
    if not 1 <= seq <= 2**62:
        raise not_found("entry", seq)
    report = replay_entry(seq=seq, body=ReplayRequest(against=against), principal=who.principal, state=_state(request))
    return render(request, "fragment_replay.html", who, report=report)


# -- reviews ----------------------------------------------------------------------------------------------
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

    who = visitor(request)
    state = _state(request)
    require(state, who.principal, "read_review")
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

    who = visitor(request, csrf_token)
    state = _state(request)
    require(state, who.principal, "run_review")
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

    who = visitor(request)
    state = _state(request)
    require(state, who.principal, "read_review")
    return HTMLResponse(to_html(visible_review(state, who.principal, review_id)))


@router.get("/reviews/{review_id}/cells/{item}/{doc}", response_class=HTMLResponse)
@html_page
def review_cell(request: Request, review_id: str, item: str, doc: str):
    from pipeline.review.verdicts import VERDICT_LABELS, VERDICTS
    from pipeline.service.routes.reviews import show_cell, visible_review

    who = visitor(request)
    state = _state(request)
    require(state, who.principal, "read_review")
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

    who = visitor(request, csrf_token)
    state = _state(request)
    require(state, who.principal, "sign_off")
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
