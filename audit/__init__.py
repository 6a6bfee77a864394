"""Docket's append-only, hash-chained, Merkle-tree audit log with signed checkpoints (see docs/audit.md)."""

from audit.cli import AuditContext
from audit.errors import AuditError
from audit.log import AuditLog
from audit.records import AppendedEntry, Entry, EntryFilter, NewEvent, Redaction
from audit.verify_bundle import VerifyReport

__all__ = ["AppendedEntry", "AuditContext", "AuditError", "AuditLog", "Entry", "EntryFilter", "NewEvent", "Redaction", "VerifyReport"]
