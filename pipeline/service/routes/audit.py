"""The audit log: list, search, show, verify, prove, checkpoint, annotate, and a bundle download (zip).

The same ``AuditLog`` methods ``docket audit`` calls; reads are recorded as read events (list and
search as one event naming what they returned, show through ``AuditLog.read``), the bundle by the
log's own export event, each with the caller as actor. A caller whose documents are limited by grants
sees only the entries about documents they may read (and their own entries that name no document).
"""

from __future__ import annotations

import io
import re
import tempfile
import zipfile
from datetime import datetime
from itertools import islice
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path as PathParam, Query
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from pipeline.service import identity_adapter as identity
from pipeline.service.deps import allowed, current_principal, service
from pipeline.service.errors import ApiError, bad_request, not_found
from pipeline.service.state import Principal, ServiceState

router = APIRouter(prefix="/audit", tags=["audit"])
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
Text200 = Annotated[str | None, Query(max_length=200)]
MAX_SEQ = 2**62  # the databases' integers are 64-bit: a larger number is no entry, not an overflow
Seq = Annotated[int, PathParam(ge=1, le=MAX_SEQ)]


def _audit_error(exc: Exception) -> ApiError:
    message = str(exc)
    if message.startswith("no entry with seq") or "outside the log" in message:
        return ApiError(404, "not_found", message)
    return bad_request(message, "audit")


def _filters(since, until, actor, event_type, subject, status, text):
    from audit import AuditError, EntryFilter
    from audit.records import parse_time

    try:
        since = parse_time(since, "since") if since else None
        until = parse_time(until, "until") if until else None
    except AuditError as exc:
        raise bad_request(str(exc).replace("--", ""), "invalid_time") from None
    return EntryFilter(since, until, actor, event_type, subject, status, text)


class Visibility:
    """Which entries a caller may see: all (no document limits), or those about documents they may read."""

    def __init__(self, state: ServiceState, principal: Principal, action: str = "read_audit"):
        self.principal = principal
        ids = identity.allowed_documents(state, principal, action=action)
        self.shas: set[str] | None = None
        if ids is not None:
            from ingest.registry import DocumentVersion

            with state.docket.store.sessions() as session:
                rows = session.execute(select(DocumentVersion.sha256).where(DocumentVersion.document_id.in_(ids))) if ids else []
                self.shas = {sha for (sha,) in rows}

    def sees(self, entry) -> bool:
        if self.shas is None:
            return True
        documents = [s for s in entry.subjects if _SHA256.match(s)]
        if not documents:
            return entry.actor == self.principal.actor
        return all(s in self.shas for s in documents)


def _list(state: ServiceState, principal: Principal, command: str, filters, limit: int) -> dict[str, Any]:
    from audit import AuditError

    log = state.docket.audit
    visibility = Visibility(state, principal)
    try:
        size = log.size
        rows = (e for e in log.filtered(filters, up_to=size) if visibility.sees(e))
        if filters.text and filters.event_type is None:  # as `docket audit search`: not the earlier searches
            rows = (e for e in rows if e.event_type != "read")
        shown = list(islice(rows, limit))
        log.append(
            "read",
            {"command": f"api {command}", "filters": filters.describe(), "limit": limit, "up_to": size,
             "returned": len(shown), "first_seq": shown[0].seq if shown else None,
             "last_seq": shown[-1].seq if shown else None},
            actor=principal.actor,
        )
    except AuditError as exc:
        raise _audit_error(exc) from None
    return {"entries": [e.to_dict() for e in shown], "up_to": size}


@router.get("/entries", summary="Entries, oldest first, filtered; the read is itself logged")
def list_entries(
    since: Text200 = None, until: Text200 = None, actor: Text200 = None,
    event_type: Annotated[str | None, Query(alias="type", max_length=100)] = None,
    subject: Text200 = None, status: Text200 = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    principal: Principal = Depends(allowed("read_audit")), state: ServiceState = Depends(service),
):
    return _list(state, principal, "list", _filters(since, until, actor, event_type, subject, status, None), limit)


@router.get("/search", summary="Entries whose payload contains the text (not earlier searches)")
def search_entries(
    text: Annotated[str, Query(min_length=1, max_length=200)],
    since: Text200 = None, until: Text200 = None, actor: Text200 = None,
    event_type: Annotated[str | None, Query(alias="type", max_length=100)] = None,
    subject: Text200 = None, status: Text200 = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    principal: Principal = Depends(allowed("read_audit")), state: ServiceState = Depends(service),
):
    return _list(state, principal, "search", _filters(since, until, actor, event_type, subject, status, text), limit)


@router.get("/entries/{seq}", summary="One whole entry; the read is itself logged")
def show_entry(seq: Seq, principal: Principal = Depends(allowed("read_audit")), state: ServiceState = Depends(service)):
    from audit import AuditError

    log = state.docket.audit
    try:
        entry = log.get(seq)
        if not Visibility(state, principal).sees(entry):
            identity.record_denied(state, principal, "read_audit", detail=f"seq {seq}")
            raise not_found("entry", seq)
        entry = log.read(seq, actor=principal.actor)
    except AuditError as exc:
        raise _audit_error(exc) from None
    return entry.to_dict()


@router.get("/entries/{seq}/proof", summary="RFC 9162 inclusion proof of one entry")
def prove_entry(seq: Seq, size: Annotated[int | None, Query(ge=1, le=MAX_SEQ)] = None,
                principal: Principal = Depends(allowed("prove_audit")), state: ServiceState = Depends(service)):
    from audit import AuditError

    try:
        return state.docket.audit.prove(seq, size)
    except AuditError as exc:
        raise _audit_error(exc) from None


