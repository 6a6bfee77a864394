"""Users and their grants: add, disable, list, grant, revoke, and password login.

Every change is one audit event, appended after the registry row is flushed (so a duplicate or a bad
reference fails before anything is logged) and before the caller's transaction commits.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from ingest.registry import Document, utcnow
from pipeline.identity import events
from pipeline.identity.actors import Identity, IdentityError, check_role, check_user_name
from pipeline.identity.models import BrowserSessionRow, GrantRow, UserRow
from pipeline.identity.passwords import hash_password, verify_password


@dataclass(frozen=True)
class UserInfo:
    id: int
    name: str
    role: str
    disabled: bool
    has_password: bool
    created_at: str
    created_by: str

    @classmethod
    def of(cls, row: UserRow) -> UserInfo:
        return cls(row.id, row.name, row.role, row.disabled, row.password_hash is not None, _iso(row.created_at), row.created_by)


@dataclass(frozen=True)
class GrantInfo:
    user: str
    collection: str
    document_id: int | None
    created_at: str
    created_by: str


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat(timespec="seconds") + "Z"


def user_row(session: Session, name: str) -> UserRow:
    row = session.execute(select(UserRow).where(UserRow.name == name)).scalar_one_or_none()
    if row is None:
        raise LookupError(f"user {name!r}: no such user; `docket users list` shows them")
    return row


def get_user(session: Session, name: str) -> UserInfo:
    return UserInfo.of(user_row(session, name))


def list_users(session: Session) -> list[UserInfo]:
    return [UserInfo.of(row) for row in session.execute(select(UserRow).order_by(UserRow.name)).scalars()]


def add_user(session: Session, audit, by: Identity, name: str, role: str, password: str | None) -> UserInfo:
    check_user_name(name)
    check_role(role)
    if session.execute(select(UserRow.id).where(UserRow.name == name)).first() is not None:
        raise IdentityError(f"user {name!r} exists already; `docket users list` shows its role")
    row = UserRow(name=name, role=role, password_hash=hash_password(password) if password is not None else None,
                  created_by=by.actor)
    session.add(row)
    session.flush()
    events.record(audit, events.USER_ADDED, {"name": name, "role": role, "password": password is not None},
                  by.actor, subjects=[events.user_subject(name)])
    return UserInfo.of(row)


def disable_user(session: Session, audit, by: Identity, name: str) -> UserInfo:
    """Refuse the user from now on: passwords, tokens and open browser sessions all stop working."""
    row = user_row(session, name)
    if row.disabled:
        raise IdentityError(f"user {name!r} is disabled already")
    row.disabled, row.disabled_at = True, utcnow()
    session.execute(
        update(BrowserSessionRow).where(BrowserSessionRow.user_id == row.id, BrowserSessionRow.ended_at.is_(None))
        .values(ended_at=utcnow())
    )
    session.flush()
    events.record(audit, events.USER_DISABLED, {"name": name, "role": row.role}, by.actor,
                  subjects=[events.user_subject(name)])
    return UserInfo.of(row)


def grants_of(session: Session, name: str) -> list[GrantInfo]:
    user = user_row(session, name)
    rows = session.execute(
        select(GrantRow).where(GrantRow.user_id == user.id).order_by(GrantRow.collection, GrantRow.document_id)
    ).scalars()
    return [GrantInfo(name, g.collection, g.document_id, _iso(g.created_at), g.created_by) for g in rows]


def _check_document(session: Session, collection: str, document_id: int) -> None:
    document = session.get(Document, document_id)
    if document is None or document.collection != collection:
        raise LookupError(f"document {document_id}: not in collection {collection!r}; `docket docs list -c {collection}` shows its documents")


def _find_grant(session: Session, user_id: int, collection: str, document_id: int | None) -> GrantRow | None:
    query = select(GrantRow).where(GrantRow.user_id == user_id, GrantRow.collection == collection)
    query = query.where(GrantRow.document_id.is_(None) if document_id is None else GrantRow.document_id == document_id)
    return session.execute(query).scalars().first()


def grant(session: Session, audit, by: Identity, name: str, collection: str, document_id: int | None = None) -> GrantInfo:
    """Let ``name`` read ``collection`` (or one of its documents). A collection may be granted before
    anything is ingested into it; a document must exist in the collection."""
    user = user_row(session, name)
    if not collection or len(collection) > 200:
        raise IdentityError("--collection: give the collection's name (at most 200 characters)")
    if document_id is not None:
        _check_document(session, collection, document_id)
    if _find_grant(session, user.id, collection, document_id) is not None:
        what = f"document {document_id} of collection {collection!r}" if document_id is not None else f"collection {collection!r}"
        raise IdentityError(f"user {name!r} has {what} granted already")
    row = GrantRow(user_id=user.id, collection=collection, document_id=document_id, created_by=by.actor)
    session.add(row)
    session.flush()
    events.record(audit, events.GRANT_ADDED, {"name": name, "collection": collection, "document_id": document_id},
                  by.actor, subjects=[events.user_subject(name)])
    return GrantInfo(name, collection, document_id, _iso(row.created_at), row.created_by)


def revoke(session: Session, audit, by: Identity, name: str, collection: str, document_id: int | None = None) -> GrantInfo:
    """Take back exactly the grant ``grant`` made with the same arguments (a collection's grant does
    not take its documents' grants with it: `docket users list --json` shows what is left)."""
    user = user_row(session, name)
    row = _find_grant(session, user.id, collection, document_id)
    if row is None:
        what = f"document {document_id} of collection {collection!r}" if document_id is not None else f"collection {collection!r}"
        raise LookupError(f"user {name!r} has no grant on {what}; `docket users list --json` shows the grants")
    info = GrantInfo(name, row.collection, row.document_id, _iso(row.created_at), row.created_by)
    session.delete(row)
    session.flush()
    events.record(audit, events.GRANT_REVOKED, {"name": name, "collection": collection, "document_id": document_id},
                  by.actor, subjects=[events.user_subject(name)])
    return info


def identity_of(row: UserRow, source: str) -> Identity:
    return Identity(row.name, row.role, source, row.id)  # type: ignore[arg-type]


def authenticate_password(session: Session, audit, name: str, password: str, *, source: str = "session",
                          client: str | None = None) -> Identity | None:
    """The user's identity when ``password`` is theirs and they are not disabled; None otherwise, with a
    ``login_failed`` entry. Every failure costs one Argon2 verification, so timing does not say which."""
    row = session.execute(select(UserRow).where(UserRow.name == name)).scalar_one_or_none() if name else None
    ok, new_hash = verify_password(row.password_hash if row is not None else None, password)
    reason = None
    if row is None:
        reason = "unknown-user"
    elif row.password_hash is None:
        reason = "no-password"
    elif not ok:
        reason = "wrong-password"
    elif row.disabled:
        reason = "disabled"
    if reason is not None:
        events.record_login_failed(audit, name, source, reason, client)
        return None
    if new_hash is not None:  # argon2's parameters changed since this hash was made: upgrade it now
        row.password_hash = new_hash
        session.flush()
    return identity_of(row, source)
