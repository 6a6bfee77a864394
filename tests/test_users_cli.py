"""`docket users ...` end to end, and who the actor of a CLI entry is (the OS user, not DOCKET_ACTOR)."""

from __future__ import annotations

import json
import os
import pwd
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import DUOS, NETGEAR
from pipeline.cli import app

runner = CliRunner()
ME = f"os-user:{pwd.getpwuid(os.geteuid()).pw_name}"
PASSWORD = "correct horse battery staple"


def invoke(*args: str, code: int = 0, input: str | None = None, env: dict | None = None):
    result = runner.invoke(app, list(args), input=input, env=env)
    assert result.exit_code == code, result.output
    return result


def entries(*filters: str) -> list[dict]:
    return json.loads(invoke("audit", "list", "--json", *filters).stdout)


def test_add_grant_token_and_list(samples_copy: Path):
    invoke("users", "add", "alice", "--role", "reader", "--password-stdin", input=PASSWORD + "\n")
    invoke("users", "add", "root-admin", "--role", "admin", "--password-stdin", input=PASSWORD + "\n")
    invoke("users", "grant", "alice", "-c", "samples", "--document", NETGEAR)
    duos = json.loads(invoke("users", "grant", "alice", "-c", "samples", "--doc", DUOS, "--json").stdout)
    issued = json.loads(invoke("users", "token", "alice", "--expires", "7d", "--json").stdout)
    assert issued["token"].startswith("dkt_") and issued["user"] == "alice" and issued["expires_at"]

    users = {u["name"]: u for u in json.loads(invoke("users", "list", "--json").stdout)}
    assert set(users) == {"alice", "root-admin"}
    alice = users["alice"]
    assert (alice["role"], alice["disabled"], alice["has_password"], alice["active_tokens"]) == ("reader", False, True, 1)
    documents = {d["name"]: d["id"] for d in json.loads(invoke("docs", "list", "-c", "samples", "--json").stdout)["documents"]}
    assert duos["document_id"] == documents[DUOS]
    assert sorted((g["collection"], g["document_id"]) for g in alice["grants"]) == sorted(
        [("samples", documents[NETGEAR]), ("samples", documents[DUOS])]
    )
    assert alice["created_by"] == ME and users["root-admin"]["role"] == "admin"

    # The token printed works, once revoked it does not, and it was never written anywhere.
    from pipeline.app import Docket
    from pipeline.identity.models import identity_sessions
    from pipeline.identity.tokens import authenticate_token
    from pipeline.settings import load_settings

    docket = Docket(load_settings())
    with identity_sessions(docket).begin() as session:
        me = authenticate_token(session, docket.audit, issued["token"])
    assert me is not None and me.actor == "token:alice"
    listed = json.loads(invoke("users", "tokens", "alice", "--json").stdout)
    assert [(t["token_id"], t["state"]) for t in listed] == [(issued["token_id"], "active")]
    assert "token" not in listed[0]
    invoke("users", "revoke-token", issued["token_id"])
    with identity_sessions(docket).begin() as session:
        assert authenticate_token(session, docket.audit, issued["token"]) is None
    assert issued["token"] not in (samples_copy / "registry.db").read_bytes().decode("latin-1")

    logged = [(e["event_type"], e["actor"]) for e in entries() if e["event_type"] != "read"]
    assert logged[:6] == [("user_added", ME), ("user_added", ME), ("grant_added", ME), ("grant_added", ME),
                          ("token_issued", ME), ("token_revoked", ME)]
    assert all(issued["token"] not in json.dumps(e) and PASSWORD not in json.dumps(e) for e in entries())

    invoke("users", "revoke", "alice", "-c", "samples", "--document", NETGEAR)
    invoke("users", "disable", "alice")
    assert json.loads(invoke("users", "list", "--json").stdout)[0]["disabled"] is True


