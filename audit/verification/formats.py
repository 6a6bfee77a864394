"""Format identifiers and constants of the audit log's records: the leaf version, the checkpoint and
bundle formats, the genesis hash, the empty tree's root, and the events verification depends on.
"""

from __future__ import annotations

import hashlib


LEAF_VERSION = 1
CHECKPOINT_FORMAT = "docket-audit-checkpoint/1"
BUNDLE_FORMAT = "docket-audit-bundle/1"
GENESIS_HASH = "00" * 32
EMPTY_ROOT = hashlib.sha256(b"").hexdigest()
# Events whose payloads verification itself depends on; they can never be redacted.
STRUCTURAL_EVENTS = frozenset({"checkpoint", "key_rotation", "redaction"})
JSON_SAFE_INT = 2**53 - 1
