"""One set of CLI plumbing: errors become one line and the exit code docs/cli.md documents, in every
command and sub-app; the CLI modules import each other without a cycle."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from typer.testing import CliRunner

ROOT = Path(__file__).resolve().parent.parent
# Every command module of `docket` but audit/cli.py, which stands alone (audit/ imports nothing of Docket).
CLI_MODULES = sorted(
    {"pipeline/cli.py", "pipeline/cli_plumbing.py", "pipeline/cli_answers.py", "pipeline/demo.py",
     "pipeline/db_cli.py", "pipeline/review/cli.py", "pipeline/identity/cli.py", "pipeline/evaluation.py"}
    | {str(p.relative_to(ROOT)) for p in ROOT.glob("pipeline/*/*cli.py")}
)


def module_name(path: str) -> str:
    return path.removesuffix(".py").replace("/", ".")


def imported_modules(path: Path) -> set[str]:
    """Every module an absolute import in the file names, at any depth (imports inside functions too)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)  # `from pkg import module`
    return names


def test_exit_codes_of_user_errors():
    from audit.errors import AuditError, AuditLockTimeout
    from pipeline.cli_plumbing import FAILED, USAGE, exit_code_for
    from pipeline.identity.actors import IdentityError
    from pipeline.settings import ConfigError

    assert exit_code_for(AuditLockTimeout("busy")) == FAILED == 1  # a busy log: retry
    assert exit_code_for(AuditError("no such entry")) == USAGE == 2
    assert exit_code_for(ConfigError("bad setting")) == exit_code_for(IdentityError("bad role")) == USAGE
    assert exit_code_for(KeyError("nope")) is None  # a bug's KeyError keeps its traceback ...
    assert exit_code_for(KeyError("nope"), lookups=True) == USAGE  # ... unless the command resolves names
    assert exit_code_for(ValueError("a bug")) is None


def test_an_unknown_document_is_one_line_and_exit_2_in_every_command(samples_copy: Path):
    from pipeline.cli import app

    runner = CliRunner()
    for argv in (["docs", "show", "no-such.pdf"], ["docs", "remove", "no-such.pdf"], ["docs", "tag", "no-such.pdf", "-t", "NDA"],
                 ["users", "grant", "nobody", "-c", "samples", "--doc", "no-such.pdf"]):
        result = runner.invoke(app, argv, env={"COLUMNS": "200"})
        assert result.exit_code == 2, (argv, result.output)
        assert result.output.startswith("error: ") and "Traceback" not in result.output, (argv, result.output)
    assert "document 'no-such.pdf': no such document" in runner.invoke(app, ["docs", "show", "no-such.pdf"]).output


def test_no_cli_module_defines_its_own_error_or_json_plumbing():
    own = {"_fail", "fail", "_user_errors", "user_errors", "_print_json", "print_json", "parse_day"}
    defined = {
        path: sorted(node.name for node in ast.walk(ast.parse((ROOT / path).read_text()))
                     if isinstance(node, ast.FunctionDef) and node.name in own)
        for path in CLI_MODULES if path != "pipeline/cli_plumbing.py"
    }
    assert {path: names for path, names in defined.items() if names} == {}


def test_the_cli_modules_import_each_other_without_a_cycle():
    """Function-level imports count: a lazy import that closes a cycle still ties the modules together."""
    modules = {module_name(p): imported_modules(ROOT / p) for p in CLI_MODULES}
    edges = {m: sorted(n for n in modules if n != m and n in imports) for m, imports in modules.items()}

    def cycle_from(start: str, node: str, path: list[str]) -> list[str] | None:
        for nxt in edges[node]:
            if nxt == start:
                return [*path, nxt]
            if nxt not in path and (found := cycle_from(start, nxt, [*path, nxt])):
                return found
        return None

    assert [c for m in edges if (c := cycle_from(m, m, [m]))] == []
    assert "pipeline.cli_plumbing" in edges["pipeline.review.cli"]  # the scan does see the imports
    # The sub-apps build on the plumbing, never on the root app that mounts them.
    assert [m for m, e in edges.items() if "pipeline.cli" in e] == []


@pytest.mark.parametrize("module", ["pipeline.cli_plumbing", "pipeline.cli_answers"])
def test_the_plumbing_imports_nothing_of_the_engine(module: str):
    path = ROOT / (module.replace(".", "/") + ".py")
    engine = {m for m in imported_modules(path) if m.split(".")[0] in ("ingest", "audit")
              or (m.startswith("pipeline") and not m.startswith("pipeline.cli_"))}
    assert engine == set()
