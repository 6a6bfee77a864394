"""Reading and writing the JSON files the log hands to people: checkpoints kept outside the database."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from audit.errors import AuditError
from audit.verify_bundle import CHECKPOINT_FORMAT


def write_json(path: Path, data: Any) -> None:
    """Sorted, indented JSON with a final newline, written atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(path)


def read_checkpoint(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise AuditError(f"checkpoint file not found: {path}") from None
    except (OSError, ValueError) as error:
        raise AuditError(f"{path}: not a readable checkpoint file ({error})") from None
    if not isinstance(data, dict) or data.get("format") != CHECKPOINT_FORMAT:
        raise AuditError(f"{path}: not a Docket audit checkpoint (expected format {CHECKPOINT_FORMAT})")
    return data
