"""The one error type the audit log raises for bad input or state; its message is one line for a user."""


class AuditError(Exception):
    pass
