"""The audit pages: the filtered log, verifying it, an entry's inclusion proof, one entry, and its replay.

They call the service's audit routes (``pipeline.service.routes.audit``) and its ``Visibility``, so an
auditor sees the entries the API would show them. One entry's page reads as a human would want it:
an answer with its evidence and page thumbnails, and the earlier and later entries it is linked to.
The fixed paths ``/audit/verify`` and ``/audit/proof`` are declared before ``/audit/{seq}``, which
would otherwise take them.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response

from pipeline.service.errors import ApiError, not_found
from pipeline.service.state import Principal, ServiceState
from pipeline.web.common import TRACE_LABELS, _state, allowed_visitor, html_page, may, render, visitor

router = APIRouter(include_in_schema=False)


@router.get("/audit", response_class=HTMLResponse)
@html_page
def audit_page(request: Request, actor: str = "", type: str = "", since: str = "", until: str = "", document: str = "",
               limit: int = 100):
    from pipeline.service.routes.audit import _filters, _list

    who, state = allowed_visitor(request, "read_audit")
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

    who, state = allowed_visitor(request, "verify_audit")
    report = verify_log(principal=who.principal, state=state)
    return render(request, "fragment_verify.html", who, report=report)


@router.get("/audit/proof")
@html_page
def audit_proof(request: Request, seq: str = ""):
    """An entry's RFC 9162 inclusion proof (the API's ``prove_entry``) as a JSON file to keep."""
    import json

    from pipeline.service.routes.audit import MAX_SEQ, prove_entry

    who, state = allowed_visitor(request, "prove_audit")
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

    who, state = allowed_visitor(request, "read_audit")
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
