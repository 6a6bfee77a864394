"""Documents: upload (an ingest job), list, show, page images with boxes drawn, remove; collections; jobs.

Uploads are checked before anything is written where the store reads: name (sanitised to a plain file
name), type (suffix and first bytes: PDF or image, else 415), size (``service.max_upload_mb``, 413) and,
for a PDF, pages (``service.max_upload_pages``, 413). Only then is the file placed in the workspace
(``uploads/<collection>/<name>``, with a copy by SHA-256 under ``uploads/blobs/`` that page images are
drawn from) and ingested by ``pipeline.documents.ingest_documents`` on the service's one ingest thread.
A document the caller may not read answers 404, exactly as one that does not exist.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import unicodedata
import uuid
from datetime import date
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Path as PathParam, Query, UploadFile
from fastapi.responses import JSONResponse, Response
from pydantic import Field

from pipeline.service import identity_adapter as identity
from pipeline.service.deps import allowed, check_access, current_principal, service
from pipeline.service.errors import ApiError, bad_request, not_found
from pipeline.service.state import Job, Principal, ServiceState

router = APIRouter(tags=["documents"])

_MAGIC = {
    ".pdf": (b"%PDF-",),
    ".png": (b"\x89PNG\r\n\x1a\n",),
    ".jpg": (b"\xff\xd8\xff",),
    ".jpeg": (b"\xff\xd8\xff",),
    ".tif": (b"II*\x00", b"MM\x00*"),
    ".tiff": (b"II*\x00", b"MM\x00*"),
}
_UNSAFE = re.compile(r"[^A-Za-z0-9._ ()+,=@-]")


def safe_file_name(raw: str | None) -> str:
    """A plain file name from whatever the client sent: no folders, no '..', no control or odd characters."""
    name = unicodedata.normalize("NFKC", (raw or "").replace("\\", "/")).split("/")[-1]
    name = _UNSAFE.sub("_", name).strip(" .")
    stem, dot, suffix = name.rpartition(".")
    if not dot:
        stem, suffix = name, ""
    stem = stem.lstrip(".-")[:120] or "upload"
    return f"{stem}.{suffix.lower()}" if suffix else stem


def _collection_folder(collection: str) -> str:
    """A folder name for a collection that cannot climb out of uploads/ (and differs for different names)."""
    readable = _UNSAFE.sub("_", collection).strip(" .")[:60] or "collection"
    return f"{readable}-{hashlib.sha256(collection.encode()).hexdigest()[:8]}"


def _uploads(state: ServiceState) -> Path:
    return state.settings.home / "uploads"


def _summary(doc) -> dict[str, Any]:
    from pipeline.cli.docs import document_summary  # the CLI's own JSON for a document (docs/cli.md keys)

    return document_summary(doc)


# -- upload and jobs ------------------------------------------------------------------------------------------
def _stage(state: ServiceState, upload: UploadFile, suffix: str) -> tuple[Path, str, int]:
    limit = int(state.settings.service.max_upload_mb * 1024 * 1024)
    staging = _uploads(state) / ".staging"
    staging.mkdir(parents=True, exist_ok=True)
    path = staging / f"{uuid.uuid4().hex}{suffix}"
    digest, size = hashlib.sha256(), 0
    try:
        with path.open("xb") as out:
            while block := upload.file.read(1 << 20):
                size += len(block)
                if size > limit:
                    raise ApiError(413, "too_large", f"the file is over the upload limit of "
                                   f"{state.settings.service.max_upload_mb:g} MiB (service.max_upload_mb)")
                digest.update(block)
                out.write(block)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return path, digest.hexdigest(), size


def _check_content(state: ServiceState, path: Path, suffix: str, name: str) -> int | None:
    """The PDF's page count (None for an image); 415 when the bytes are not what the name says, 413 over the page limit."""
    with path.open("rb") as fh:
        head = fh.read(16)
    if not any(head.startswith(m) for m in _MAGIC[suffix]):
        raise ApiError(415, "unsupported_media_type", f"{name}: its bytes are not a {suffix[1:].upper()} file; "
                       "upload a PDF or a PNG, JPEG or TIFF image")
    if suffix != ".pdf":
        return None
    import pymupdf

    try:
        with pymupdf.open(path) as doc:
            pages = doc.page_count
    except Exception:
        raise ApiError(415, "unsupported_media_type", f"{name}: not a readable PDF; check that the file is whole") from None
    limit = state.settings.service.max_upload_pages
    if pages > limit:
        raise ApiError(413, "too_many_pages", f"{name}: {pages} pages, over the limit of {limit} (service.max_upload_pages); "
                       "split the file")
    return pages