def test_bad_input_is_one_line_and_exit_2(home: Path):
    invoke("users", "add", "alice", "--role", "reader", "--password-stdin", input=PASSWORD + "\n")
    for args, input_, message in [
        (("users", "add", "bob", "--role", "boss", "--password-stdin"), PASSWORD + "\n", "role 'boss': expected one of"),
        (("users", "add", "alice", "--role", "reader", "--password-stdin"), PASSWORD + "\n", "user 'alice' exists already"),
        (("users", "add", "bob", "--role", "reader", "--password-stdin"), "short\n", "at least 12 characters"),
        (("users", "add", "bob", "--role", "reader", "--password-stdin"), "", "stdin held no password"),
        (("users", "add", "b b", "--role", "reader", "--password-stdin"), PASSWORD + "\n", "user name 'b b'"),
        (("users", "grant", "nobody", "-c", "samples"), None, "user 'nobody': no such user"),
        (("users", "grant", "alice", "-c", "samples", "--document", "nope.pdf"), None, "no such document"),
        (("users", "token", "alice", "--expires", "soon"), None, "--expires soon: expected"),
        (("users", "revoke-token", "feedbeef"), None, "token 'feedbeef': no such token"),
        (("users", "revoke", "alice", "-c", "samples"), None, "has no grant on collection 'samples'"),
    ]:
        result = invoke(*args, code=2, input=input_)
        assert message in result.output and "Traceback" not in result.output, (args, result.output)
    assert [u["name"] for u in json.loads(invoke("users", "list", "--json").stdout)] == ["alice"]


def test_a_prompted_password_is_asked_twice(home: Path):
    mismatch = runner.invoke(app, ["users", "add", "bob", "--role", "auditor"], input=f"{PASSWORD}\n{PASSWORD}x\n{PASSWORD}\n{PASSWORD}\n")
    assert mismatch.exit_code == 0, mismatch.output
    assert PASSWORD not in mismatch.output  # hidden
    assert json.loads(invoke("users", "list", "--json").stdout)[0]["role"] == "auditor"


def test_docket_actor_no_longer_decides_who_signs_off(home: Path):
    invoke("users", "add", "alice", "--role", "reader", "--password-stdin", input=PASSWORD + "\n")
    forged = invoke("audit", "annotate", "1", "--decision", "approve", code=2, env={"DOCKET_ACTOR": "Managing Partner (CCO)"})
    assert "DOCKET_ACTOR='Managing Partner (CCO)' is no longer read" in forged.output and ME in forged.output
    assert [e["event_type"] for e in entries() if e["event_type"] != "read"] == ["user_added"]  # nothing recorded

    signed = json.loads(invoke("audit", "annotate", "1", "--decision", "approve", "--json").stdout)
    shown = json.loads(invoke("audit", "show", str(signed["seq"]), "--json").stdout)
    assert (shown["event_type"], shown["actor"]) == ("sign_off", ME)
    # $USER is no better: the actor is the uid's name from the password database.
    again = json.loads(invoke("audit", "annotate", "1", "--decision", "reject", "--json", env={"USER": "cco", "LOGNAME": "cco"}).stdout)
    assert json.loads(invoke("audit", "show", str(again["seq"]), "--json").stdout)["actor"] == ME


def test_the_standalone_audit_tool_records_the_os_user_and_takes_no_actor_flag(home: Path, tmp_path: Path):
    from audit.__main__ import app as audit_app

    db = f"sqlite:///{tmp_path / 'audit.db'}"
    from audit import AuditLog

    AuditLog.open(db, keys_dir=tmp_path / "keys").append("answer", {"q": "x"}, actor="alice")
    base = ["--db", db, "--keys", str(tmp_path / "keys")]
    refused = runner.invoke(audit_app, [*base, "--actor", "Managing Partner (CCO)", "annotate", "1", "--decision", "approve"])
    assert refused.exit_code == 2 and "No such option" in refused.output
    done = runner.invoke(audit_app, [*base, "annotate", "1", "--decision", "approve", "--json"], env={"USER": "cco"})
    assert done.exit_code == 0, done.output
    assert AuditLog.open(db, keys_dir=tmp_path / "keys").get(json.loads(done.stdout)["seq"]).actor == ME


@pytest.mark.parametrize("command", [["users", "--help"], ["users", "add", "--help"]])
def test_users_help(command: list[str], home: Path):
    shown = invoke(*command)
    assert "Usage: " in shown.output
