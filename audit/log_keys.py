"""The keys a log announces (read by a writer under the lock) and the keys `verify` trusts: the
keys directory's, the log's first key pinned on first sight, and `audit.trusted_keys`.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat, load_pem_public_key
from sqlalchemy import Connection, select

from audit.errors import AuditError
from audit.schema import entries, payloads
from audit.verification.entries import key_id_of


@dataclass
class LogKey:
    from_seq: int
    retired_at: int | None = None


@dataclass
class LogKeys:
    """The keys the log announced, as a writer reads them under the lock (verify checks their signatures).

    Read afresh in each write transaction (a few rows, through the event type index): another writer
    may have enrolled or rotated since, and nothing of a rolled-back transaction must linger.
    """

    keys: dict[str, LogKey] = field(default_factory=dict)

    @classmethod
    def read(cls, conn: Connection) -> LogKeys:
        known = cls()
        query = (
            select(entries.c.seq, payloads.c.payload)
            .select_from(entries.join(payloads, payloads.c.seq == entries.c.seq))
            .where(entries.c.event_type == "key_rotation")
            .order_by(entries.c.seq)
        )
        for seq, payload in conn.execute(query):
            try:
                announcement = json.loads(payload)
            except ValueError:
                continue  # verify reports it; a writer only needs the keys it can read
            if isinstance(announcement, dict):
                known.add(seq, announcement)
        return known

    def add(self, seq: int, announcement: dict[str, Any]) -> None:
        previous = self.keys.get(announcement.get("previous_key_id"))  # type: ignore[arg-type]
        if previous is not None and previous.retired_at is None:
            previous.retired_at = seq
        self.keys.setdefault(str(announcement.get("key_id")), LogKey(seq))

    def valid(self, key_id: str) -> bool:
        known = self.keys.get(key_id)
        return known is not None and known.retired_at is None


def key_announcements(conn: Connection) -> list[dict[str, Any]]:
    """The payloads of the log's key_rotation events that parse as JSON objects, in seq order."""
    query = (
        select(payloads.c.payload)
        .select_from(entries.join(payloads, payloads.c.seq == entries.c.seq))
        .where(entries.c.event_type == "key_rotation")
        .order_by(entries.c.seq)
    )
    found = []
    for (payload,) in conn.execute(query):
        try:
            parsed = json.loads(payload)
        except ValueError:
            continue  # verify reports it at its seq
        if isinstance(parsed, dict):
            found.append(parsed)
    return found


def _announced_key(announcement: dict[str, Any]) -> Ed25519PublicKey | None:
    try:
        return Ed25519PublicKey.from_public_bytes(bytes.fromhex(announcement.get("public_key", "")))
    except (TypeError, ValueError):
        return None


def pin_first_key(keys_dir: Path, log_id: str, first: dict[str, Any], anchors: dict[str, Ed25519PublicKey]) -> None:
    """Record the log's first key in the keys directory the first time it is seen, unless it is this workspace's own."""
    key = _announced_key(first)
    if key is None or key_id_of(key) in anchors:
        return
    pin = keys_dir / f"genesis-{log_id}.pub"
    if pin.exists():
        return  # pinned before: `public_keys()` already holds that key, and a different first key fails
    keys_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(pin, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo))
    anchors[key_id_of(key)] = key


_KEY_ID = re.compile(r"^[0-9a-f]{16}$")


def trusted_key(item: str | Path, announcements: list[dict[str, Any]]) -> dict[str, Ed25519PublicKey]:
    """One `audit.trusted_keys` entry: a PEM public key file, or the id of a key the log announces."""
    text = str(item)
    if _KEY_ID.match(text) and not Path(text).exists():
        for announcement in announcements:
            key = _announced_key(announcement)
            if key is not None and key_id_of(key) == text:
                return {text: key}
        raise AuditError(f"trusted key {text}: no key with that id is announced in this log; give its public key file instead")
    path = Path(text).expanduser()
    key = read_public_key_file(
        path,
        unreadable="trusted key {path}: cannot be read ({why})",
        not_pem="trusted key {path}: not a PEM public key file (nor a 16-hex key id)",
        not_ed25519="trusted key {path}: not an Ed25519 public key",
    )
    return {key_id_of(key): key}


def read_public_key_file(path: Path, *, unreadable: str, not_pem: str, not_ed25519: str) -> Ed25519PublicKey:
    """The Ed25519 public key in a PEM file, or an AuditError with the caller's message for what is wrong.

    Each message is a format string given ``path``; ``unreadable`` is also given ``why``, the OS's reason.
    """
    try:
        key = load_pem_public_key(path.read_bytes())
    except OSError as error:
        raise AuditError(unreadable.format(path=path, why=error.strerror or error)) from None
    except ValueError:
        raise AuditError(not_pem.format(path=path)) from None
    if not isinstance(key, Ed25519PublicKey):
        raise AuditError(not_ed25519.format(path=path))
    return key
