"""POST /api/v1/ask (JSON, or Server-Sent Events with ``Accept: text/event-stream``) and POST /api/v1/ask/stream.

The answer is ``pipeline.ask.ask``'s record, the same one ``docket ask --json`` prints, restricted to the
documents the caller may read (before top-k), with each evidence passage's boxes on its page added.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from pipeline.service import identity_adapter as identity
from pipeline.service.deps import ARRIVED, allowed, service
from pipeline.service.errors import ApiError, log, not_found
from pipeline.service.state import Principal, ServiceState

router = APIRouter(tags=["ask"])


class AskRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    question: str = Field(min_length=1, max_length=4000, description="The question, in any language.")
    collection: str | None = Field(None, max_length=200, description="Default: the server's collection setting.")
    documents: list[Annotated[str, Field(min_length=1, max_length=300)]] = Field(
        default_factory=list, max_length=50, description="Restrict to these documents (id, file name or SHA-256 prefix)."
    )
    types: list[Annotated[str, Field(min_length=1, max_length=100)]] = Field(default_factory=list, max_length=20)
    since: date | None = None
    until: date | None = None
    top_k: int | None = Field(None, ge=1, le=100)
    strict: bool | None = None


def evidence_boxes(state: ServiceState, chunk_ids: list[int]) -> dict[int, list]:
    """Each chunk's boxes on its page ([x0, y0, x1, y1] in PDF points, origin top-left)."""
    from ingest.registry import ChunkRow

    def load(ids: list[int]) -> dict[int, list]:
        with state.docket.store.sessions() as session:
            rows = session.execute(select(ChunkRow.id, ChunkRow.boxes).where(ChunkRow.id.in_(ids))).all()
        return {cid: [list(b)[:4] for b in boxes or []] for cid, boxes in rows}

    return state.boxes.get_many(chunk_ids, load) if chunk_ids else {}


def answer_json(state: ServiceState, record) -> dict[str, Any]:
    data = record.model_dump(mode="json")
    boxes = evidence_boxes(state, [e["chunk_id"] for e in data["evidence"]])
    for e in data["evidence"]:
        e["boxes"] = boxes.get(e["chunk_id"], [])
    return data


def _prepare(state: ServiceState, principal: Principal, body: AskRequest):
    from pipeline.ask import AskOptions

    collection = body.collection or state.settings.collection
    for ref in body.documents:  # a number past 64-bit integers names no document (and must not reach SQL)
        if ref.isdigit() and int(ref) > 2**62:
            raise not_found("document", ref)
    permitted = identity.allowed_documents(state, principal, collection, "ask")
    if permitted is not None and not permitted:  # granted nothing here: as if the collection did not exist
        identity.record_denied(state, principal, "ask", collection)
        raise not_found("collection", collection, "GET /api/v1/collections lists the ones you can read")
    options = AskOptions(
        collection=collection, documents=list(body.documents), doc_types=list(body.types), since=body.since,
        until=body.until, top_k=body.top_k, strict=body.strict, allowed_documents=permitted,
    )
    return state.docket_for(principal), options


NOT_RECORDED = ("the answer was not recorded in the audit log, so it is not given; retry shortly, and if it "
                "keeps failing tell the server's operator (the server's log has the details)")


def recorded_ask(docket, question: str, options):
    """``pipeline.ask.ask``, with an audit log that could not take the answer's entry as a 503 (an answer
    that is not recorded is never sent). A busy log stays the 503 with Retry-After of the error handlers."""
    from audit.errors import AuditError, AuditLockTimeout

    from pipeline.ask import ask

    try:
        return ask(docket, question, options)
    except AuditLockTimeout:
        raise
    except AuditError:
        log.exception("an ask's audit entry could not be written")
        raise ApiError(503, "audit_unavailable", NOT_RECORDED, {"Retry-After": "2"}) from None


def _sse(event: str, data: Any) -> str:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


def _stream(state: ServiceState, docket, question: str, options) -> StreamingResponse:
    """The trace and answer as they arrive (``delta`` events), then the whole record (``answer``)."""
    events: queue.Queue = queue.Queue()
    options.on_delta = lambda kind, text: events.put(("delta", {"kind": kind, "text": text}))

    def work() -> None:
        try:
            events.put(("answer", answer_json(state, recorded_ask(docket, question, options))))
        except ApiError as exc:
            events.put(("error", {"error": {"code": exc.code, "message": exc.message}}))
        except Exception as exc:  # the stream has started: the error is its last event
            events.put(("error", {"error": {"code": "internal", "message": f"the ask failed: {exc}"}}))
        events.put(None)

    threading.Thread(target=work, daemon=True, name="docket-ask-stream").start()

    def body():
        while (item := events.get()) is not None:
            yield _sse(*item)

    return StreamingResponse(body(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})


@router.post("/ask", summary="Answer a question from the documents you may read; logged for audit",
             responses={200: {"content": {"text/event-stream": {}}}})
def ask_question(body: AskRequest, request: Request, principal: Principal = Depends(allowed("ask")),
                 state: ServiceState = Depends(service)):
    began = time.perf_counter()
    docket, options = _prepare(state, principal, body)
    if "text/event-stream" in request.headers.get("accept", ""):
        return _stream(state, docket, body.question, options)
    options.timings = {}
    prepared = time.perf_counter()
    record = recorded_ask(docket, body.question, options)
    asked = time.perf_counter()
    response = JSONResponse(answer_json(state, record))
    done = time.perf_counter()
    arrived = request.scope.get(ARRIVED, began)
    response.headers["Server-Timing"] = server_timing({
        "auth": began - arrived, "prepare": prepared - began, **options.timings,
        "ask": asked - prepared, "serialize": done - asked, "total": done - arrived,
    })
    return response


def server_timing(stages: dict[str, float]) -> str:
    """A Server-Timing header (W3C) of stage wall times in ms: where the server spent an ask's time.

    auth: from the request's arrival to the route (body, token, role check); prepare: the caller's
    grants; retrieval, answerer, grounding, audit: pipeline.ask's stages (``AskOptions.timings``), ask
    being all of it; serialize: the record and its page boxes as JSON; total: arrival to response."""
    return ", ".join(f"{name};dur={seconds * 1000:.1f}" for name, seconds in stages.items())


@router.post("/ask/stream", summary="The same ask, as Server-Sent Events: delta events, then the answer")
def ask_stream(body: AskRequest, principal: Principal = Depends(allowed("ask")), state: ServiceState = Depends(service)):
    docket, options = _prepare(state, principal, body)
    return _stream(state, docket, body.question, options)
