"""YAML presets for Docket. Each file here is a preset, named by its stem (``--config mistral``)."""

from __future__ import annotations

from pathlib import Path

PRESETS_DIR = Path(__file__).resolve().parent
CHECKLISTS_DIR = PRESETS_DIR / "checklists"


def preset_names() -> list[str]:
    return sorted(p.stem for p in PRESETS_DIR.glob("*.yaml"))


def preset_path(name: str) -> Path | None:
    path = PRESETS_DIR / f"{name}.yaml"
    return path if path.is_file() else None
