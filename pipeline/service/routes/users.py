"""Users, grants and tokens, for admins: the functions ``docket users`` calls, with the admin as actor."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field

from pipeline.service import identity_adapter as identity
from pipeline.service.deps import allowed, service
from pipeline.service.errors import ApiError, bad_request
from pipeline.service.routes.documents import resolve
from pipeline.service.state import Principal, ServiceState

router = APIRouter(tags=["users"])
Admin = Depends(allowed("manage_users"))
Name = Annotated[str, Field(min_length=1, max_length=64)]


class NewUser(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    role: Literal["reader", "reviewer", "auditor", "admin"]
    password: str | None = Field(None, min_length=1, max_length=1024, description="None: token-only user.")


class NewGrant(BaseModel):
    model_config = ConfigDict(extra="forbid")

    collection: str = Field(min_length=1, max_length=200)
    document: str | None = Field(None, min_length=1, max_length=300, description="Id, name or SHA-256 prefix.")


class NewToken(BaseModel):
    model_config = ConfigDict(extra="forbid")

    expires: str = Field("30d", max_length=20, description="e.g. 30d, 12h, 90m, 2w, or never.")


def _identity_call(state: ServiceState, call):
    """Run ``call(session, audit)`` in one transaction; the identity layer's errors become 400 / 404."""
    from pipeline.identity.actors import IdentityError

    sessions, audit = identity.admin(state)
    try:
        with sessions.begin() as session:
            return call(session, audit)
    except IdentityError as exc:
        raise bad_request(str(exc), "identity") from None
    except LookupError as exc:
        raise ApiError(404, "not_found", str(exc).strip("'\"")) from None


def _document_id(state: ServiceState, collection: str, ref: str | None) -> int | None:
    if ref is None:
        return None
    try:
        return resolve(state, ref, collection).id
    except LookupError as exc:
        raise ApiError(404, "not_found", str(exc).strip("'\"")) from None


@router.get("/users", summary="Users with their grants (admins)")
def list_users(principal: Principal = Admin, state: ServiceState = Depends(service)):
    from pipeline.identity.users import grants_of, list_users as users

    def call(session, _audit):
        return [{**asdict(u), "grants": [asdict(g) for g in grants_of(session, u.name)]} for u in users(session)]

    return {"users": _identity_call(state, call)}


@router.post("/users", status_code=201, summary="Add a user (admins)")
def add_user(body: NewUser, principal: Principal = Admin, state: ServiceState = Depends(service)):
    from pipeline.identity.users import add_user as add

    return asdict(_identity_call(state, lambda s, a: add(s, a, principal.user, body.name, body.role, body.password)))


@router.get("/users/{name}", summary="One user, their grants and tokens (admins)")
def show_user(name: str, principal: Principal = Admin, state: ServiceState = Depends(service)):
    from pipeline.identity.tokens import list_tokens
    from pipeline.identity.users import get_user, grants_of

    def call(session, _audit):
        return {**asdict(get_user(session, name)), "grants": [asdict(g) for g in grants_of(session, name)],
                "tokens": [{**asdict(t), "state": t.state} for t in list_tokens(session, name)]}

    return _identity_call(state, call)


@router.post("/users/{name}/disable", summary="Disable a user: their tokens and sessions stop working (admins)")
def disable_user(name: str, principal: Principal = Admin, state: ServiceState = Depends(service)):
    from pipeline.identity.users import disable_user as disable

    return asdict(_identity_call(state, lambda s, a: disable(s, a, principal.user, name)))


@router.post("/users/{name}/grants", status_code=201, summary="Grant a collection, or one document of it (admins)")
def add_grant(name: str, body: NewGrant, principal: Principal = Admin, state: ServiceState = Depends(service)):
    from pipeline.identity.users import grant

    document_id = _document_id(state, body.collection, body.document)
    return asdict(_identity_call(state, lambda s, a: grant(s, a, principal.user, name, body.collection, document_id)))


@router.delete("/users/{name}/grants", summary="Revoke a grant (admins)")
def revoke_grant(name: str, collection: Annotated[str, Query(min_length=1, max_length=200)],
                 document: Annotated[str | None, Query(min_length=1, max_length=300)] = None,
                 principal: Principal = Admin, state: ServiceState = Depends(service)):
    from pipeline.identity.users import revoke

    document_id = _document_id(state, collection, document)
    return asdict(_identity_call(state, lambda s, a: revoke(s, a, principal.user, name, collection, document_id)))


@router.post("/users/{name}/tokens", status_code=201, summary="Issue an API token; the token is shown this once (admins)")
def issue_token(name: str, body: NewToken, principal: Principal = Admin, state: ServiceState = Depends(service)):
    from pipeline.identity.tokens import issue_token as issue, parse_duration

    def call(session, audit):
        issued = issue(session, audit, principal.user, name, parse_duration(body.expires))
        return {"token": issued.token, **asdict(issued.info)}

    return _identity_call(state, call)


@router.delete("/tokens/{token_id}", summary="Revoke an API token (admins)")
def revoke_token(token_id: str, principal: Principal = Admin, state: ServiceState = Depends(service)):
    from pipeline.identity.tokens import revoke_token as revoke

    return asdict(_identity_call(state, lambda s, a: revoke(s, a, principal.user, token_id)))
