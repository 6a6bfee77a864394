"""Roles and grants: the permission table, the documents a user may read, and the store's search
filtered by them before top-k (the sample contracts, ingested for real once for this module)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from audit import AuditLog
from conftest import DRIVEN, DUOS, NETGEAR
from ingest.registry import Document, open_registry, utcnow
from ingest.retrieval import RetrievalOptions
from ingest.store import DocumentFilter
from pipeline.identity import events
from pipeline.identity.access import ACTIONS, PERMISSIONS, Grants, Resource, allowed_documents, can, load_grants
from pipeline.identity.actors import ROLES, Identity
from pipeline.identity.models import create_identity_tables, identity_sessions
from pipeline.identity.users import add_user, grant, revoke
from test_audit_support import db_url  # noqa: F401  (the fixture: SQLite file and PostgreSQL schema)

OWNER = Identity("owner", "owner", "os-user")

# What issue 15 says each role may do, written out action by action (the policy's table in
# pipeline/identity/access.py is checked against it): "g" on granted collections/documents,
# "a" anywhere, absent: never.
EXPECTED = {
    "reader":   {"ask": "g", "read_document": "g", "list_documents": "g", "read_cited_page": "g"},
    "reviewer": {"ask": "g", "read_document": "g", "list_documents": "g", "read_cited_page": "g",
                 "run_review": "g", "read_review": "g", "sign_off": "g", "annotate_audit": "g"},
    "auditor":  {"read_cited_page": "a", "read_review": "a", "read_audit": "a", "verify_audit": "a",
                 "prove_audit": "a", "checkpoint_audit": "a", "export_audit": "a"},
    "admin":    {"list_documents": "a", "manage_documents": "a", "manage_users": "a"},
    "owner":    {action: "a" for action in ACTIONS},
}
DECISIONS = ("sign_off", "annotate_audit", "redact_audit")  # what changes what the log says was decided

GRANTED_HERE = Resource("deals", 7)
ELSEWHERE = Resource("hr", 9)
GRANTS = Grants(collections=frozenset({"deals"}))


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("action", ACTIONS)
def test_permission_table(role: str, action: str):
    who = Identity("someone", role, "token", 1)
    expected = EXPECTED[role].get(action)
    assert PERMISSIONS[action][role] == {"g": "granted", "a": "all", None: "none"}[expected]
    # Without a resource: may the role do it at all. With one: grants decide a "granted" scope.
    assert can(who, action) is (expected is not None)
    assert can(who, action, GRANTED_HERE, GRANTS) is (expected is not None)
    assert can(who, action, ELSEWHERE, GRANTS) is (expected == "a")
    assert can(who, action, GRANTED_HERE, None) is (expected == "a")  # no grants loaded: no access


def test_admins_change_nothing_the_log_decides_and_auditors_change_nothing():
    for action in DECISIONS:
        assert not can(Identity("a", "admin", "token", 1), action)
    assert not any(can(Identity("x", "auditor", "token", 1), a) for a in ("ask", "sign_off", "manage_users", "manage_documents"))
    with pytest.raises(KeyError, match="unknown action 'fly'"):
        can(OWNER, "fly")


def test_a_grant_covers_its_collection_or_exactly_its_document():
    grants = Grants(frozenset({"deals"}), frozenset({("hr", 3)}))
    assert grants.covers(Resource("deals")) and grants.covers(Resource("deals", 99))
    assert grants.covers(Resource("hr", 3)) and not grants.covers(Resource("hr", 4))
    assert not grants.covers(Resource("hr")) and not grants.covers(Resource(None, 3))


# -- allowed documents, on SQLite and PostgreSQL --------------------------------------------------------


@pytest.fixture
def registry(db_url: str, tmp_path: Path) -> Iterator[tuple]:  # noqa: F811
    registry_url = f"sqlite:///{tmp_path / 'registry.db'}" if db_url.startswith("sqlite") else db_url
    sessions = open_registry(registry_url)
    create_identity_tables(sessions.kw["bind"])
    audit = AuditLog.open(db_url, keys_dir=tmp_path / "keys")
    yield sessions, audit
    sessions.kw["bind"].dispose()


def test_allowed_documents_follow_grants_and_leave_out_removed_documents(registry):
    sessions, audit = registry
    with sessions.begin() as session:
        docs = [Document(collection=c, source_key=f"/x/{i}", name=f"{i}.pdf") for i, c in enumerate(["deals", "deals", "hr", "hr"])]
        session.add_all(docs)
        session.flush()
        ids = [d.id for d in docs]
        for name, role in (("alice", "reader"), ("bob", "reviewer"), ("carol", "reader"), ("dan", "admin"), ("eve", "auditor")):
            add_user(session, audit, OWNER, name, role, None)
        grant(session, audit, OWNER, "alice", "deals")
        grant(session, audit, OWNER, "alice", "hr", ids[3])
        grant(session, audit, OWNER, "bob", "hr")
        grant(session, audit, OWNER, "dan", "deals")  # an admin's grant does not make admins readers
    people = {}
    with sessions() as session:
        from pipeline.identity.users import get_user

        for name in ("alice", "bob", "carol", "dan", "eve"):
            user = get_user(session, name)
            people[name] = Identity(name, user.role, "token", user.id)
        assert allowed_documents(session, people["alice"]) == {ids[0], ids[1], ids[3]}
        assert allowed_documents(session, people["alice"], "hr") == {ids[3]}
        assert allowed_documents(session, people["bob"]) == {ids[2], ids[3]}
        assert allowed_documents(session, people["carol"]) == set()
        assert allowed_documents(session, people["dan"]) == set()
        assert allowed_documents(session, people["eve"]) == set()
        assert allowed_documents(session, OWNER) is None
        assert load_grants(session, people["alice"]) == Grants(frozenset({"deals"}), frozenset({("hr", ids[3])}))
    with sessions.begin() as session:
        session.get(Document, ids[1]).removed_at = utcnow()
        revoke(session, audit, OWNER, "alice", "hr", ids[3])
    with sessions() as session:
        assert allowed_documents(session, people["alice"]) == {ids[0]}
    assert [e.payload["name"] for e in audit.entries(event_type=events.GRANT_ADDED)] == ["alice", "alice", "bob", "dan"]


# -- the store's search, filtered before top-k ---------------------------------------------------------


@pytest.fixture(scope="module")
def firm(ingested_samples: Path, tmp_path_factory: pytest.TempPathFactory):
    """The three sample contracts in one collection; alice may read two of them, bob the third."""
    from pipeline.app import Docket
    from pipeline.settings import load_settings

    home = tmp_path_factory.mktemp("firm")
    shutil.rmtree(home)
    shutil.copytree(ingested_samples, home)
    docket = Docket(load_settings(home=home))
    sessions = identity_sessions(docket)
    ids = {d.name: d.id for d in docket.store.documents("samples")}
    with sessions.begin() as session:
        for name in ("alice", "bob"):
            add_user(session, docket.audit, OWNER, name, "reader", None)
        grant(session, docket.audit, OWNER, "alice", "samples", ids[NETGEAR])
        grant(session, docket.audit, OWNER, "alice", "samples", ids[DUOS])
        grant(session, docket.audit, OWNER, "bob", "samples", ids[DRIVEN])
    people = {}
    with sessions() as session:
        from pipeline.identity.users import get_user

        for name in ("alice", "bob"):
            people[name] = Identity(name, "reader", "token", get_user(session, name).id)
        allowed = {name: allowed_documents(session, who, "samples") for name, who in people.items()}
    return docket, ids, allowed


QUESTION = "Which state's law governs the agreement and how can it be terminated?"


@pytest.mark.parametrize("mode", ["dense", "bm25"])
def test_each_user_gets_the_best_of_their_own_documents(firm, mode: str):
    """Dense and BM25 scores do not depend on the filter, so a user's top-k must be exactly the
    unfiltered ranking with the other users' chunks taken out, cut at k: complete, not what is left."""
    docket, ids, allowed = firm
    assert allowed == {"alice": {ids[NETGEAR], ids[DUOS]}, "bob": {ids[DRIVEN]}}
    store = docket.store
    everything = store.search(QUESTION, store.count_live_chunks(), collection="samples", mode=mode)
    top = store.search(QUESTION, 8, collection="samples", mode=mode)
    assert len({h.document_id for h in top}) > 1, "the unfiltered top-k must mix the users' documents"
    for name, mine in allowed.items():
        hits = store.search(QUESTION, 8, collection="samples", mode=mode, allowed_documents=mine)
        expected = [h for h in everything if h.document_id in mine][:8]
        assert [(h.chunk_id, round(h.score, 5)) for h in hits] == [(h.chunk_id, round(h.score, 5)) for h in expected], name
        assert len(hits) == 8 and {h.document_id for h in hits} <= mine
        # Filtering after top-k would have given fewer: what the filter before ranking saves.
        assert len([h for h in top if h.document_id in mine]) < 8 or name == "alice"


