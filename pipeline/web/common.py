"""What every page shares: who the visitor is, the role checks, and rendering a template or an error as a page.

The visitor is the browser session of ``POST /login`` (the service's session cookie, for path ``/``);
a request that changes something must carry the session's CSRF token (a hidden input, or htmx's
header). The checks are the service's own (``pipeline.service.deps``, the identity layer), so a page
allows and refuses exactly what the API would for the same user. ``html_page`` turns a missing login
into a redirect to the login page and the service's errors into pages, since a browser wants words,
not the API's JSON.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from pipeline.service import identity_adapter as identity
from pipeline.service.deps import CSRF_HEADER, SESSION_COOKIE, rate_limit, require_role
from pipeline.service.errors import ApiError
from pipeline.service.state import Principal, ServiceState

templates = Jinja2Templates(directory=str(Path(__file__).with_name("templates")))

# The trace, labelled for what it is (trace_format in pipeline/reasoning.py).
TRACE_LABELS = {
    "thinking": "The model's reasoning (its own words; not checked against the documents)",
    "program-steps": "The program's steps (how the extractive answerer chose its passages)",
}


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


def allowed_visitor(request: Request, action: str, submitted_csrf: str | None = None) -> tuple[Visitor, ServiceState]:
    """The logged-in visitor, checked for ``action`` as the API checks it, and the service state: how a
    page that does one thing begins."""
    who = visitor(request, submitted_csrf)
    state = _state(request)
    require(state, who.principal, action)
    return who, state


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

