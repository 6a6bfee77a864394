"""API tokens: ``dkt_`` and 32 random bytes (URL-safe), shown once, stored as their SHA-256, with expiry.

A request presents the token as ``Authorization: Bearer dkt_...``; ``authenticate_token`` finds it by
its hash and refuses it when expired, revoked, or its user is disabled.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from ingest.registry import utcnow
from pipeline.identity import events
from pipeline.identity.actors import Identity, IdentityError
from pipeline.identity.models import TokenRow, UserRow
from pipeline.identity.users import _iso, identity_of, user_row

TOKEN_PREFIX = "dkt_"
TOKEN_BYTES = 32
# last_used_at is written at most this often per token: a busy client must not turn reads into writes.
LAST_USED_RESOLUTION = timedelta(minutes=1)
_DURATION = re.compile(r"^(\d{1,6})([mhdw])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


@dataclass(frozen=True)
class TokenInfo:
    token_id: str
    user: str
    created_at: str
    created_by: str
    expires_at: str | None
    revoked_at: str | None
    last_used_at: str | None

    @property
    def state(self) -> str:
        if self.revoked_at:
            return "revoked"
        if self.expires_at and self.expires_at <= _iso(utcnow()):
            return "expired"
        return "active"


@dataclass(frozen=True)
class IssuedToken:
    token: str  # the secret: shown to its user once, never stored or logged
    info: TokenInfo


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def parse_duration(text: str) -> timedelta | None:
    """``30d``, ``12h``, ``90m``, ``2w`` -> a timedelta; ``never`` -> None."""
    value = text.strip().lower()
    if value == "never":
        return None
    match = _DURATION.match(value)
    if not match or int(match.group(1)) == 0:
        raise IdentityError(f"--expires {text}: expected a number and a unit (m, h, d, w), e.g. 30d or 12h, or 'never'")
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def _info(row: TokenRow, user: str) -> TokenInfo:
    return TokenInfo(row.token_id, user, _iso(row.created_at), row.created_by, _iso(row.expires_at),
                     _iso(row.revoked_at), _iso(row.last_used_at))


def issue_token(session: Session, audit, by: Identity, name: str, expires: timedelta | None) -> IssuedToken:
    user = user_row(session, name)
    if user.disabled:
        raise IdentityError(f"user {name!r} is disabled; a token for them would be refused")
    token = TOKEN_PREFIX + secrets.token_urlsafe(TOKEN_BYTES)
    row = TokenRow(
        token_id=secrets.token_hex(6), user_id=user.id, token_sha256=token_digest(token), created_by=by.actor,
        expires_at=utcnow() + expires if expires is not None else None,
    )
    session.add(row)
    session.flush()
    info = _info(row, name)
    events.record(audit, events.TOKEN_ISSUED, {"name": name, "token_id": row.token_id, "expires_at": info.expires_at},
                  by.actor, subjects=[events.user_subject(name)])
    return IssuedToken(token, info)


def list_tokens(session: Session, name: str) -> list[TokenInfo]:
    user = user_row(session, name)
    rows = session.execute(select(TokenRow).where(TokenRow.user_id == user.id).order_by(TokenRow.id)).scalars()
    return [_info(row, name) for row in rows]


def revoke_token(session: Session, audit, by: Identity, token_id: str) -> TokenInfo:
    found = session.execute(
        select(TokenRow, UserRow.name).join(UserRow, UserRow.id == TokenRow.user_id).where(TokenRow.token_id == token_id)
    ).first()
    if found is None:
        raise LookupError(f"token {token_id!r}: no such token; `docket users tokens NAME` lists a user's tokens")
    row, name = found
    if row.revoked_at is not None:
        raise IdentityError(f"token {token_id} is revoked already")
    row.revoked_at = utcnow()
    session.flush()
    events.record(audit, events.TOKEN_REVOKED, {"name": name, "token_id": token_id}, by.actor,
                  subjects=[events.user_subject(name)])
    return _info(row, name)


def authenticate_token(session: Session, audit, token: str, *, client: str | None = None,
                       now: datetime | None = None) -> Identity | None:
    """The token's user (source ``token``), or None with a ``login_failed`` entry."""
    now = now or utcnow()
    found = None
    # Looked up by its digest: what a timing difference of the index lookup could reveal is about the
    # SHA-256 of the guess, which tells an attacker nothing about any stored token.
    if token.startswith(TOKEN_PREFIX) and len(token) < 200:
        found = session.execute(
            select(TokenRow, UserRow).join(UserRow, UserRow.id == TokenRow.user_id)
            .where(TokenRow.token_sha256 == token_digest(token))
        ).first()
    reason = None
    if found is None:
        reason = "unknown-token"
    else:
        row, user = found
        if row.revoked_at is not None:
            reason = "revoked"
        elif row.expires_at is not None and row.expires_at <= now:
            reason = "expired"
        elif user.disabled:
            reason = "disabled"
    if reason is not None:
        name = found[1].name if found is not None else None
        events.record_login_failed(audit, name, "token", reason, client)
        return None
    if row.last_used_at is None or now - row.last_used_at >= LAST_USED_RESOLUTION:
        row.last_used_at = now
        session.flush()
    return identity_of(user, "token")
