"""Health, login (a browser session cookie and its CSRF token), logout, and who am I."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from pipeline.service import identity_adapter as identity
from pipeline.service.deps import SESSION_COOKIE, rate_limit, current_principal, service
from pipeline.service.errors import ApiError
from pipeline.service.state import Principal, ServiceState

router = APIRouter(tags=["session"])


class Login(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


@router.get("/health", summary="Ready: the models are loaded and the databases open (no login needed)")
def health(state: ServiceState = Depends(service)):
    from pipeline.app import software_version

    return {"status": "ok", "version": software_version(), "reasoner": state.settings.reasoner}


@router.post("/login", summary="Log in with name and password: sets the session cookie, answers the CSRF token")
def login(body: Login, request: Request, state: ServiceState = Depends(service)):
    client = request.client.host if request.client else None
    rate_limit(state, f"login:{client}")
    principal = identity.login(state, body.name, body.password, client)
    if principal is None:  # recorded as login_failed by the identity layer
        raise ApiError(401, "login_failed", "the name or password is wrong, or the user is disabled")
    cookie, csrf, expires_at = identity.start_session(state, principal)
    response = JSONResponse({"name": principal.name, "role": principal.role, "csrf_token": csrf,
                             "expires_at": expires_at.isoformat(timespec="seconds") + "Z"})
    response.set_cookie(
        SESSION_COOKIE, cookie, max_age=int(state.settings.service.session_hours * 3600), path="/api",
        httponly=True, samesite="strict", secure=state.settings.service.cookie_secure,
    )
    return response


@router.post("/logout", summary="End the browser session (with the CSRF token)")
def logout(request: Request, principal: Principal = Depends(current_principal), state: ServiceState = Depends(service)):
    cookie = request.cookies.get(SESSION_COOKIE)
    if principal.via == "session" and cookie:
        identity.end_session(state, cookie)
    response = JSONResponse({"logged_out": principal.via == "session"})
    response.delete_cookie(SESSION_COOKIE, path="/api", httponly=True, samesite="strict")
    return response


@router.get("/me", summary="Who the service takes you for, and how it established that")
def me(principal: Principal = Depends(current_principal)):
    return {"name": principal.name, "role": principal.role, "via": principal.via, "actor": principal.actor}
