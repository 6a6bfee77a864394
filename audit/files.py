"""Reading and writing the JSON files the log hands to people: checkpoints kept outside the database."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from audit.errors import AuditError
from audit.verification.formats import CHECKPOINT_FORMAT
from audit.verification.hostile_files import BundleFileError, MissingFile, read_checkpoint_file


def write_json(path: Path, data: Any) -> None:
    """Sorted, indented JSON with a final newline, written atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(path)


def read_checkpoint(path: Path) -> dict[str, Any]:
    """A checkpoint file, every field checked (the same strict, bounded reader as the bundle verifier's):
    a file that is missing, not a regular file, too large, not JSON or not a checkpoint is one line."""
    try:
        return read_checkpoint_file(path)
    except MissingFile:
        raise AuditError(f"checkpoint file not found: {path}") from None
    except BundleFileError as error:
        raise AuditError(f"{error}; not a Docket audit checkpoint (format {CHECKPOINT_FORMAT})") from None