def show_progress(job: Job, step: str, done: int, total: int) -> None:
    """The upload job's stage in words, as the ingest reports it: the page read, OCR'd or passage embedded."""
    if step == "reading pages":
        job.stage = f"reading page {min(done + 1, total)} of {total}"
    elif step in ("OCR", "embedding"):
        job.stage = f"{step}: {done} of {total} {'pages' if step == 'OCR' else 'passages'} done"
    else:
        job.stage = step


def _ingest_job(state: ServiceState, principal: Principal, staged: Path, name: str, sha256: str, collection: str, tags):
    from ingest import progress
    from pipeline.documents import ingest_documents

    def work(job: Job) -> dict[str, Any]:
        job.stage, job.total = "ingesting", 1
        folder = _uploads(state) / _collection_folder(collection)
        folder.mkdir(parents=True, exist_ok=True)
        blobs = _uploads(state) / "blobs"
        blobs.mkdir(parents=True, exist_ok=True)
        blob = blobs / f"{sha256}{staged.suffix}"
        target = folder / name
        try:
            if not blob.exists():
                os.replace(staged, blob)
            # The store names a document by its source path: the same name in a collection is its next version.
            tmp = folder / f".{uuid.uuid4().hex}{staged.suffix}"
            shutil.copyfile(blob, tmp)
            os.replace(tmp, target)
        finally:
            staged.unlink(missing_ok=True)
        with progress.listening(lambda step, done, total: show_progress(job, step, done, total)):
            report = ingest_documents(state.docket_for(principal), [target], collection, tags=tags)
        job.stage = "ingesting"
        result = report.results[0]
        job.done = 1
        if result.outcome == "failed":
            raise RuntimeError(result.error or f"{name}: not ingested")
        return {"collection": collection, "file": {**result.__dict__, "path": name}}

    return state.jobs.submit("ingest", principal.name, work)


@router.post("/documents", status_code=202, summary="Upload a PDF or image: starts an ingest job (GET /jobs/{id})")
def upload_document(
    file: Annotated[UploadFile, File(description="A PDF, PNG, JPEG or TIFF file.")],
    collection: Annotated[str | None, Form(max_length=200)] = None,
    doc_type: Annotated[str | None, Form(alias="type", max_length=100)] = None,
    doc_date: Annotated[date | None, Form(alias="date")] = None,
    principal: Principal = Depends(allowed("manage_documents")),
    state: ServiceState = Depends(service),
):
    from ingest.store import DocumentTags

    collection = collection or state.settings.collection
    if not identity.can(state, principal, "manage_documents", collection):
        identity.record_denied(state, principal, "manage_documents", collection)
        raise not_found("collection", collection)
    name = safe_file_name(file.filename)
    suffix = Path(name).suffix.lower()
    if suffix not in _MAGIC:
        raise ApiError(415, "unsupported_media_type", f"{name}: not a PDF or image (.pdf, .png, .jpg, .jpeg, .tif, .tiff)")
    if doc_type is not None and not doc_type.strip():
        raise bad_request("type: give a non-empty document type, e.g. 10-K or NDA, or leave it out")
    staged, sha256, size = _stage(state, file, suffix)
    try:
        pages = _check_content(state, staged, suffix, name)
    except BaseException:
        staged.unlink(missing_ok=True)
        raise
    tags = DocumentTags(doc_type.strip() if doc_type else None, doc_date)
    job = _ingest_job(state, principal, staged, name, sha256, collection, tags)
    body = {"job": job.to_dict(), "name": name, "sha256": sha256, "size_bytes": size, "pages": pages}
    return JSONResponse(body, status_code=202, headers={"Location": f"/api/v1/jobs/{job.id}"})


@router.get("/jobs/{job_id}", summary="An ingest or review job's progress and result")
def get_job(job_id: str, principal: Principal = Depends(current_principal), state: ServiceState = Depends(service)):
    job = state.jobs.get(job_id)
    if job is None or (job.owner != principal.name and principal.role != "admin"):
        raise not_found("job", job_id)
    return job.to_dict()


_DOCUMENTS_HINT = "GET /api/v1/documents lists the ones you can read"


