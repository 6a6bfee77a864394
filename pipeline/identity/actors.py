"""The one identity type the CLI and the service pass down, and the local CLI's identity (the OS user)."""

from __future__ import annotations

import os
import pwd
import re
from dataclasses import dataclass
from typing import Literal, get_args

Role = Literal["reader", "reviewer", "auditor", "admin", "owner"]
Source = Literal["os-user", "token", "session", "proxy"]
# Roles a user of the registry can hold; "owner" is the OS user who owns the workspace's files only.
USER_ROLES: tuple[str, ...] = ("reader", "reviewer", "auditor", "admin")
ROLES: tuple[str, ...] = get_args(Role)
SOURCES: tuple[str, ...] = get_args(Source)

# Names go into actor strings, audit filters and log lines: letters, digits and . _ @ - only.
USER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")


class IdentityError(ValueError):
    """Bad input to the identity layer (a name, role, duration, duplicate user): one line a person can act on."""


@dataclass(frozen=True)
class Identity:
    name: str
    role: Role
    source: Source
    user_id: int | None = None  # users.id; None for the OS user

    @property
    def actor(self) -> str:
        """The actor of the entries this identity makes: how it was established, then who (``token:alice``).

        One string, so every entry (answers, reads, decisions, exports) carries it without each payload
        needing a field of its own, and ``docket audit list --actor token:alice`` finds them."""
        return f"{self.source}:{self.name}"


def check_user_name(name: str) -> str:
    if not USER_NAME.match(name or ""):
        raise IdentityError(
            f"user name {name!r}: use 1 to 64 letters, digits and . _ @ - (starting with a letter or digit)"
        )
    return name


def check_role(role: str) -> str:
    if role not in USER_ROLES:
        raise IdentityError(f"role {role!r}: expected one of {', '.join(USER_ROLES)}")
    return role


def os_user_name() -> str:
    """The login name of this process's effective uid, from the password database.

    Not ``$USER`` / ``$LOGNAME`` (what ``getpass.getuser`` reads first): those are set by whoever starts
    the process and say nothing the kernel vouches for. The uid is what owns the workspace's files."""
    uid = os.geteuid()
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:  # a uid with no passwd entry (some containers): the number is still the truth
        return f"uid{uid}"


def os_identity() -> Identity:
    """The local CLI's identity: the OS user, who owns the workspace and so may do anything in it."""
    return Identity(os_user_name(), "owner", "os-user")


def untrusted_actor_problem(environ: os._Environ | dict[str, str] | None = None) -> str | None:
    """Why the environment must be refused, or None: ``DOCKET_ACTOR`` once named the actor of every
    entry, so anyone could sign off as anyone. It is no longer read; a value other than the OS user's
    own name is refused rather than silently recorded as someone else."""
    environ = os.environ if environ is None else environ
    declared = environ.get("DOCKET_ACTOR")
    if declared is None:
        return None
    me = os_identity()
    if declared in (me.name, me.actor):
        return None
    return (
        f"DOCKET_ACTOR={declared!r} is no longer read: entries are recorded as {me.actor}, the operating-system "
        "user running docket; unset DOCKET_ACTOR (docs/audit.md, 'Who the actor is')"
    )
