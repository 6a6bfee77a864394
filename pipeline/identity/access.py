"""Roles and grants: what each role may do, and which documents a user may read.

The policy is the table ``PERMISSIONS`` (action -> role -> scope); ``can`` only reads it. A scope is
``all`` (anywhere), ``granted`` (on the collections and documents the user was granted) or ``none``.
``allowed_documents`` turns a user's grants into document ids for the store's search, which applies
them before ranking, so a user's top-k is complete within what they may read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from ingest.registry import Document
from pipeline.identity.actors import ROLES, Identity
from pipeline.identity.models import GrantRow

Scope = Literal["all", "granted", "none"]
ALL: Scope = "all"
GRANTED: Scope = "granted"
NONE: Scope = "none"

# Columns: reader, reviewer, auditor, admin, owner (the OS user who owns the workspace: everything).
# Admins manage users, grants and the corpus, and nothing that changes what the log says was decided
# (no sign-off, no annotation, no redaction). Auditors read the whole log, and through it any page a
# logged answer cites, but do not ask or change anything.
_TABLE: dict[str, tuple[Scope, Scope, Scope, Scope, Scope]] = {
    #                   reader   reviewer  auditor  admin  owner
    "ask":              (GRANTED, GRANTED, NONE,    NONE,  ALL),
    "read_document":    (GRANTED, GRANTED, NONE,    NONE,  ALL),  # text, pages, page images
    "list_documents":   (GRANTED, GRANTED, NONE,    ALL,   ALL),  # names and metadata (admins grant by them)
    "read_cited_page":  (GRANTED, GRANTED, ALL,     NONE,  ALL),  # a page a logged answer cites
    "manage_documents": (NONE,    NONE,    NONE,    ALL,   ALL),  # upload (ingest), tag, remove
    "run_review":       (NONE,    GRANTED, NONE,    NONE,  ALL),
    "read_review":      (NONE,    GRANTED, ALL,     NONE,  ALL),  # grids and cells carry evidence text
    "sign_off":         (NONE,    GRANTED, NONE,    NONE,  ALL),
    "annotate_audit":   (NONE,    GRANTED, NONE,    NONE,  ALL),  # approve / reject / correct an entry
    "read_audit":       (NONE,    NONE,    ALL,     NONE,  ALL),  # list, search, show (payloads with evidence)
    "verify_audit":     (NONE,    NONE,    ALL,     NONE,  ALL),
    "prove_audit":      (NONE,    NONE,    ALL,     NONE,  ALL),
    "checkpoint_audit": (NONE,    NONE,    ALL,     NONE,  ALL),
    "export_audit":     (NONE,    NONE,    ALL,     NONE,  ALL),  # bundles
    "manage_users":     (NONE,    NONE,    NONE,    ALL,   ALL),  # users, tokens, grants
    "redact_audit":     (NONE,    NONE,    NONE,    NONE,  ALL),
    "manage_keys":      (NONE,    NONE,    NONE,    NONE,  ALL),  # rotate / enrol signing keys
}
ACTIONS: tuple[str, ...] = tuple(_TABLE)
PERMISSIONS: dict[str, dict[str, Scope]] = {action: dict(zip(ROLES, row, strict=True)) for action, row in _TABLE.items()}


@dataclass(frozen=True)
class Resource:
    """What an action is on: a collection, or one document of it (None: not about documents)."""

    collection: str | None = None
    document_id: int | None = None


@dataclass(frozen=True)
class Grants:
    collections: frozenset[str] = frozenset()  # granted whole
    documents: frozenset[tuple[str, int]] = frozenset()  # (collection, document id) granted one by one

    def covers(self, resource: Resource) -> bool:
        """A whole collection's grant covers it and its documents; a document's grant covers that document."""
        if resource.collection is None:
            return False
        if resource.collection in self.collections:
            return True
        return resource.document_id is not None and (resource.collection, resource.document_id) in self.documents


def load_grants(session: Session, identity: Identity) -> Grants:
    if identity.user_id is None:
        return Grants()
    rows = session.execute(select(GrantRow.collection, GrantRow.document_id).where(GrantRow.user_id == identity.user_id)).all()
    return Grants(
        frozenset(c for c, d in rows if d is None), frozenset((c, d) for c, d in rows if d is not None)
    )


def scope(identity: Identity, action: str) -> Scope:
    if action not in PERMISSIONS:
        raise KeyError(f"unknown action {action!r}; known: {', '.join(ACTIONS)}")
    return PERMISSIONS[action].get(identity.role, NONE)


def can(identity: Identity, action: str, resource: Resource | None = None, grants: Grants | None = None) -> bool:
    """Whether ``identity`` may do ``action`` on ``resource``.

    Without a resource, a ``granted`` scope answers whether the role may do it anywhere at all (an
    endpoint's first check); with one, the grants decide (and must be given: no grants, no access)."""
    found = scope(identity, action)
    if found == ALL:
        return True
    if found == NONE:
        return False
    if resource is None:
        return True
    return grants is not None and grants.covers(resource)


def allowed_documents(session: Session, identity: Identity, collection: str | None = None,
                      action: str = "read_document") -> set[int] | None:
    """Ids of the live documents ``identity`` may ``action`` (within ``collection`` if given); None: all.

    Pass the result to ``DocumentStore.search(allowed_documents=...)``: an empty set finds nothing."""
    found = scope(identity, action)
    if found == ALL:
        return None
    if found == NONE:
        return set()
    grants = load_grants(session, identity)
    query = select(Document.id, Document.collection).where(Document.removed_at.is_(None))
    if collection is not None:
        query = query.where(Document.collection == collection)
    wanted = set(grants.collections) | {c for c, _ in grants.documents}
    if not wanted:
        return set()
    query = query.where(Document.collection.in_(sorted(wanted)))
    return {doc_id for doc_id, coll in session.execute(query) if grants.covers(Resource(coll, doc_id))}
