"""Browser sessions for the service's cookie login: a random secret in an HttpOnly, SameSite cookie,
stored as its SHA-256, with a CSRF token that state-changing forms must echo."""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from ingest.registry import utcnow
from pipeline.identity.actors import Identity
from pipeline.identity.models import BrowserSessionRow, UserRow
from pipeline.identity.tokens import token_digest
from pipeline.identity.users import identity_of

SESSION_BYTES = 32
DEFAULT_SESSION_TTL = timedelta(hours=12)


@dataclass(frozen=True)
class NewSession:
    cookie_value: str  # the secret: goes into the cookie only
    csrf_token: str
    expires_at: datetime  # naive UTC


@dataclass(frozen=True)
class SessionInfo:
    identity: Identity  # source "session"
    csrf_token: str
    expires_at: datetime


def create_session(session: Session, identity: Identity, ttl: timedelta = DEFAULT_SESSION_TTL) -> NewSession:
    """A session for a user just authenticated (``authenticate_password``)."""
    if identity.user_id is None:
        raise ValueError("only a registered user has browser sessions")
    secret = secrets.token_urlsafe(SESSION_BYTES)
    csrf = secrets.token_urlsafe(SESSION_BYTES)
    expires_at = utcnow() + ttl
    session.add(BrowserSessionRow(session_sha256=token_digest(secret), user_id=identity.user_id, csrf_token=csrf,
                                  expires_at=expires_at))
    session.flush()
    return NewSession(secret, csrf, expires_at)


def lookup_session(session: Session, cookie_value: str | None, now: datetime | None = None) -> SessionInfo | None:
    """The session's user, or None when the cookie is unknown, ended, expired, or its user disabled."""
    if not cookie_value or len(cookie_value) > 200:
        return None
    now = now or utcnow()
    found = session.execute(
        select(BrowserSessionRow, UserRow).join(UserRow, UserRow.id == BrowserSessionRow.user_id)
        .where(BrowserSessionRow.session_sha256 == token_digest(cookie_value))
    ).first()
    if found is None:
        return None
    row, user = found
    if row.ended_at is not None or row.expires_at <= now or user.disabled:
        return None
    return SessionInfo(identity_of(user, "session"), row.csrf_token, row.expires_at)


def end_session(session: Session, cookie_value: str | None) -> None:
    """Log out: the cookie opens nothing from now on (unknown cookies are ignored)."""
    if not cookie_value:
        return
    row = session.execute(
        select(BrowserSessionRow).where(BrowserSessionRow.session_sha256 == token_digest(cookie_value))
    ).scalar_one_or_none()
    if row is not None and row.ended_at is None:
        row.ended_at = utcnow()
        session.flush()


def check_csrf(info: SessionInfo, submitted: str | None) -> bool:
    """Whether a state-changing request carries the session's CSRF token (compared in constant time)."""
    return bool(submitted) and hmac.compare_digest(info.csrf_token.encode(), submitted.encode())
