"""The `docket` command line: one package, one set of plumbing, every sub-app mounted on first use.

- ``root``: the `docket` app, its root options and its own commands (ingest, ask, chat, serve, demo),
  and the sub-apps it mounts when they are first asked for (``root.LAZY_COMMANDS``);
- ``plumbing``: errors as one line with their exit code, ``--json`` printing, the exit-code table
  (docs/cli.md, "Exit codes"); ``options``: the options several commands share;
- the sub-apps, each a ``make_*_app`` (or ``add_*_command``) given a factory for the Docket or its
  settings, called when a command runs: ``docs``, ``config``, ``review``, ``users`` (the service's
  users, pipeline/identity/), ``models`` (``docket models check``), ``replay`` (``audit replay`` and
  ``review replay``), ``db``; ``batch`` is ``ask --questions FILE``, ``demo`` is `docket demo`,
  ``answers`` prints an answer record. `docket audit` is ``audit.cli`` (audit/ stands alone, so an
  auditor can run it without the rest of Docket); ``eval`` is `docket eval`, over ``pipeline.evaluation``.

The sub-apps build on ``plumbing`` and never import ``root``, which imports them only inside its
loaders: no import cycle (tests/test_cli_plumbing.py). Importing this package loads none of its
modules; ``app``, ``main`` and the root's other names (``from pipeline.cli import app``, the console
script ``pipeline.cli:main``) are looked up in ``root`` on first access.
"""

from __future__ import annotations

import importlib
from typing import Any

SUBMODULES = (
    "answers", "batch", "config", "db", "demo", "docs", "eval", "models", "options", "plumbing", "replay", "review", "root", "users",
)


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
