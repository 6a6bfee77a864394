"""An audit entry as it is hashed: the leaf encoding, payload commitments, checkpoint, key-handover and
endorsement messages, Ed25519 key ids and signature checks.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from functools import lru_cache
from json.encoder import encode_basestring
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat, load_pem_public_key

from audit.verification.formats import LEAF_VERSION
from audit.verification.jcs import canonical_json


LEAF_FIELDS = ("seq", "time", "event_type", "actor", "request_id", "subjects", "status", "payload_commitment", "prev_hash")
# A row as the verifier reads it: the leaf fields, then what is stored beside them. `subjects` is a
# list (bundles) or the JSON text the database keeps; `payload` is str or UTF-8 bytes, None when erased.
ROW_FIELDS = (*LEAF_FIELDS, "leaf_hash", "salt", "payload")

_LEAF_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
quote_json_string = encode_basestring  # what _LEAF_ENCODER writes for a str, as one C call
# The leaf's keys in RFC 8785 order; each %s receives one value already rendered as JSON.
_LEAF_TEMPLATE = (
    '{"actor":%s,"event_type":%s,"payload_commitment":%s,"prev_hash":%s,"request_id":%s,'
    '"seq":%s,"status":%s,"subjects":%s,"time":%s,"v":' + str(LEAF_VERSION) + "}"
)
# What a leaf hash covers (RFC 9162: 0x00, then the leaf), as one string to encode: one bytes object per row.
HASHED_LEAF_TEMPLATE = "\x00" + _LEAF_TEMPLATE
# Rows whose leaf hashes the checks gather before growing the Merkle frontier with them in one go.
FRONTIER_BATCH = 256


def json_value(value: Any) -> str:
    return quote_json_string(value) if type(value) is str else _LEAF_ENCODER.encode(value)


@lru_cache(maxsize=4096)
def stored_subjects_as_json(text: str) -> str | None:
    """The leaf JSON of a subjects list the database stores as JSON text; None when it is not JSON."""
    try:
        return _LEAF_ENCODER.encode(json.loads(text))
    except ValueError:
        return None


def subjects_as_json(subjects: Any) -> str | None:
    return stored_subjects_as_json(subjects) if type(subjects) is str else json_value(subjects)


def leaf_text(
    seq: Any, time: Any, event_type: Any, actor: Any, request_id: Any, subjects_json: str, status: Any,
    commitment: Any, prev_hash: Any,
) -> str:
    """`canonical_json` of the leaf, written out for speed (`RangeChecker.check_rows` writes the same text inline).

    The keys are fixed ASCII names in RFC 8785 order, and the values (strings, ints, null, a list of
    strings) are rendered by json exactly as RFC 8785 renders them. Any other value type can only make
    the hash differ, which verification reports.
    """
    try:
        return _LEAF_TEMPLATE % (
            quote_json_string(actor), quote_json_string(event_type), quote_json_string(commitment), quote_json_string(prev_hash),
            "null" if request_id is None else quote_json_string(request_id),
            seq if type(seq) is int else json_value(seq),
            "null" if status is None else quote_json_string(status), subjects_json, quote_json_string(time),
        )
    except TypeError:  # a value that is not a string where one belongs (an edited row): render it as it is
        values = (actor, event_type, commitment, prev_hash, request_id, seq, status)
        return _LEAF_TEMPLATE % (*map(json_value, values), subjects_json, json_value(time))


def leaf_bytes(entry: Mapping[str, Any]) -> bytes:
    """The bytes an entry's leaf hash commits to: every chained field, never the payload itself."""
    subjects_json = subjects_as_json(entry["subjects"])
    if subjects_json is None:
        raise ValueError(f"seq {entry['seq']}: subjects is not JSON")
    return leaf_text(*(entry[name] for name in LEAF_FIELDS[:5]), subjects_json, entry["status"],
                      entry["payload_commitment"], entry["prev_hash"]).encode("utf-8")


def payload_commitment(salt_hex: str, payload_json: str | bytes) -> str:
    """SHA-256 over a random salt and the canonical payload: erasing both leaves nothing to guess against."""
    digest = hashlib.sha256(bytes.fromhex(salt_hex))
    # update, not +: no copy of a large payload
    digest.update(payload_json if type(payload_json) is bytes else payload_json.encode("utf-8"))
    return digest.hexdigest()


def checkpoint_message(checkpoint: Mapping[str, Any]) -> bytes:
    """The signed bytes of a checkpoint: every field except the signature."""
    return canonical_json({k: v for k, v in checkpoint.items() if k != "signature"})


def key_id_of(public_key: Ed25519PublicKey) -> str:
    return hashlib.sha256(public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)).hexdigest()[:16]


def load_public_keys(directory: Path) -> dict[str, Ed25519PublicKey]:
    """Every ``*.pub`` (PEM) in a directory, by key id (the first 16 hex of SHA-256 of the raw key)."""
    keys: dict[str, Ed25519PublicKey] = {}
    for path in sorted(directory.glob("*.pub")):
        key = load_pem_public_key(path.read_bytes())
        if not isinstance(key, Ed25519PublicKey):
            raise ValueError(f"{path}: not an Ed25519 public key")
        keys[key_id_of(key)] = key
    return keys


def signature_ok(public_key: Ed25519PublicKey, signature_hex: str, message: bytes) -> bool:
    try:
        public_key.verify(bytes.fromhex(signature_hex), message)
    except (InvalidSignature, ValueError):
        return False
    return True


def handover_message(log_id: str, key_id: str, public_key_hex: str, previous_key_id: str | None) -> bytes:
    """What the outgoing key signs when it hands over to a new one."""
    return canonical_json(
        {"log_id": log_id, "key_id": key_id, "public_key": public_key_hex, "previous_key_id": previous_key_id}
    )


# key_rotation payloads written since a log can have several writers' keys at once carry "v": 2. A v1
# payload (one key at a time) reads the same under the v2 rules: its handover comes from the key it retires.
KEY_ANNOUNCEMENT_VERSION = 2


def endorsement_message(log_id: str, key_id: str, public_key_hex: str, endorsed_by: str) -> bytes:
    """What a key already valid in the log signs to enrol another writer's key (`enrol-key`)."""
    return canonical_json(
        {"purpose": "enrol", "log_id": log_id, "key_id": key_id, "public_key": public_key_hex, "endorsed_by": endorsed_by}
    )
