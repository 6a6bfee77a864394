"""Users, passwords, API tokens, browser sessions and the SSO proxy header, on SQLite and PostgreSQL.

Everything is real: the registry's database (users live there), Argon2, the audit log the events go to.
"""

from __future__ import annotations

import os
import pwd
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from sqlalchemy import select

from audit import AuditLog
from ingest.registry import Document, open_registry, utcnow
from pipeline.identity import events
from pipeline.identity.actors import Identity, IdentityError, os_identity, untrusted_actor_problem
from pipeline.identity.models import TokenRow, UserRow, create_identity_tables
from pipeline.identity.passwords import hash_password, verify_password
from pipeline.identity.proxy import ProxySettings, identity_from_proxy
from pipeline.identity.sessions import check_csrf, create_session, end_session, lookup_session
from pipeline.identity.tokens import authenticate_token, issue_token, list_tokens, parse_duration, revoke_token
from pipeline.identity.users import add_user, authenticate_password, disable_user, grant, grants_of, revoke
from test_audit_support import db_url  # noqa: F401  (the fixture: SQLite file and PostgreSQL schema)

ADMIN = Identity("root-admin", "owner", "os-user")
PASSWORD = "correct horse battery staple"


class World:
    """A registry with the identity tables and an audit log: on SQLite two files, as a workspace has
    (one file would make the log's append wait on the registry's open write transaction); on
    PostgreSQL one database, as configs/postgres.yaml has."""

    def __init__(self, url: str, tmp: Path):
        registry_url = f"sqlite:///{tmp / 'registry.db'}" if url.startswith("sqlite") else url
        self.sessions = open_registry(registry_url)
        create_identity_tables(self.sessions.kw["bind"])
        self.audit = AuditLog.open(url, keys_dir=tmp / "keys")

    def events(self, event_type: str) -> list:
        return list(self.audit.entries(event_type=event_type))


@pytest.fixture
def world(db_url: str, tmp_path: Path) -> Iterator[World]:  # noqa: F811
    w = World(db_url, tmp_path)
    yield w
    w.sessions.kw["bind"].dispose()


def add(world: World, name: str, role: str = "reader", password: str | None = PASSWORD):
    with world.sessions.begin() as session:
        return add_user(session, world.audit, ADMIN, name, role, password)


def test_passwords_are_argon2id_and_verified_by_argon2(world: World):
    add(world, "alice")
    with world.sessions() as session:
        stored = session.execute(select(UserRow.password_hash).where(UserRow.name == "alice")).scalar_one()
    assert stored.startswith("$argon2id$") and PASSWORD not in stored
    assert PasswordHasher().verify(stored, PASSWORD)  # argon2's own check, not ours
    with world.sessions.begin() as session:
        me = authenticate_password(session, world.audit, "alice", PASSWORD)
        assert me == Identity("alice", "reader", "session", me.user_id) and me.actor == "session:alice"
        assert authenticate_password(session, world.audit, "alice", PASSWORD + "!") is None
        assert authenticate_password(session, world.audit, "nobody", PASSWORD) is None
    failed = world.events(events.LOGIN_FAILED)
    assert [(e.payload["name"], e.payload["reason"], e.actor) for e in failed] == [
        ("alice", "wrong-password", "anonymous"), ("nobody", "unknown-user", "anonymous")
    ]
    assert all(PASSWORD not in str(e.payload) for e in world.audit.entries())


def test_a_hash_made_with_old_parameters_is_upgraded_on_login(world: World):
    add(world, "alice")
    weak = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash(PASSWORD)
    with world.sessions.begin() as session:
        session.execute(UserRow.__table__.update().where(UserRow.name == "alice").values(password_hash=weak))
    assert verify_password(weak, PASSWORD)[1] is not None  # it wants a rehash
    with world.sessions.begin() as session:
        assert authenticate_password(session, world.audit, "alice", PASSWORD) is not None
    with world.sessions() as session:
        upgraded = session.execute(select(UserRow.password_hash).where(UserRow.name == "alice")).scalar_one()
    assert upgraded != weak and not PasswordHasher().check_needs_rehash(upgraded)
    assert verify_password(upgraded, PASSWORD) == (True, None)


def test_bad_names_roles_passwords_and_duplicates_are_refused(world: World):
    add(world, "alice")
    for name, role, password, message in [
        ("alice", "reader", PASSWORD, "exists already"),
        ("bad name", "reader", PASSWORD, "user name 'bad name'"),
        ("carol", "boss", PASSWORD, "role 'boss'"),
        ("carol", "reader", "short", "at least 12 characters"),
    ]:
        with pytest.raises(IdentityError, match=message), world.sessions.begin() as session:
            add_user(session, world.audit, ADMIN, name, role, password)
    assert len(world.events(events.USER_ADDED)) == 1


