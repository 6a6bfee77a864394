"""The `docket` command line: the root app, its shared plumbing, and the commands of no other package.

- ``root``: the `docket` app and its own commands (ingest, ask, chat, docs, config, serve, demo), and the
  sub-apps it mounts on first use (``root.LAZY_COMMANDS``);
- ``plumbing``: errors as one line with their exit code, ``--json`` printing, the exit-code table
  (docs/cli.md, "Exit codes");
- ``answers``: how an answer record is printed (ask, chat, the demo);
- ``db``: `docket db`; ``demo``: `docket demo`.

The sub-apps of other packages (`review`, `users`, `audit replay`, `models`, `eval`) live beside what
they drive and build on ``plumbing`` alone.

Importing this package loads none of its modules: a sub-app imports ``pipeline.cli.plumbing``, and that
must not load the root app that mounts the sub-app (no import cycle). ``app``, ``main`` and the root's
other names (``from pipeline.cli import app``, the console script ``pipeline.cli:main``) are looked up
in ``root`` on first access.
"""

from __future__ import annotations

import importlib
from typing import Any

SUBMODULES = ("answers", "batch", "db", "demo", "models", "plumbing", "replay", "review", "root", "users")


def __getattr__(name: str) -> Any:
    if name in SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    if name.startswith("__"):  # dunder lookups (__path__, __file__ ...) are not the root app's names
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    root = importlib.import_module(f"{__name__}.root")
    try:
        return getattr(root, name)
    except AttributeError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