def test_hybrid_search_keeps_to_the_users_documents_and_fills_k(firm):
    docket, ids, allowed = firm
    store = docket.store
    for name, mine in allowed.items():
        hits = store.search(QUESTION, 8, collection="samples", allowed_documents=mine)
        assert len(hits) == 8 and {h.document_id for h in hits} <= mine, name
        # Neighbour expansion stays on the hit's own page, so its own document.
        wide = store.search(QUESTION, 4, collection="samples", allowed_documents=mine,
                            options=RetrievalOptions(neighbours=1))
        assert {h.document_id for h in wide} <= mine
    alice, bob = allowed["alice"], allowed["bob"]
    # An explicit document list is narrowed by the grants, never widened.
    assert store.search(QUESTION, 5, collection="samples", document_ids=[ids[DRIVEN]], allowed_documents=alice) == []
    narrowed = store.search(QUESTION, 5, collection="samples", document_ids=[ids[DRIVEN], ids[NETGEAR]], allowed_documents=alice)
    assert narrowed and {h.document_id for h in narrowed} == {ids[NETGEAR]}
    # No grant: nothing, not everything (an empty set is not "no filter").
    assert store.search(QUESTION, 5, collection="samples", allowed_documents=set()) == []
    assert store.search(QUESTION, 5, collection="samples", allowed_documents=None)
    # Listing and filters respect the same ids.
    assert {d.id for d in store.documents("samples", where=DocumentFilter(allowed_document_ids=frozenset(bob)))} == bob
    assert store.matching_document_ids(DocumentFilter("samples", allowed_document_ids=frozenset())) == []
