"""What the log hands back: appended entries, full entries, and the filter for listing them."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from audit.errors import AuditError

# The event types Docket writes; the log accepts any short lowercase name.
EVENT_TYPES = (
    "answer",
    "review_started",
    "review_finding",
    "review_completed",
    "sign_off",
    "rejection",
    "correction",
    "redaction",
    "export",
    "read",
    "checkpoint",
    "key_rotation",
)
DECISION_EVENTS = {"approve": "sign_off", "reject": "rejection", "correct": "correction"}


def utc_now() -> str:
    return format_time(datetime.now(UTC))


def format_time(moment: datetime) -> str:
    """Fixed-width UTC text, so that string order is time order in every database."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(value: str | datetime, name: str) -> str:
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
        return format_time(moment)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise AuditError(f"--{name} {value!r} is not an ISO date or time (e.g. 2026-03-01 or 2026-03-01T09:30Z)") from None
    return format_time(moment if moment.tzinfo else moment.replace(tzinfo=UTC))


@dataclass(frozen=True)
class NewEvent:
    """One event to append (see `AuditLog.append` for the rules on each field)."""

    event_type: str
    payload: dict[str, Any]
    actor: str
    request_id: str | None = None
    subjects: tuple[str, ...] = ()
    status: str | None = None


@dataclass(frozen=True)
class AppendedEntry:
    seq: int
    leaf_hash: str
    time: str


@dataclass(frozen=True)
class Redaction:
    by_seq: int
    actor: str
    time: str
    reason: str
    legal_basis: str


@dataclass(frozen=True)
class Entry:
    seq: int
    time: str
    event_type: str
    actor: str
    request_id: str | None
    subjects: tuple[str, ...]
    status: str | None
    payload: dict[str, Any] | None
    payload_commitment: str
    prev_hash: str
    leaf_hash: str
    redaction: Redaction | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["subjects"] = list(self.subjects)
        return data


@dataclass(frozen=True)
class EntryFilter:
    """since is inclusive, until exclusive; text matches inside payloads (case-insensitive)."""

    since: str | datetime | None = None
    until: str | datetime | None = None
    actor: str | None = None
    event_type: str | None = None
    subject: str | None = None
    status: str | None = None
    text: str | None = None

    def describe(self) -> dict[str, str]:
        """The filter as JSON (recorded in export events)."""
        return {k: v if isinstance(v, str) else format_time(v) for k, v in asdict(self).items() if v is not None}
