"""Canonical JSON for payloads: RFC 8785 through the `rfc8785` package, with floats refused up front.

Floats are refused rather than canonicalised because two producers rarely render the same float the
same way; callers turn them into strings (``"0.8125"``) before logging.
"""

from __future__ import annotations

from typing import Any

import rfc8785


def find_float(value: Any, path: str = "$") -> str | None:
    """The JSON path of the first float in `value`, or None."""
    if isinstance(value, float):
        return path
    if isinstance(value, dict):
        for key, item in value.items():
            found = find_float(item, f"{path}.{key}")
            if found:
                return found
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            found = find_float(item, f"{path}[{index}]")
            if found:
                return found
    return None


def canonical_payload(payload: dict[str, Any]) -> str:
    """RFC 8785 text of a payload; TypeError names the path of any float, ValueError any other problem."""
    if not isinstance(payload, dict):
        raise TypeError(f"audit payload must be a JSON object, not {type(payload).__name__}")
    float_path = find_float(payload)
    if float_path:
        raise TypeError(f"audit payload has a float at {float_path}; render it as a string")
    try:
        return rfc8785.dumps(payload).decode("utf-8")
    except rfc8785.CanonicalizationError as error:
        raise ValueError(f"audit payload is not canonical JSON: {error}") from None