def test_tokens_expire_are_revoked_and_stop_with_a_disabled_user(world: World):
    add(world, "alice")
    add(world, "bob", "auditor")
    with world.sessions.begin() as session:
        short = issue_token(session, world.audit, ADMIN, "alice", timedelta(minutes=5))
        lasting = issue_token(session, world.audit, ADMIN, "alice", None)
        bobs = issue_token(session, world.audit, ADMIN, "bob", parse_duration("30d"))
    assert short.token.startswith("dkt_") and len(short.token) > 40
    with world.sessions() as session:  # only the hash is stored
        stored = session.execute(select(TokenRow.token_sha256)).scalars().all()
    assert short.token not in stored and len(stored) == 3

    with world.sessions.begin() as session:
        me = authenticate_token(session, world.audit, short.token)
        assert me is not None and (me.name, me.role, me.actor) == ("alice", "reader", "token:alice")
        later = utcnow() + timedelta(minutes=6)
        assert authenticate_token(session, world.audit, short.token, now=later) is None  # expired
        assert authenticate_token(session, world.audit, lasting.token, now=later + timedelta(days=999)) is not None
        assert authenticate_token(session, world.audit, "dkt_" + "x" * 43) is None
        assert authenticate_token(session, world.audit, lasting.token[:-1]) is None
    with world.sessions.begin() as session:
        revoke_token(session, world.audit, ADMIN, lasting.info.token_id)
    with world.sessions.begin() as session:
        assert authenticate_token(session, world.audit, lasting.token) is None
        assert authenticate_token(session, world.audit, bobs.token).role == "auditor"
        disable_user(session, world.audit, ADMIN, "bob")
    with world.sessions.begin() as session:
        assert authenticate_token(session, world.audit, bobs.token) is None
        states = {t.token_id: t.state for t in list_tokens(session, "alice")}
        assert states == {short.info.token_id: "active", lasting.info.token_id: "revoked"}
        used = {t.token_id: t.last_used_at for t in list_tokens(session, "alice")}
        assert used[short.info.token_id] is not None

    reasons = [e.payload["reason"] for e in world.events(events.LOGIN_FAILED)]
    assert reasons == ["expired", "unknown-token", "unknown-token", "revoked", "disabled"]
    issued = world.events(events.TOKEN_ISSUED)
    assert [e.payload["token_id"] for e in issued] == [short.info.token_id, lasting.info.token_id, bobs.info.token_id]
    assert all(t.token not in str(e.payload) for t in (short, lasting, bobs) for e in world.audit.entries())
    assert [e.payload["token_id"] for e in world.events(events.TOKEN_REVOKED)] == [lasting.info.token_id]


def test_durations_parse_or_say_what_to_give():
    assert parse_duration("30d") == timedelta(days=30) and parse_duration("12h") == timedelta(hours=12)
    assert parse_duration("2w") == timedelta(weeks=2) and parse_duration("never") is None
    for bad in ("30", "0d", "-1d", "1y", "soon"):
        with pytest.raises(IdentityError, match="--expires"):
            parse_duration(bad)


def test_disabled_users_cannot_log_in_and_their_sessions_end(world: World):
    add(world, "alice")
    with world.sessions.begin() as session:
        me = authenticate_password(session, world.audit, "alice", PASSWORD)
        opened = create_session(session, me)
    with world.sessions() as session:
        info = lookup_session(session, opened.cookie_value)
    assert info is not None and info.identity.actor == "session:alice"
    assert check_csrf(info, opened.csrf_token) and not check_csrf(info, opened.csrf_token[:-1] + "x")
    assert not check_csrf(info, None) and not check_csrf(info, "")
    with world.sessions() as session:
        assert lookup_session(session, opened.cookie_value, now=opened.expires_at + timedelta(seconds=1)) is None
        assert lookup_session(session, "not-a-session") is None
    with world.sessions.begin() as session:
        disable_user(session, world.audit, ADMIN, "alice")
    with world.sessions.begin() as session:
        assert lookup_session(session, opened.cookie_value) is None
        assert authenticate_password(session, world.audit, "alice", PASSWORD) is None
    assert world.events(events.LOGIN_FAILED)[-1].payload["reason"] == "disabled"
    assert [e.payload["name"] for e in world.events(events.USER_DISABLED)] == ["alice"]


