"""Who is calling, and may they: the auth dependencies every route takes.

A caller is established by ``Authorization: Bearer <token>`` (an API token), or by the session cookie a
``POST /api/v1/login`` set (HttpOnly, SameSite=Strict); a state-changing request made with the cookie
must also carry the session's CSRF token in ``X-CSRF-Token``. A bearer request needs no CSRF token: a
browser never adds that header by itself. Each authenticated request counts against its caller's
rate limit (``service.rate_limit_per_minute``).
"""

from __future__ import annotations

from fastapi import Depends, Request

from pipeline.service import identity_adapter as identity
from pipeline.service.errors import ApiError, not_found
from pipeline.service.state import Principal, ServiceState

SESSION_COOKIE = "docket_session"
CSRF_HEADER = "X-CSRF-Token"
_SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
ARRIVED = "docket.arrived"  # the request scope's key for its arrival time (app.RequestClock), for Server-Timing


async def service(request: Request) -> ServiceState:
    # async: FastAPI runs a sync dependency on its thread pool, a hand-off per request for a lookup.
    return request.app.state.service


def rate_limit(state: ServiceState, key: str) -> None:
    wait = state.limiter.allow(key)
    if wait is not None:
        raise ApiError(
            429, "rate_limited",
            f"more than {state.limiter.per_minute} requests a minute from this caller; retry in {wait} s",
            {"Retry-After": str(wait)},
        )


def current_principal(request: Request, state: ServiceState = Depends(service)) -> Principal:
    header = request.headers.get("authorization")
    if header is not None:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError(401, "unauthenticated", "Authorization must be 'Bearer <token>'; `docket users token NAME` makes one")
        rate_limit(state, "token:" + identity.token_key(token.strip()))
        principal = identity.authenticate_token(state, token.strip(), request.client.host if request.client else None)
        if principal is None:
            raise ApiError(401, "unauthenticated", "the token is unknown, expired or revoked; ask an admin for a new one "
                           "(`docket users token NAME`)")
        return principal
    session_id = request.cookies.get(SESSION_COOKIE)
    if session_id:
        rate_limit(state, "session:" + identity.token_key(session_id))
        found = identity.session_principal(state, session_id)
        if found is None:
            raise ApiError(401, "unauthenticated", "the session has ended or expired; log in again (POST /api/v1/login)")
        principal, info = found
        if request.method not in _SAFE_METHODS and not identity.csrf_ok(info, request.headers.get(CSRF_HEADER)):
            raise ApiError(403, "csrf", f"a request made with the session cookie must send the {CSRF_HEADER} header "
                           "that the login answered with")
        return principal
    client = request.client.host if request.client else None
    header_name = state.settings.service.trusted_proxy_header
    proxied = identity.proxy_principal(state, request.headers.get(header_name) if header_name else None, client)
    if proxied is not None:
        rate_limit(state, "proxy:" + proxied.name)
        return proxied
    rate_limit(state, "addr:" + (client or "unknown"))
    raise ApiError(401, "unauthenticated", "send 'Authorization: Bearer <token>' or log in (POST /api/v1/login)")


def require_role(state: ServiceState, principal: Principal, action: str) -> Principal:
    """The principal, if their role may do ``action`` somewhere (403 otherwise, recorded)."""
    if not identity.can(state, principal, action):
        identity.record_denied(state, principal, action, detail=f"role {principal.role}")
        article = "an" if principal.role[0] in "aeiou" else "a"
        raise ApiError(403, "forbidden", f"{article} {principal.role} may not {action.replace('_', ' ')}; "
                       "an admin can change your role")
    return principal


def allowed(action: str):
    """A dependency: the authenticated principal, if their role may do ``action`` somewhere (401 or 403).

    Whether they may do it to a given collection or document is the route's check (``check_access``).
    One dependency, not ``current_principal`` beneath a second one: FastAPI runs each sync dependency
    on its thread pool, and every hand-off waits for a worker to get the GIL back from the busy ones."""

    def check(request: Request, state: ServiceState = Depends(service)) -> Principal:
        return require_role(state, current_principal(request, state), action)

    return check


def check_access(state: ServiceState, principal: Principal, action: str, what: str, ref: object,
                 collection: str | None = None, document_id: int | None = None, hint: str = "") -> None:
    """404 (recorded as a denied access) when ``principal`` may not ``action`` this collection or document:
    the same answer as for one that does not exist, so its name does not leak."""
    if not identity.can(state, principal, action, collection, document_id):
        identity.record_denied(state, principal, action, collection, document_id)
        raise not_found(what, ref, hint)
