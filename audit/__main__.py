"""`python -m audit --db URL --keys DIR COMMAND`: the audit commands with nothing but audit/ installed."""

from __future__ import annotations

import os
import pwd
from pathlib import Path
from typing import Annotated

import typer

from audit.cli import AuditContext, make_app
from audit.log import DEFAULT_LOCK_TIMEOUT

_context: list[AuditContext] = []


def _get_context() -> AuditContext:
    return _context[0]


app = make_app(_get_context)


def _os_actor() -> str:
    """Who is acting, as `docket` records it: ``os-user:`` and the login name of this process's uid.

    Not an --actor flag or $USER, which whoever runs the command sets (a reader could record a
    partner's sign-off); the uid is what the kernel vouches for (docs/audit.md, "Who the actor is")."""
    uid = os.geteuid()
    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:  # a uid with no passwd entry (some containers)
        name = f"uid{uid}"
    return f"os-user:{name}"


@app.callback()
def _options(
    db: Annotated[
        str, typer.Option("--db", envvar="DOCKET_AUDIT_URL", help="SQLAlchemy URL of the audit log (all commands but verifier).")
    ] = "",
    keys: Annotated[
        Path | None, typer.Option("--keys", envvar="DOCKET_AUDIT_KEYS", help="Directory of the Ed25519 keys.")
    ] = None,
    lock_timeout: Annotated[
        float, typer.Option(min=0.001, help="Seconds a write waits for another writer's lock before failing.")
    ] = DEFAULT_LOCK_TIMEOUT,
    witness: Annotated[
        Path | None,
        typer.Option("--witness", envvar="DOCKET_AUDIT_WITNESS", help="JSONL file outside the database: every signed head is appended to it; verify compares."),
    ] = None,
) -> None:
    """Docket's audit log, standalone."""
    _context[:] = [AuditContext(url=db, keys_dir=keys, actor=_os_actor(), lock_timeout=lock_timeout, witness=witness)]


if __name__ == "__main__":
    app(prog_name="python -m audit")
