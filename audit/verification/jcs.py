"""Canonical JSON (RFC 8785) of float-free JSON with the standard library alone: the bytes that
checkpoints and key messages are signed over.
"""

from __future__ import annotations

import json
from typing import Any

from audit.verification.formats import JSON_SAFE_INT


def _sorted_for_jcs(value: Any) -> Any:
    """Rebuild dicts with keys in UTF-16 code-unit order (RFC 8785 3.2.3), checking every scalar."""
    if isinstance(value, dict):
        try:
            keys = sorted(value, key=lambda k: k.encode("utf-16-be"))
        except AttributeError:
            raise TypeError("canonical JSON: object keys must be strings") from None
        return {k: _sorted_for_jcs(value[k]) for k in keys}
    if isinstance(value, (list, tuple)):
        return [_sorted_for_jcs(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        if abs(value) > JSON_SAFE_INT:
            raise ValueError(f"canonical JSON: integer {value} is outside the IEEE-754 safe range")
        return value
    raise TypeError(f"canonical JSON: unsupported value of type {type(value).__name__}")


def canonical_json(value: Any) -> bytes:
    """RFC 8785 bytes of float-free JSON. json.dumps escapes exactly as RFC 8785 3.2.2.2 asks."""
    return json.dumps(_sorted_for_jcs(value), ensure_ascii=False, separators=(",", ":")).encode("utf-8")
