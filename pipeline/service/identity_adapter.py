"""The service's one door to the identity layer (pipeline/identity/): tokens, sessions, the SSO proxy,
access checks, allowed documents, and the admin functions, each called as the CLI calls them.

Principals carry G1's ``Identity``; ``Principal.actor`` (``token:alice``, ``session:alice``,
``proxy:alice``) is what every audit entry made through the service names as its actor.
"""

from __future__ import annotations

import hashlib
from datetime import timedelta
from typing import Any

from pipeline.service.state import Principal, ServiceState


def token_key(secret: str) -> str:
    """What the rate limiter counts under: a digest, so no secret sits in memory twice."""
    return hashlib.sha256(secret.encode("utf-8", "replace")).hexdigest()[:32]


def _sessions(state: ServiceState):
    from pipeline.identity.models import identity_sessions

    return identity_sessions(state.docket)


def principal_of(identity: Any, limit_key: str = "") -> Principal:
    return Principal(identity.name, identity.role, identity.source, identity, limit_key)


def authenticate_token(state: ServiceState, token: str, client: str | None = None) -> Principal | None:
    from pipeline.identity.tokens import authenticate_token as check

    with _sessions(state).begin() as session:
        identity = check(session, state.docket.audit, token, client=client)
    return principal_of(identity, "token:" + token_key(token)) if identity is not None else None


def login(state: ServiceState, name: str, password: str, client: str | None) -> Principal | None:
    from pipeline.identity.users import authenticate_password

    with _sessions(state).begin() as session:
        identity = authenticate_password(session, state.docket.audit, name, password, source="session", client=client)
    return principal_of(identity) if identity is not None else None


def start_session(state: ServiceState, principal: Principal):
    """(cookie value, CSRF token, expiry) of a new browser session."""
    from pipeline.identity.sessions import create_session

    with _sessions(state).begin() as session:
        new = create_session(session, principal.user, ttl=timedelta(hours=state.settings.service.session_hours))
    return new.cookie_value, new.csrf_token, new.expires_at


def session_principal(state: ServiceState, cookie_value: str) -> tuple[Principal, Any] | None:
    """The session's principal and its info (for the CSRF check), or None when it ended or expired."""
    from pipeline.identity.sessions import lookup_session

    with _sessions(state).begin() as session:
        info = lookup_session(session, cookie_value)
    if info is None:
        return None
    return principal_of(info.identity, "session:" + token_key(cookie_value)), info


def csrf_ok(info: Any, submitted: str | None) -> bool:
    from pipeline.identity.sessions import check_csrf

    return check_csrf(info, submitted)


def end_session(state: ServiceState, cookie_value: str) -> None:
    from pipeline.identity.sessions import end_session as end

    with _sessions(state).begin() as session:
        end(session, cookie_value)


def proxy_principal(state: ServiceState, header_value: str | None, client: str | None) -> Principal | None:
    service = state.settings.service
    if not service.trusted_proxy_header or not service.trusted_proxies:
        return None  # off by default
    from pipeline.identity.proxy import ProxySettings, identity_from_proxy

    proxy = ProxySettings(service.trusted_proxy_header, tuple(service.trusted_proxies))
    with _sessions(state).begin() as session:
        identity = identity_from_proxy(session, header_value, client, proxy)
    return principal_of(identity, "proxy:" + identity.name) if identity is not None else None


# -- access -------------------------------------------------------------------------------------------------
def can(state: ServiceState, principal: Principal, action: str, collection: str | None = None,
        document_id: int | None = None) -> bool:
    from pipeline.identity.access import Resource, can as allowed, load_grants

    if not collection and document_id is None:  # whether the role may do it at all: no grant decides that
        return allowed(principal.user, action)
    with _sessions(state).begin() as session:
        grants = load_grants(session, principal.user)
    return allowed(principal.user, action, Resource(collection, document_id), grants)


def allowed_documents(state: ServiceState, principal: Principal, collection: str | None = None,
                      action: str = "read_document") -> frozenset[int] | None:
    """The ids of the live documents the principal may ``action`` (None: every document; empty: none)."""
    from pipeline.identity.access import allowed_documents as documents_of

    with _sessions(state).begin() as session:
        ids = documents_of(session, principal.user, collection, action)
    return None if ids is None else frozenset(ids)


def record_denied(state: ServiceState, principal: Principal, action: str, collection: str | None = None,
                  document_id: int | None = None, detail: str | None = None) -> None:
    from pipeline.identity.access import Resource
    from pipeline.identity.events import record_denied as record

    resource = Resource(collection, document_id) if (collection or document_id is not None) else None
    record(state.docket.audit, principal.user, action, resource, detail=detail)


# -- admin ----------------------------------------------------------------------------------------------------
def admin(state: ServiceState):
    """(sessionmaker, audit log) for the functions of pipeline.identity.users / tokens."""
    return _sessions(state), state.docket.audit