class Annotation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    decision: Literal["approve", "reject", "correct"]
    note: str = Field("", max_length=4000)


@router.post("/entries/{seq}/annotations", summary="A reviewer's decision (approve, reject, correct) about an entry")
def annotate_entry(seq: Seq, body: Annotation, principal: Principal = Depends(allowed("annotate_audit")),
                   state: ServiceState = Depends(service)):
    from audit import AuditError

    try:
        if not Visibility(state, principal, "annotate_audit").sees(state.docket.audit.get(seq)):
            raise not_found("entry", seq)
        appended = state.docket.audit.annotate(seq, body.decision, body.note, actor=principal.actor)
    except AuditError as exc:
        raise _audit_error(exc) from None
    return {"seq": appended.seq, "leaf_hash": appended.leaf_hash, "time": appended.time}


class ReplayRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    against: Literal["frozen", "current"] = Field(
        "frozen", description="frozen: the entry's own index, settings and model; current: today's corpus and settings."
    )


@router.post("/entries/{seq}/replay", summary="Replay an answer (or review finding) and show what changed; logged")
def replay_entry(seq: Seq, body: ReplayRequest, principal: Principal = Depends(current_principal),
                 state: ServiceState = Depends(service)):
    """Who may replay (docs/replay.md): an auditor (or the owner), any entry they may see, frozen or against
    today; and the actor of the entry itself, if their role may ask, while every document it names is still
    granted to them, against today only within their grants. A role that may do neither: 403; someone
    else's entry, or one naming a document no longer granted: 404, as for no entry (its existence does not
    leak). Both refusals are recorded."""
    from audit import AuditError
    from pipeline.replay.recorded import ReplayError
    from pipeline.replay.runner import replay_entry as replay
    from pipeline.replay.snapshots import SnapshotError

    auditor = identity.can(state, principal, "read_audit")
    if not auditor and not identity.can(state, principal, "ask"):
        identity.record_denied(state, principal, "replay_audit", detail=f"seq {seq}")
        raise ApiError(403, "forbidden", "a replay is for an auditor, or for the user whose answer it is")
    try:
        entry = state.docket.audit.get(seq)
    except AuditError as exc:
        error = _audit_error(exc)  # the log's size is the auditor's to know
        raise (not_found("entry", seq) if error.status == 404 and not auditor else error) from None
    action = "read_audit" if auditor else "ask"
    if not (auditor or entry.actor == principal.actor) or not Visibility(state, principal, action).sees(entry):
        identity.record_denied(state, principal, "replay_audit", detail=f"seq {seq}")
        raise not_found("entry", seq)
    limits = None if auditor else identity.allowed_documents(state, principal, action="ask")
    try:
        report = replay(state.docket_for(principal), seq, body.against, allowed_documents=limits)
    except (ReplayError, SnapshotError) as exc:
        raise bad_request(str(exc), "not_replayable") from None
    except AuditError as exc:
        raise _audit_error(exc) from None
    return report.to_dict()


@router.get("/verify", summary="Check the whole log: OK with size and root, or the first bad seq and why")
def verify_log(principal: Principal = Depends(allowed("verify_audit")), state: ServiceState = Depends(service)):
    from audit import AuditError

    try:
        return state.docket.audit.verify().to_dict()
    except AuditError as exc:
        raise _audit_error(exc) from None


@router.post("/checkpoint", summary="Sign a checkpoint now (keep the JSON outside the database)")
def checkpoint(principal: Principal = Depends(allowed("checkpoint_audit")), state: ServiceState = Depends(service)):
    from audit import AuditError

    try:
        return state.docket.audit.checkpoint(actor=principal.actor)
    except AuditError as exc:
        raise _audit_error(exc) from None


@router.get("/bundle", summary="A self-verifying bundle as a zip (logged as an export event)",
            responses={200: {"content": {"application/zip": {}}}})
def bundle(
    since: Text200 = None, until: Text200 = None, actor: Text200 = None,
    event_type: Annotated[str | None, Query(alias="type", max_length=100)] = None,
    subject: Text200 = None, status: Text200 = None,
    principal: Principal = Depends(allowed("export_audit")), state: ServiceState = Depends(service),
):
    from audit import AuditError

    if Visibility(state, principal).shas is not None:
        raise ApiError(403, "forbidden", "a bundle holds the whole log's entries for its filter; only a caller without "
                       "document limits (an auditor) may export one")
    filters = _filters(since, until, actor, event_type, subject, status, None)
    with tempfile.TemporaryDirectory(prefix="docket-bundle-") as tmp:
        folder = Path(tmp) / "bundle"
        try:
            result = state.docket.audit.export(folder, filters, actor=principal.actor)
        except AuditError as exc:
            raise _audit_error(exc) from None
        data = io.BytesIO()
        with zipfile.ZipFile(data, "w", zipfile.ZIP_DEFLATED) as zf:
            for path in sorted(folder.rglob("*")):
                if path.is_file():
                    zf.write(path, Path("bundle") / path.relative_to(folder))
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return Response(data.getvalue(), media_type="application/zip", headers={
        "Content-Disposition": f'attachment; filename="docket-audit-bundle-{stamp}.zip"',
        "X-Docket-Entries": str(result.get("entries", "")),
    })
