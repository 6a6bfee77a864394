"""The documents: the list, an admin's upload and its job's progress, and the page viewer.

Each page goes through the service's document routes (``pipeline.service.routes.documents``), so a
document outside the visitor's grant is "not found" here as in the API. The viewer draws a chunk's
stored boxes over the page image, and lets an auditor open a page only when the answer entry it
was reached from cites it.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse

from pipeline.service import identity_adapter as identity
from pipeline.service.errors import ApiError, not_found
from pipeline.service.state import Principal, ServiceState
from pipeline.web.common import _state, allowed_visitor, html_page, may, render, visitor

router = APIRouter(include_in_schema=False)
PAGE_ZOOM = 1.5  # the page images' scale: 1.5 pixels a PDF point


@router.get("/documents", response_class=HTMLResponse)
@html_page
def documents_page(request: Request, collection: str | None = None):
    from pipeline.service.routes.documents import list_documents

    who, state = allowed_visitor(request, "list_documents")
    listed = list_documents(collection=collection or None, include_removed=False, principal=who.principal, state=state)
    return render(request, "documents.html", who, documents=listed["documents"],
                  can_upload=may(state, who.principal, "manage_documents"),
                  can_read=may(state, who.principal, "read_document"), default=state.settings.collection)


@router.post("/documents", response_class=HTMLResponse)
@html_page
def upload_submit(request: Request, file: Annotated[UploadFile, File()], collection: Annotated[str, Form(max_length=200)] = "",
                  doc_type: Annotated[str, Form(max_length=100)] = "", csrf_token: Annotated[str, Form()] = ""):
    from pipeline.service.routes.documents import upload_document

    who, state = allowed_visitor(request, "manage_documents", csrf_token)
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

