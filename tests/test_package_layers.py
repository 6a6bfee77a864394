"""The packages' layers: pipeline builds on ingest and audit; ingest and audit import neither each other nor pipeline.

An AST scan sees every import, also the ones inside a function (the way a layer breaks quietly); the
subprocess checks what importing ingest's entry modules really loads.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def imported_packages(path: Path) -> set[str]:
    """The top-level package of every absolute import in a Python file, at any depth of the file."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize(("package", "forbidden"), [("ingest", {"pipeline", "audit"}), ("audit", {"ingest", "pipeline"})])
def test_no_module_imports_a_package_above_it(package: str, forbidden: set[str]):
    files = sorted((ROOT / package).rglob("*.py"))
    assert len(files) > 5  # the scan found the package
    offending = {str(f.relative_to(ROOT)): sorted(imported_packages(f) & forbidden) for f in files}
    assert {f: names for f, names in offending.items() if names} == {}


def test_the_scan_sees_an_import_inside_a_function(tmp_path: Path):
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from pipeline.migrations import upgrade_registry\n    import pipeline.app as a\n")
    assert imported_packages(module) == {"pipeline"}


def test_opening_a_registry_and_its_store_loads_nothing_of_pipeline(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    code = (
        "import sys\n"
        "import ingest.store, ingest.registry, ingest.migrations\n"
        f"ingest.registry.open_registry({url!r})\n"
        "print(sorted(m for m in sys.modules if m == 'pipeline' or m.startswith('pipeline.')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]", out.stderr
    assert (tmp_path / "registry.db").is_file()  # it did open (and migrate) the registry


def private_imports(path: Path) -> list[str]:
    """Every `from ingest|pipeline|audit... import _name` in a file: a private name imported from outside."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.split(".")[0] in {"ingest", "pipeline", "audit"}:
                found += [f"{node.module}.{a.name}" for a in node.names if a.name.startswith("_") and not a.name.startswith("__")]
    return found


def test_no_test_or_bench_imports_a_private_name():
    """Issue 14: tests and benches use public names, so a module's private helpers stay free to change."""
    files = sorted((ROOT / "tests").rglob("*.py")) + sorted((ROOT / "bench").rglob("*.py"))
    assert len(files) > 20
    offending = {str(f.relative_to(ROOT)): private_imports(f) for f in files}
    assert {f: names for f, names in offending.items() if names} == {}


def test_the_private_import_scan_sees_one(tmp_path: Path):
    module = tmp_path / "t.py"
    module.write_text("from audit.rows import _hidden, shown\nfrom pipeline import __version__\n")
    assert private_imports(module) == ["audit.rows._hidden"]
