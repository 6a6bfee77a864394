"""The rules on an event's own fields (type, actor, request id, subjects, status), checked before
anything is written.
"""

from __future__ import annotations

import re
from collections.abc import Sequence


from audit.errors import AuditError


_EVENT_TYPE = re.compile(r"^[a-z][a-z0-9_]{0,31}$")


_SHORT_TEXT = 200


def check_fields(
    event_type: str, actor: str, request_id: str | None, subject_list: Sequence[str], status: str | None
) -> None:
    if not _EVENT_TYPE.match(event_type):
        raise AuditError(f"event type {event_type!r} must be lowercase letters, digits and _ (max 32)")
    if not actor or len(actor) > _SHORT_TEXT:
        raise AuditError("actor must be a non-empty name of at most 200 characters")
    for name, value in (("request_id", request_id), ("status", status)):
        if value is not None and (not isinstance(value, str) or len(value) > _SHORT_TEXT):
            raise AuditError(f"{name} must be a string of at most 200 characters")
    if isinstance(subject_list, str):
        raise AuditError("subjects must be a list of strings, not one string")
    for subject in subject_list:
        if not isinstance(subject, str) or not subject or len(subject) > _SHORT_TEXT:
            raise AuditError(f"subject {subject!r} must be a non-empty string of at most 200 characters")
    for value in (actor, request_id, status, *subject_list):
        if value is not None and not _encodable(value):
            raise AuditError(f"{value!r} is not valid Unicode text (it holds a lone surrogate)")


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
