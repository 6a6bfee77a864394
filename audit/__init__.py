"""Docket's append-only, hash-chained, Merkle-tree audit log with signed checkpoints (see docs/audit.md).

The public names are imported on first access (module ``__getattr__``), not here: a process that only
appends to the log (`docket ask`) should not pay for the audit commands' CLI, and one that only catches
an ``AuditError`` should not pay for the log and its database layer.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# Public name -> the module that defines it.
_PUBLIC = {
    "AppendedEntry": "audit.records",
    "AuditContext": "audit.cli",
    "AuditError": "audit.errors",
    "AuditLog": "audit.log",
    "Entry": "audit.records",
    "EntryFilter": "audit.records",
    "NewEvent": "audit.records",
    "Redaction": "audit.records",
    "VerifyReport": "audit.verification.chain",
}

__all__ = sorted(_PUBLIC)

if TYPE_CHECKING:
    from audit.cli import AuditContext
    from audit.errors import AuditError
    from audit.log import AuditLog
    from audit.records import AppendedEntry, Entry, EntryFilter, NewEvent, Redaction
    from audit.verification.chain import VerifyReport


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:  # AttributeError lets `from audit import schema` fall back to the submodule
        raise AttributeError(f"module 'audit' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # looked up once
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_PUBLIC})
