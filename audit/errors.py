"""The one error type the audit log raises for bad input or state; its message is one line for a user."""


class AuditError(Exception):
    pass


class AuditLockTimeout(AuditError):
    """A writer could not take the log's write lock within `lock_timeout`: the log is busy, not the input bad."""
