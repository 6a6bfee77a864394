"""Ed25519 signing keys in the workspace: one PEM pair per key, the active one named in ``ACTIVE``."""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_pem_private_key,
)

from audit.errors import AuditError
from audit.verification.entries import key_id_of, load_public_keys


def public_hex(key: Ed25519PublicKey) -> str:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw).hex()


def _write_private(path: Path, data: bytes) -> None:
    """Write a file of the keys directory, owner-only (0600) from the start."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


class KeyStore:
    """``<key_id>.key`` (private) and ``<key_id>.pub`` files, all 0600, in one directory (0700).

    Never in the database: whoever holds a private key can sign a rewritten history (docs/audit.md).
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def active(self) -> tuple[str, Ed25519PrivateKey]:
        """The active signing key, created on first use."""
        marker = self.directory / "ACTIVE"
        if not marker.is_file():
            return self.generate()
        key_id = marker.read_text().strip()
        return key_id, self.private(key_id)

    def active_id(self) -> str | None:
        """The active key's id (None: no key yet), without loading it."""
        marker = self.directory / "ACTIVE"
        return marker.read_text().strip() if marker.is_file() else None

    def private(self, key_id: str) -> Ed25519PrivateKey:
        path = self.directory / f"{key_id}.key"
        if not path.is_file():
            raise AuditError(f"signing key {key_id} not found in {self.directory}; restore it or rotate to a new key")
        key = load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise AuditError(f"{path}: not an Ed25519 private key")
        return key

    def has_private(self, key_id: str) -> bool:
        return (self.directory / f"{key_id}.key").is_file()

    def generate(self) -> tuple[str, Ed25519PrivateKey]:
        """Create a key and make it the active one (the log announces it with a key_rotation event)."""
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        if self.directory.stat().st_mode & 0o077:
            self.directory.chmod(0o700)  # a directory made before, or by hand: the private keys stay private
        key = Ed25519PrivateKey.generate()
        key_id = key_id_of(key.public_key())
        pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
        # Created 0600 from the start, never world-readable for an instant.
        fd = os.open(self.directory / f"{key_id}.key", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(pem)
        _write_private(self.directory / f"{key_id}.pub", key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo))
        tmp = self.directory / "ACTIVE.tmp"
        _write_private(tmp, (key_id + "\n").encode())
        tmp.replace(self.directory / "ACTIVE")
        return key_id, key

    def public_keys(self) -> dict[str, Ed25519PublicKey]:
        return load_public_keys(self.directory) if self.directory.is_dir() else {}

    def export_public(self, destination: Path) -> list[Path]:
        """Copy every public key (PEM) into `destination`; returns the files written."""
        destination.mkdir(parents=True, exist_ok=True)
        written = []
        for key_id, key in sorted(self.public_keys().items()):
            path = destination / f"{key_id}.pub"
            path.write_bytes(key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo))
            written.append(path)
        return written
