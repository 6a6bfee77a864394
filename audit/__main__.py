"""`python -m audit --db URL --keys DIR COMMAND`: the audit commands with nothing but audit/ installed."""

from __future__ import annotations

import getpass
from pathlib import Path
from typing import Annotated

import typer

from audit.cli import AuditContext, make_app
from audit.log import DEFAULT_LOCK_TIMEOUT

_context: list[AuditContext] = []


def _get_context() -> AuditContext:
    return _context[0]


app = make_app(_get_context)


@app.callback()
def _options(
    db: Annotated[
        str, typer.Option("--db", envvar="DOCKET_AUDIT_URL", help="SQLAlchemy URL of the audit log (all commands but verifier).")
    ] = "",
    keys: Annotated[
        Path | None, typer.Option("--keys", envvar="DOCKET_AUDIT_KEYS", help="Directory of the Ed25519 keys.")
    ] = None,
    actor: Annotated[str, typer.Option(help="Who is acting (recorded with reads, exports, decisions).")] = getpass.getuser(),
    lock_timeout: Annotated[
        float, typer.Option(min=0.001, help="Seconds a write waits for another writer's lock before failing.")
    ] = DEFAULT_LOCK_TIMEOUT,
    witness: Annotated[
        Path | None,
        typer.Option("--witness", envvar="DOCKET_AUDIT_WITNESS", help="JSONL file outside the database: every signed head is appended to it; verify compares."),
    ] = None,
) -> None:
    """Docket's audit log, standalone."""
    _context[:] = [AuditContext(url=db, keys_dir=keys, actor=actor, lock_timeout=lock_timeout, witness=witness)]


if __name__ == "__main__":
    app(prog_name="python -m audit")
