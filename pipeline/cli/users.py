"""`docket users ...`: the service's users, their grants and API tokens, administered on the server's machine.

Whoever runs it acts as the OS user (``os-user:NAME``), who owns the workspace's files and so may
administer it; that is how the first admin is made. Every change is an audit event.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import asdict
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from pipeline.cli.plumbing import JsonFlag, print_json, user_errors
from pipeline.identity.actors import USER_ROLES, Identity, IdentityError

_out = Console(highlight=False, soft_wrap=True)
_err = Console(stderr=True, highlight=False, soft_wrap=True)

USERS_HELP = "Add, list and disable service users; grant collections and documents; issue and revoke API tokens."
Name = Annotated[str, typer.Argument(help="User name.")]
CollectionOpt = Annotated[str, typer.Option("--collection", "-c", help="Collection the grant is on.")]
DocumentOpt = Annotated[
    str | None, typer.Option("--document", "--doc", help="Only this document of the collection (id, file name or SHA-256 prefix).")
]


def _read_password(from_stdin: bool) -> str:
    from pipeline.identity.passwords import check_password_strength

    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise IdentityError("--password-stdin: stdin held no password (give it as one line)")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    return check_password_strength(password)


def make_users_app(get_docket: Callable[[], Any], get_identity: Callable[[], Identity]) -> typer.Typer:
    """The `users` command group; ``get_docket`` and ``get_identity`` (who acts) are called when a command runs."""
    app = typer.Typer(no_args_is_help=True, help=USERS_HELP)

    def sessions():
        from pipeline.identity.models import identity_sessions

        return identity_sessions(get_docket())

    def document_id(collection: str, ref: str | None) -> int | None:
        if ref is None:
            return None
        if ref.isdigit():
            return int(ref)  # checked against the collection by grant(); revoke takes a removed document's id too
        return get_docket().store.resolve(ref, collection).id

    @app.command("add")
    @user_errors
    def add(
        name: Name,
        role: Annotated[str, typer.Option("--role", help=f"One of {', '.join(USER_ROLES)}.")],
        password_stdin: Annotated[bool, typer.Option("--password-stdin", help="Read the password as one line from stdin.")] = False,
        no_password: Annotated[bool, typer.Option("--no-password", help="No password: the user signs in by token or SSO proxy only.")] = False,
        as_json: JsonFlag = False,
    ) -> None:
        """Add a user with a role; the password comes from a hidden prompt (asked twice) or --password-stdin."""
        from pipeline.identity.actors import check_role, check_user_name
        from pipeline.identity.users import add_user

        check_user_name(name)
        check_role(role)  # before asking for a password the command would then refuse
        if no_password and password_stdin:
            raise IdentityError("--no-password and --password-stdin: give one of them")
        password = None if no_password else _read_password(password_stdin)
        docket = get_docket()
        with sessions().begin() as session:
            user = add_user(session, docket.audit, get_identity(), name, role, password)
        if as_json:
            print_json(asdict(user))
        else:
            _out.print(f"Added {escape(user.name)} ({user.role}). Grant collections with `docket users grant {escape(user.name)} -c COLLECTION`.")

    @app.command("list")
    @user_errors
    def list_(as_json: JsonFlag = False) -> None:
        """Users, their roles, grants and active tokens."""
        from pipeline.identity.tokens import list_tokens
        from pipeline.identity.users import grants_of, list_users

        with sessions()() as session:
            users = list_users(session)
            rows = [
                {**asdict(u), "grants": [{"collection": g.collection, "document_id": g.document_id} for g in grants_of(session, u.name)],
                 "active_tokens": sum(t.state == "active" for t in list_tokens(session, u.name))}
                for u in users
            ]
        if as_json:
            print_json(rows)
            return
        table = Table("name", "role", "state", "grants", "tokens", "created")
        for r in rows:
            grants = ", ".join(g["collection"] + (f"#{g['document_id']}" if g["document_id"] is not None else "") for g in r["grants"])
            table.add_row(r["name"], r["role"], "disabled" if r["disabled"] else "active", escape(grants or "-"),
                          str(r["active_tokens"]), r["created_at"])
        _out.print(table)

    @app.command("disable")
    @user_errors
    def disable(name: Name, as_json: JsonFlag = False) -> None:
        """Refuse the user from now on: password, tokens and browser sessions stop working."""
        from pipeline.identity.users import disable_user

        docket = get_docket()
        with sessions().begin() as session:
            user = disable_user(session, docket.audit, get_identity(), name)
        if as_json:
            print_json(asdict(user))
        else:
            _out.print(f"Disabled {escape(user.name)}.")

    def change_grant(change: Callable[..., Any], name: str, collection: str, document: str | None, as_json: bool,
                     done: str, preposition: str) -> None:
        """Run ``grant`` or ``revoke`` of pipeline.identity.users and report the grant it made or took back."""
        docket = get_docket()
        doc_id = document_id(collection, document)
        with sessions().begin() as session:
            changed = change(session, docket.audit, get_identity(), name, collection, doc_id)
        if as_json:
            print_json(asdict(changed))
        else:
            what = f"document {changed.document_id} of {changed.collection}" if changed.document_id is not None else f"collection {changed.collection}"
            _out.print(f"{done} {escape(what)} {preposition} {escape(name)}.")

    @app.command("grant")
    @user_errors
    def grant_(name: Name, collection: CollectionOpt, document: DocumentOpt = None, as_json: JsonFlag = False) -> None:
        """Let a user read a collection, or one document of it (and, as a reviewer, review it)."""
        from pipeline.identity.users import grant

        change_grant(grant, name, collection, document, as_json, "Granted", "to")

    @app.command("revoke")
    @user_errors
    def revoke_(name: Name, collection: CollectionOpt, document: DocumentOpt = None, as_json: JsonFlag = False) -> None:
        """Take back a grant (the same --collection and --document it was given with)."""
        from pipeline.identity.users import revoke

        change_grant(revoke, name, collection, document, as_json, "Revoked", "from")

    @app.command("token")
    @user_errors
    def token(
        name: Name,
        expires: Annotated[str, typer.Option("--expires", help="Lifetime: 30d, 12h, 90m, 2w, or 'never'.")] = "30d",
        as_json: JsonFlag = False,
    ) -> None:
        """Issue an API token for a user; it is printed once and only its hash is kept."""
        from pipeline.identity.tokens import issue_token, parse_duration

        lifetime = parse_duration(expires)
        docket = get_docket()
        with sessions().begin() as session:
            issued = issue_token(session, docket.audit, get_identity(), name, lifetime)
        if as_json:
            print_json({"token": issued.token, **asdict(issued.info)})
            return
        typer.echo(issued.token)
        until = f"until {issued.info.expires_at}" if issued.info.expires_at else "with no expiry"
        _err.print(f"token {issued.info.token_id} for {escape(name)}, valid {until}. It is shown only now: "
                   "send it as 'Authorization: Bearer TOKEN'.")

    @app.command("tokens")
    @user_errors
    def tokens(name: Name, as_json: JsonFlag = False) -> None:
        """A user's tokens (ids, expiry, state, last use); never the tokens themselves."""
        from pipeline.identity.tokens import list_tokens

        with sessions()() as session:
            found = list_tokens(session, name)
        if as_json:
            print_json([{**asdict(t), "state": t.state} for t in found])
            return
        table = Table("token id", "state", "created", "expires", "last used")
        for t in found:
            table.add_row(t.token_id, t.state, t.created_at, t.expires_at or "never", t.last_used_at or "-")
        _out.print(table)

    @app.command("revoke-token")
    @user_errors
    def revoke_token_(token_id: Annotated[str, typer.Argument(help="The token's id (`docket users tokens NAME`).")],
                      as_json: JsonFlag = False) -> None:
        """Revoke an API token: it is refused from now on."""
        from pipeline.identity.tokens import revoke_token

        docket = get_docket()
        with sessions().begin() as session:
            info = revoke_token(session, docket.audit, get_identity(), token_id)
        if as_json:
            print_json({**asdict(info), "state": info.state})
        else:
            _out.print(f"Revoked token {info.token_id} of {escape(info.user)}.")

    return app
