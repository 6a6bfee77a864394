"""What every `docket` command shares: one-line errors with the exit codes below, `--json` printing,
and reading a day from a flag.

Exit codes (docs/cli.md, "Exit codes"), the same in every command and sub-app:

- ``OK`` (0): done.
- ``FAILED`` (1): the command ran, but what it was asked to do failed: a file not ingested, an answer
  withheld or cut short, a review cell that failed, an audit log that does not verify, a database
  locked by another writer past its timeout (retry).
- ``USAGE`` (2): the command could not start on what it was given: bad flags or values, a setting or
  config file, a document, user, review or entry that does not exist, a database a migration must
  upgrade first.
- ``INTERRUPTED`` (130): Ctrl-C (128 + SIGINT); what was already written is complete.

Docket's error classes are looked up by module name, not imported: `docket --help` must not load the
audit log or the settings to be able to report their errors, and an error class whose module was never
imported cannot have been raised.

``audit/cli.py`` follows the same codes without importing this module (audit/ imports nothing else of
Docket, so that an auditor can run it alone).
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

OK = 0
FAILED = 1
USAGE = 2
INTERRUPTED = 130

# (module, class, exit code) of the errors a user can act on, most specific first (a lock timeout is an
# AuditError). Anything else is a bug and keeps its traceback.
USER_ERRORS: tuple[tuple[str, str, int], ...] = (
    ("audit.errors", "AuditLockTimeout", FAILED),
    ("audit.errors", "AuditError", USAGE),
    ("audit.migrations", "MigrationError", USAGE),
    ("ingest.migrations.runner", "MigrationError", USAGE),
    ("pipeline.settings", "ConfigError", USAGE),
    ("pipeline.identity.actors", "IdentityError", USAGE),
    ("pipeline.review.checklist", "ChecklistError", USAGE),
    ("pipeline.review.runner", "ReviewError", USAGE),
    ("pipeline.replay.recorded", "ReplayError", USAGE),
    ("pipeline.replay.snapshots", "SnapshotError", USAGE),
)

err_console = Console(stderr=True, highlight=False, soft_wrap=True)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON (stable keys) instead of a table.")]

_F = TypeVar("_F", bound=Callable[..., Any])


def say_error(message: str) -> None:
    """``error: MESSAGE`` on stderr, one line (the terminal wraps it, rich does not)."""
    err_console.print(f"[bold red]error:[/] {escape(message)}")


def fail(message: str, code: int = FAILED) -> NoReturn:
    say_error(message)
    raise typer.Exit(code)


def error_message(error: BaseException) -> str:
    # A KeyError's str() is its repr, quotes and all.
    return str(error).strip("'\"") if isinstance(error, LookupError) else str(error)


def exit_code_for(error: BaseException, *, lookups: bool = False) -> int | None:
    """The exit code of a user error (``USER_ERRORS``; with ``lookups``, also a LookupError: a name that
    matches nothing), None for any other exception."""
    for module_name, class_name, code in USER_ERRORS:
        module = sys.modules.get(module_name)
        if module is not None and isinstance(error, getattr(module, class_name)):
            return code
    if lookups and isinstance(error, LookupError):
        return USAGE
    return None


def user_errors(command: _F) -> _F:
    """Wrap a command: a user error (or a LookupError from resolving what it was given) becomes
    ``error: ...`` and its exit code, never a traceback."""

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except Exception as error:
            code = exit_code_for(error, lookups=True)
            if code is None:
                raise
            say_error(error_message(error))
            raise typer.Exit(code) from None

    return run  # type: ignore[return-value]


def print_json(data: Any) -> None:
    """``--json`` output: one document on stdout, keys in the order the command built them."""
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")


def parse_day(value: str | None, flag: str):
    """``value`` as a date (None stays None), or a one-line usage error naming ``flag``."""
    from datetime import date

    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        fail(f"{flag} {value}: expected a date as YYYY-MM-DD, e.g. 2022-12-31", USAGE)