# -- reading -----------------------------------------------------------------------------------------------------
def resolve(state: ServiceState, ref: str, collection: str | None):
    """``DocumentStore.resolve``; a number past the databases' 64-bit integers is no document (LookupError)."""
    if ref.isdigit() and int(ref) > 2**62:
        raise LookupError(f"document {ref!r}: no such document")
    return state.docket.store.resolve(ref, collection)


def visible_document(state: ServiceState, principal: Principal, ref: str, collection: str | None, action: str = "read_document"):
    """The document ``ref`` names, if the principal may ``action`` it; 404 otherwise (same words either way)."""
    try:
        doc = resolve(state, ref, collection)
    except LookupError as exc:
        if "matches" in str(exc) and identity.allowed_documents(state, principal, action=action) is None:
            raise bad_request(str(exc).strip("'\""), "ambiguous") from None
        raise not_found("document", ref, _DOCUMENTS_HINT) from None
    check_access(state, principal, action, "document", ref, doc.collection, doc.id, _DOCUMENTS_HINT)
    return doc


@router.get("/documents", summary="The documents you may read")
def list_documents(
    collection: Annotated[str | None, Query(max_length=200)] = None,
    include_removed: bool = False,
    principal: Principal = Depends(allowed("list_documents")),
    state: ServiceState = Depends(service),
):
    visible = identity.allowed_documents(state, principal, collection, "list_documents")
    docs = state.docket.store.documents(collection, include_removed=include_removed)
    return {"documents": [_summary(d) for d in docs if visible is None or d.id in visible]}


@router.get("/collections", summary="The collections you may read, with their document counts")
def list_collections(principal: Principal = Depends(allowed("list_documents")), state: ServiceState = Depends(service)):
    visible = identity.allowed_documents(state, principal, action="list_documents")
    counts: dict[str, int] = {}
    for d in state.docket.store.documents():
        if visible is None or d.id in visible:
            counts[d.collection] = counts.get(d.collection, 0) + 1
    return {"collections": [{"name": name, "documents": n} for name, n in sorted(counts.items())]}


@router.get("/documents/{ref}", summary="One document: its versions and, with pages=true, every page's text")
def show_document(
    ref: str, pages: bool = False, collection: Annotated[str | None, Query(max_length=200)] = None,
    principal: Principal = Depends(allowed("read_document")), state: ServiceState = Depends(service),
):
    doc = visible_document(state, principal, ref, collection)
    data = _summary(doc)
    data["versions"] = [
        {"version": v.version, "sha256": v.sha256, "status": v.status, "pages": v.page_count,
         "size_bytes": v.size_bytes, "ingested_at": v.ingested_at.isoformat() + "Z"}
        for v in doc.versions
    ]
    if pages:
        current = next((v for v in reversed(doc.versions) if v.sha256 == data["sha256"]), doc.versions[-1])
        data["page_details"] = [
            {"page": p.number, "text": p.text, "reader": p.method, "engine": p.engine_version, "dpi": p.dpi,
             "confidence": p.confidence, "route": p.route, "notes": p.notes, "width": p.width, "height": p.height}
            for p in current.pages
        ]
    return data


@router.delete("/documents/{ref}", summary="Take a document out of the live index (its versions stay on record)")
def remove_document(
    ref: str, collection: Annotated[str | None, Query(max_length=200)] = None,
    principal: Principal = Depends(allowed("manage_documents")), state: ServiceState = Depends(service),
):
    from pipeline.documents import UnrecordedChange, remove_document as remove

    doc = visible_document(state, principal, ref, collection, action="manage_documents")
    try:
        removed = remove(state.docket_for(principal), str(doc.id))
    except UnrecordedChange as exc:
        raise ApiError(503, "unrecorded", str(exc)) from None
    return {"removed": {"id": removed.id, "name": removed.name}}


# -- page images ---------------------------------------------------------------------------------------------
def _parse_box(text: str) -> tuple[float, float, float, float]:
    try:
        x0, y0, x1, y1 = (float(v) for v in text.split(","))
    except ValueError:
        raise bad_request(f"box {text!r}: give four numbers x0,y0,x1,y1 in PDF points, e.g. 72,90,300,120") from None
    if not all(abs(v) < 1e6 for v in (x0, y0, x1, y1)):
        raise bad_request(f"box {text!r}: coordinates must be PDF points on the page")
    return x0, y0, x1, y1


