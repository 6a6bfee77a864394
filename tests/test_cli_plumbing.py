"""One CLI package with one set of plumbing: errors become one line and the exit code docs/cli.md
documents, in every command and sub-app; the CLI modules import each other without a cycle."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from typer.testing import CliRunner

ROOT = Path(__file__).resolve().parent.parent
# Every command module of `docket` but audit/cli.py, which stands alone (audit/ imports nothing of Docket).
CLI_MODULES = sorted(
    {str(p.relative_to(ROOT)) for p in ROOT.glob("pipeline/cli/*.py")}
    | {str(p.relative_to(ROOT)) for p in ROOT.glob("pipeline/*/*cli.py")}
)
PLUMBING = "pipeline/cli/plumbing.py"


def module_name(path: str) -> str:
    return path.removesuffix(".py").removesuffix("/__init__").replace("/", ".")


def imported_modules(path: Path) -> set[str]:
    """Every module an absolute import in the file names, at any depth (imports inside functions too).
    A name taken from the ``pipeline.cli`` package that is not one of its modules comes from
    ``pipeline.cli.root``, where the package looks it up."""
    from pipeline.cli import SUBMODULES

    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)  # `from pkg import module`
            if node.module == "pipeline.cli" and any(alias.name not in SUBMODULES for alias in node.names):
                names.add("pipeline.cli.root")
    return names


def test_exit_codes_of_user_errors():
    from audit.errors import AuditError, AuditLockTimeout
    from pipeline.cli.plumbing import FAILED, USAGE, exit_code_for
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
        for path in CLI_MODULES if path != PLUMBING
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
    assert "pipeline.cli.plumbing" in edges["pipeline.cli.review"]  # the scan does see the imports
    # The sub-apps build on the plumbing, never on the root app that mounts them (only `python -m
    # pipeline.cli` starts from it).
    assert [m for m, e in edges.items() if "pipeline.cli.root" in e] == ["pipeline.cli.__main__"]


@pytest.mark.parametrize("module", ["pipeline.cli", "pipeline.cli.plumbing", "pipeline.cli.answers"])
def test_the_plumbing_imports_nothing_of_the_engine(module: str):
    path = ROOT / (module.replace(".", "/") + ".py")
    path = path if path.is_file() else path.with_suffix("") / "__init__.py"
    engine = {m for m in imported_modules(path) if m.split(".")[0] in ("ingest", "audit")
              or (m.startswith("pipeline") and m not in ("pipeline.cli.plumbing", "pipeline.cli.plumbing.say_error"))}
    assert engine == set()


def test_the_package_keeps_the_names_others_import():
    """`from pipeline.cli import app` (tests, the service), the console script `pipeline.cli:main` and
    `python -m pipeline.cli` resolve through the package; importing the plumbing loads no root app."""
    import subprocess
    import sys

    code = ("import sys; import pipeline.cli.plumbing; print('pipeline.cli.root' in sys.modules); "
            "from pipeline.cli import app, main, LAZY_COMMANDS; print(callable(main), 'audit' in LAZY_COMMANDS)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.split() == ["False", "True", "True"]
    shown = subprocess.run([sys.executable, "-m", "pipeline.cli", "--help"], capture_output=True, text=True, cwd=ROOT,
                           env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"})
    assert shown.returncode == 0 and "Usage: " in shown.stdout, shown.stderr
    with pytest.raises(AttributeError, match="has no attribute 'no_such_name'"):
        import pipeline.cli

        pipeline.cli.no_such_name  # noqa: B018


def test_every_sub_app_lives_in_the_cli_package_and_builds_on_the_plumbing():
    """No command module outside pipeline/cli/ (but audit/cli.py, which stands alone; `eval`'s is
    pipeline/cli/eval.py, over pipeline/evaluation.py) and no typer import elsewhere; each sub-app module
    there takes its errors, ``--json`` and exit codes from the plumbing."""
    elsewhere = sorted(str(p.relative_to(ROOT)) for p in ROOT.glob("pipeline/**/*.py")
                       if (p.name == "cli.py" or p.name.endswith("_cli.py")) and p.parent.name != "cli")
    assert elsewhere == []
    typer_elsewhere = sorted(str(p.relative_to(ROOT)) for p in [*ROOT.glob("pipeline/**/*.py"), *ROOT.glob("ingest/**/*.py")]
                             if p.parent.name != "cli" and "typer" in imported_modules(p))
    assert typer_elsewhere == []  # commands are defined in pipeline/cli/ only
    sub_apps = [p for p in CLI_MODULES if p.startswith("pipeline/cli/") and "def make_" in (ROOT / p).read_text()]
    assert len(sub_apps) >= 6, sub_apps  # docs, config, review, users, models, db
    assert [p for p in sub_apps if "pipeline.cli.plumbing" not in imported_modules(ROOT / p)] == []


def test_help_mounts_no_sub_app():
    """`docket --help` lists every command from ``LAZY_COMMANDS`` without importing a sub-app's module."""
    import json
    import subprocess
    import sys

    code = ("import json, sys\nfrom pipeline.cli import app\ntry:\n    app(['--help'])\nexcept SystemExit:\n    pass\n"
            "print(json.dumps(sorted(m for m in sys.modules if m.startswith('pipeline.cli'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT,
                         env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"})
    listed = out.stdout.strip().splitlines()
    assert json.loads(listed[-1]) == ["pipeline.cli", "pipeline.cli.answers", "pipeline.cli.options",
                                      "pipeline.cli.plumbing", "pipeline.cli.root"]
    assert all(any(line.startswith(f"│ {name} ") for line in listed) for name in ("docs", "config", "review", "users")), out.stdout


def test_python_m_pipeline_review_is_the_review_group_of_docket():
    """`python -m pipeline.review` (pipeline/review/__main__.py) runs the group pipeline/cli/review.py builds."""
    import subprocess
    import sys

    env = {"COLUMNS": "200", "PATH": "/usr/bin:/bin"}
    alone = subprocess.run([sys.executable, "-m", "pipeline.review", "--help"], capture_output=True, text=True, cwd=ROOT, env=env)
    mounted = subprocess.run([sys.executable, "-m", "pipeline.cli", "review", "--help"], capture_output=True, text=True,
                             cwd=ROOT, env=env)
    assert alone.returncode == mounted.returncode == 0, alone.stderr + mounted.stderr

    def commands(text: str) -> list[str]:
        return [line.split()[1] for line in text.splitlines() if line.startswith("│ ") and len(line.split()) > 2
                and not line.split()[1].startswith("-")]

    assert commands(alone.stdout) == commands(mounted.stdout)
    assert {"run", "show", "report", "diff", "sign-off", "replay"} <= set(commands(alone.stdout))


def test_the_demo_finds_the_sample_contracts_from_inside_the_package():
    from pipeline.cli.demo import QUESTIONS, SAMPLES

    shipped = {p.name for p in SAMPLES.glob("*.pdf")}
    assert SAMPLES == ROOT / "samples" / "contracts"
    assert {doc for _, doc in QUESTIONS if doc} <= shipped