def test_logging_out_ends_the_session(world: World):
    add(world, "alice")
    with world.sessions.begin() as session:
        opened = create_session(session, authenticate_password(session, world.audit, "alice", PASSWORD))
    with world.sessions.begin() as session:
        end_session(session, opened.cookie_value)
        end_session(session, "unknown")  # ignored
    with world.sessions() as session:
        assert lookup_session(session, opened.cookie_value) is None


def test_grants_need_a_document_of_the_collection_and_are_logged(world: World):
    add(world, "alice")
    with world.sessions.begin() as session:
        doc = Document(collection="deals", source_key="/x/a.pdf", name="a.pdf")
        other = Document(collection="hr", source_key="/x/b.pdf", name="b.pdf")
        session.add_all([doc, other])
    with world.sessions.begin() as session:
        grant(session, world.audit, ADMIN, "alice", "deals")
        grant(session, world.audit, ADMIN, "alice", "deals", doc.id)
        with pytest.raises(LookupError, match="not in collection 'deals'"):
            grant(session, world.audit, ADMIN, "alice", "deals", other.id)
        with pytest.raises(IdentityError, match="granted already"):
            grant(session, world.audit, ADMIN, "alice", "deals")
    with world.sessions.begin() as session:
        revoke(session, world.audit, ADMIN, "alice", "deals")
        assert [(g.collection, g.document_id) for g in grants_of(session, "alice")] == [("deals", doc.id)]
        with pytest.raises(LookupError, match="no grant on collection 'hr'"):
            revoke(session, world.audit, ADMIN, "alice", "hr")
    added = [(e.payload["collection"], e.payload["document_id"], e.actor) for e in world.events(events.GRANT_ADDED)]
    assert added == [("deals", None, "os-user:root-admin"), ("deals", doc.id, "os-user:root-admin")]
    assert [e.payload["document_id"] for e in world.events(events.GRANT_REVOKED)] == [None]


def test_the_proxy_header_is_believed_only_from_a_trusted_proxy(world: World):
    add(world, "alice", password=None)
    add(world, "bob")
    settings = ProxySettings("X-Forwarded-User", ("10.0.0.0/24", "::1"))
    with world.sessions.begin() as session:
        me = identity_from_proxy(session, "alice", "10.0.0.7", settings, world.audit)
        assert me is not None and me.actor == "proxy:alice" and me.role == "reader"
        assert identity_from_proxy(session, "alice", "::1", settings) is not None
        assert identity_from_proxy(session, "alice", "10.0.1.7", settings) is None  # not a proxy: header ignored
        assert identity_from_proxy(session, "alice", "not-an-ip", settings) is None
        assert identity_from_proxy(session, "alice", "10.0.0.7", ProxySettings()) is None  # off by default
        assert identity_from_proxy(session, None, "10.0.0.7", settings) is None
        assert identity_from_proxy(session, "mallory", "10.0.0.7", settings, world.audit) is None
        disable_user(session, world.audit, ADMIN, "bob")
        assert identity_from_proxy(session, "bob", "10.0.0.7", settings, world.audit) is None
        # A proxy-only user (no password) cannot log in with a password.
        assert authenticate_password(session, world.audit, "alice", "") is None
    reasons = [(e.payload["source"], e.payload["reason"]) for e in world.events(events.LOGIN_FAILED)]
    assert reasons == [("proxy", "unknown-user"), ("proxy", "disabled"), ("session", "no-password")]


def test_the_local_identity_is_the_os_user_not_the_environment(monkeypatch: pytest.MonkeyPatch):
    me = pwd.getpwuid(os.geteuid()).pw_name
    monkeypatch.setenv("USER", "Managing Partner (CCO)")
    monkeypatch.setenv("LOGNAME", "Managing Partner (CCO)")
    assert os_identity() == Identity(me, "owner", "os-user") and os_identity().actor == f"os-user:{me}"
    assert untrusted_actor_problem({}) is None
    assert untrusted_actor_problem({"DOCKET_ACTOR": me}) is None
    problem = untrusted_actor_problem({"DOCKET_ACTOR": "Managing Partner (CCO)"})
    assert problem and "is no longer read" in problem and f"os-user:{me}" in problem


def test_bad_input_leaves_no_row_and_no_event(world: World):
    """A failed change (bad role) leaves neither a user row nor an audit event."""
    with pytest.raises(IdentityError), world.sessions.begin() as session:
        add_user(session, world.audit, ADMIN, "carol", "boss", PASSWORD)
    with world.sessions() as session:
        assert session.execute(select(UserRow)).first() is None
    assert world.audit.size == 0
    assert hash_password(PASSWORD) != hash_password(PASSWORD)  # salted