def _source_file(state: ServiceState, version, source_key: str) -> Path:
    """The exact bytes of ``version``: the upload's copy by SHA-256, or the file it was ingested from if unchanged."""
    from ingest.extract import sha256_file

    for blob in (_uploads(state) / "blobs").glob(f"{version.sha256}.*"):
        return blob
    path = Path(source_key)
    try:
        if path.is_file() and sha256_file(path)[0] == version.sha256:
            return path
    except OSError:
        pass
    raise ApiError(409, "source_gone", f"the file this version was read from is no longer at {path.name} with the same "
                   "bytes; re-ingest or upload it to see its pages")


def _cited_by(state: ServiceState, seq: int, sha256: str, page: int) -> bool:
    """Whether the logged answer ``seq`` cites ``page`` of the version ``sha256`` (what lets an auditor open it).

    A logged answer is an ``answer`` entry, or a ``review_finding``, which carries its cell's answer record.
    """
    from audit import AuditError

    try:
        entry = state.docket.audit.get(seq)
    except AuditError:
        return False
    payload = entry.payload or {}
    if entry.event_type == "review_finding":
        payload = payload.get("answer_record") or {}
    elif entry.event_type != "answer":
        return False
    return any(e.get("doc_sha256") == sha256 and e.get("page") == page for e in payload.get("evidence", []))


@router.get("/documents/{ref}/pages/{page}/image", summary="A page as PNG, with the given boxes drawn",
            responses={200: {"content": {"image/png": {}}}})
def page_image(
    ref: str, page: Annotated[int, PathParam(ge=1, le=1_000_000)],
    box: Annotated[list[str] | None, Query(max_length=50, description="x0,y0,x1,y1 in PDF points; repeatable.")] = None,
    chunk: Annotated[list[Annotated[int, Field(ge=1, le=2**62)]] | None,
                     Query(max_length=50, description="Draw these chunks' boxes; repeatable.")] = None,
    zoom: Annotated[float, Query(ge=0.25, le=4.0)] = 1.5,
    seq: Annotated[int | None, Query(ge=1, le=2**62, description="An answer entry citing this page (auditors).")] = None,
    collection: Annotated[str | None, Query(max_length=200)] = None,
    principal: Principal = Depends(current_principal), state: ServiceState = Depends(service),
):
    try:
        doc = resolve(state, ref, collection)
    except LookupError:
        raise not_found("document", ref) from None
    version = next((v for v in reversed(doc.versions) if v.status == "current"), doc.versions[-1])
    if not identity.can(state, principal, "read_document", doc.collection, doc.id):
        cited = seq is not None and identity.can(state, principal, "read_cited_page") and _cited_by(
            state, seq, version.sha256, page)
        if not cited:
            identity.record_denied(state, principal, "read_document", doc.collection, doc.id, detail=f"page {page} image")
            raise not_found("document", ref)
    if not 1 <= page <= version.page_count:
        raise not_found("page", page, f"the document has pages 1 to {version.page_count}")
    boxes = [_parse_box(b) for b in box or []]
    if chunk:
        from ingest.registry import ChunkRow

        with state.docket.store.sessions() as session:
            for cid in chunk:
                row = session.get(ChunkRow, cid)
                if row is None or row.doc_sha256 != version.sha256 or row.page != page:
                    raise not_found("chunk", cid, "give chunks of this page of the document's current version")
                boxes += [tuple(b[:4]) for b in row.boxes or []]
    key = (version.sha256, page, tuple(boxes), zoom)
    png = state.pages.get(key)
    if png is None:
        png = _render(_source_file(state, version, doc.source_key), page, boxes, zoom)
        state.pages.put(key, png)
    return Response(png, media_type="image/png", headers={"Cache-Control": "private, max-age=300"})


def _render(path: Path, page: int, boxes: list[tuple[float, float, float, float]], zoom: float) -> bytes:
    import pymupdf

    with pymupdf.open(path) as opened:
        # An image opens as a one-page document that cannot be drawn on: draw on its PDF form.
        doc = opened if opened.is_pdf else pymupdf.open("pdf", opened.convert_to_pdf())
        target = doc[page - 1]
        for x0, y0, x1, y1 in boxes:
            rect = pymupdf.Rect(x0, y0, x1, y1)
            if rect.is_valid and not rect.is_empty:
                target.draw_rect(rect, color=(0.9, 0.1, 0.1), width=1.5, overlay=True)
        return target.get_pixmap(matrix=pymupdf.Matrix(zoom, zoom), alpha=False).tobytes("png")
