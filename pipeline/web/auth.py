"""Logging in and out, and the home page that sends each role to the page it starts from.

A wrong name or password is answered on the login page itself (the identity layer records it as
``login_failed``); a successful login sets the service's session cookie and goes back to the page
that asked for it, only ever a path on this site.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from pipeline.service import identity_adapter as identity
from pipeline.service.deps import SESSION_COOKIE, rate_limit
from pipeline.service.errors import ApiError
from pipeline.web.common import _state, html_page, render, visitor

router = APIRouter(include_in_schema=False)
ROLE_HOME = {"reader": "/ask", "reviewer": "/reviews", "auditor": "/audit", "admin": "/documents"}


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
