"""The ask page: a question box over the collections the visitor was granted, and each answer in words.

An answer comes from the service's own ask route (``pipeline.service.routes.ask``), so it is the
answer, the grounding and the audit entry the API would give the same user; a follow-up asked
through htmx is appended below the last answer as a fragment.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse
from pydantic import ValidationError

from pipeline.service import identity_adapter as identity
from pipeline.service.errors import ApiError
from pipeline.service.state import Principal, ServiceState
from pipeline.web.common import TRACE_LABELS, allowed_visitor, html_page, may, render, visitor

router = APIRouter(include_in_schema=False)


def _collections(state: ServiceState, principal: Principal, action: str) -> list[str]:
    """The collections holding a document the principal may ``action`` (the picker shows only these)."""
    visible = identity.allowed_documents(state, principal, action=action)
    return sorted({d.collection for d in state.docket.store.documents() if visible is None or d.id in visible})


@router.get("/ask", response_class=HTMLResponse)
@html_page
def ask_page(request: Request):
    who, state = allowed_visitor(request, "ask")
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

    who, state = allowed_visitor(request, "ask", csrf_token)
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

