"""The keys an auditor trusts (``--trust``): a PEM or hex key file or a key id, and the bundle's key
chain they pin.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from audit.verification.entries import key_id_of
from audit.verification.chain import ChainProblem, ChainVerifier
from audit.verification.hostile_files import BundleFileError, is_hex, read_bounded


def load_trusted_key(value: str) -> tuple[str, Ed25519PublicKey | None]:
    """A `--trust` value: a public key file (PEM, or the raw key as 64 hex digits) or a key id (16 hex
    digits). Returns the key id and the key (None when pinned by id: the bundle must announce it)."""
    path = Path(value)
    if is_hex(value.lower(), 16) and not path.exists():
        return value.lower(), None
    data = read_bounded(path, value, 64 << 10)
    if data.lstrip().startswith(b"-----BEGIN"):
        try:
            key = load_pem_public_key(data)
        except ValueError:
            raise BundleFileError(f"{value}: not a readable PEM public key") from None
        if not isinstance(key, Ed25519PublicKey):
            raise BundleFileError(f"{value}: not an Ed25519 public key")
        return key_id_of(key), key
    text = data.decode("ascii", "replace").strip().lower()
    if not is_hex(text, 64):
        raise BundleFileError(
            f"{value}: neither a PEM public key, an Ed25519 public key in hex (64 digits), nor a key id (16 hex digits)"
        )
    key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(text))
    return key_id_of(key), key


def bundle_key_chain(
    key_events: Sequence[tuple[int, dict[str, Any]]], anchors: Mapping[str, Ed25519PublicKey] | None, log_id: str,
) -> tuple[ChainVerifier, list[str]]:
    """The log's key events (announcements, handovers, endorsements) run through `ChainVerifier`'s own
    key rules, without the rows between them: a subset bundle holds only these and the selected entries."""
    chain = ChainVerifier(anchors, log_id)
    problems = []
    register = getattr(chain, "register_key_event", None) or chain._register_key
    for seq, payload in key_events:
        try:
            register(seq, payload)
        except ChainProblem as problem:
            problems.append(f"key_events.jsonl: {problem.problem}")
            break  # later keys depend on this one
    return chain, problems
