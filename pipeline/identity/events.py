"""The audit events of the identity layer: user and grant changes, token issues, failed logins, denials.

They go through ``Docket.audit`` (the secret-masking log) like every other entry. Payloads never hold a
password, a token or a session secret: a token is named by its public ``token_id`` only.
"""

from __future__ import annotations

from typing import Any

from pipeline.identity.actors import Identity

USER_ADDED = "user_added"
USER_DISABLED = "user_disabled"
GRANT_ADDED = "grant_added"
GRANT_REVOKED = "grant_revoked"
TOKEN_ISSUED = "token_issued"
TOKEN_REVOKED = "token_revoked"
LOGIN_FAILED = "login_failed"
ACCESS_DENIED = "access_denied"
IDENTITY_EVENTS = (USER_ADDED, USER_DISABLED, GRANT_ADDED, GRANT_REVOKED, TOKEN_ISSUED, TOKEN_REVOKED, LOGIN_FAILED, ACCESS_DENIED)

# A failed login names who tried (as typed) and from where; the actor is this fixed name, since nobody
# was authenticated (and a name typed by a stranger must not become an actor).
ANONYMOUS_ACTOR = "anonymous"


def record(audit, event_type: str, payload: dict[str, Any], actor: str, *, subjects=(), status=None,
           request_id: str | None = None) -> int:
    """Append one identity event; its seq."""
    appended = audit.append(event_type, payload, actor=actor, request_id=request_id, subjects=list(subjects), status=status)
    return appended.seq


def user_subject(name: str) -> str:
    return f"user:{name}"


def record_denied(audit, identity: Identity, action: str, resource=None, *, request_id: str | None = None,
                  detail: str | None = None) -> int:
    """An ``access_denied`` entry: who (the authenticated actor) was refused what, on which resource."""
    payload: dict[str, Any] = {"action": action, "role": identity.role}
    if resource is not None:
        payload["collection"] = resource.collection
        payload["document_id"] = resource.document_id
    if detail:
        payload["detail"] = detail
    return record(audit, ACCESS_DENIED, payload, identity.actor, subjects=[user_subject(identity.name)],
                  status="denied", request_id=request_id)


def record_login_failed(audit, name: str | None, source: str, reason: str, client: str | None = None) -> int:
    """A ``login_failed`` entry. ``name`` is as given (cut to 64 characters); ``reason`` one of
    unknown-user, wrong-password, no-password, disabled, unknown-token, expired, revoked, untrusted-proxy."""
    payload: dict[str, Any] = {"name": (name or "")[:64], "source": source, "reason": reason}
    if client:
        payload["client"] = client[:200]
    return record(audit, LOGIN_FAILED, payload, ANONYMOUS_ACTOR, status="failed")
