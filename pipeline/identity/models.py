"""The identity tables (users, API tokens, grants, browser sessions), in the registry's database.

They have a declarative base of their own, so the registry's schema code never needs to know of them,
and pipeline's registry migrations make them (pipeline/migrations/versions/p0002_identity_tables.py).
Times are naive UTC, as in the registry.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, sessionmaker

from ingest.registry import utcnow


class IdentityBase(DeclarativeBase):
    pass


class UserRow(IdentityBase):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(20))
    # Argon2id, in argon2's own encoded form (parameters and salt included); None: no password login
    # (a user who signs in through the SSO proxy or with tokens only).
    password_hash: Mapped[str | None] = mapped_column(Text, default=None)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(String(200))
    disabled_at: Mapped[datetime | None] = mapped_column(default=None)


class TokenRow(IdentityBase):
    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_id: Mapped[str] = mapped_column(String(32), unique=True)  # public: listed, named to revoke
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    # SHA-256 of the whole token. A token is 32 random bytes, so unlike a password it cannot be guessed
    # or looked up in a dictionary: a fast unsalted hash is as strong as a slow one here, and lets a
    # request find its token by an indexed equality instead of verifying every stored hash.
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(String(200))
    expires_at: Mapped[datetime | None] = mapped_column(default=None)  # None: never
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)
    last_used_at: Mapped[datetime | None] = mapped_column(default=None)


class GrantRow(IdentityBase):
    """A user may read (and, by role, review) one collection, or one document of it."""

    __tablename__ = "access_grants"
    __table_args__ = (Index("ix_access_grants_user", "user_id", "collection"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    collection: Mapped[str] = mapped_column(String(200))
    document_id: Mapped[int | None] = mapped_column(Integer, default=None)  # None: the whole collection
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(String(200))


class BrowserSessionRow(IdentityBase):
    __tablename__ = "browser_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    # SHA-256 of the cookie's secret (32 random bytes, as for tokens): a copy of the database opens no session.
    session_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column()
    ended_at: Mapped[datetime | None] = mapped_column(default=None)


def create_identity_tables(engine: Engine) -> None:
    """Bring the registry database to head, identity tables included (the migrations remember each engine)."""
    from pipeline.migrations import upgrade_registry

    upgrade_registry(engine)


def identity_sessions(docket) -> sessionmaker:
    """The registry's session factory (``docket.store.sessions``), with the identity tables made."""
    sessions: sessionmaker = docket.store.sessions
    create_identity_tables(sessions.kw["bind"])
    return sessions
