"""Start-up: asking a question loads neither torch nor transformers, and `docket --help` loads none of
Docket's engine. Each check runs in a fresh interpreter, since this test process has loaded everything."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from conftest import NETGEAR
from ingest.config import EmbeddingSettings
from ingest.embedding import Encoder

HEAVY = ("torch", "transformers", "sentence_transformers")
# Loaded by other commands, never by an ask in a workspace asked before: the audit commands, PostgreSQL's
# dialect on a SQLite log, verify's process pool, BM25's builder (the first search saved the index), PDF
# readers, migrations (the first ask made the audit log), and the engines of review, eval, the service,
# the web app and the LLM client.
NOT_ASKING = ("audit.cli", "sqlalchemy.dialects.postgresql", "concurrent.futures.process", "bm25s", "scipy", "pymupdf",
              "pypdf", "alembic", "pipeline.review", "pipeline.evaluation", "pipeline.service", "pipeline.web", "pipeline.llm")
QUESTION = "Which state's law governs the distributor agreement?"


def run_python(code: str) -> tuple[object, str]:
    """Run ``code`` in a fresh interpreter: (the JSON of its last stdout line, the stdout before it)."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "COLUMNS": "200"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    *before, last = proc.stdout.strip().splitlines()
    return json.loads(last), "\n".join(before)


def test_asking_loads_neither_torch_nor_transformers(samples_copy: Path):
    """`docket ask` with the extractive answerer, start to end on an ingested workspace, in a process of
    its own: the answer must come (quoted, cited, logged) with torch and transformers never imported,
    and it must be the answer the torch model's own sentence vectors give."""
    from pipeline.app import Docket
    from pipeline.ask import AskOptions, ask
    from pipeline.extractive import ExtractiveReasoner
    from pipeline.settings import load_settings

    _ = Encoder(EmbeddingSettings()).query_session  # the fp32 export exists (made once, as the first ask would)
    loaded, printed = run_python(f"""
import json, sys
from pipeline.cli import app
try:
    app(["ask", "-c", "samples", "--doc", {NETGEAR!r}, {QUESTION!r}, "--json"])
except SystemExit as exit_:
    code = exit_.code
print()
print(json.dumps({{"exit": code, "heavy": [m for m in {HEAVY!r} if m in sys.modules]}}))
""")
    assert loaded == {"exit": 0, "heavy": []}
    record = json.loads(printed)
    assert record["status"] == "answered" and isinstance(record["audit_seq"], int)
    assert "State of California" in record["answer"]

    torch_docket = Docket(load_settings(home=samples_copy))
    torch_docket.__dict__["reasoner"] = ExtractiveReasoner(Encoder(EmbeddingSettings(backend="torch")).encode)
    by_torch = ask(torch_docket, QUESTION, AskOptions(collection="samples", documents=[NETGEAR]))
    assert (record["answer"], record["citations"]) == (by_torch.answer, by_torch.citations)
    assert by_torch.audit_seq == record["audit_seq"] + 1


def test_an_ask_loads_nothing_it_does_not_need(samples_copy: Path):
    """The second ask in a workspace (the first made the audit log and saved the BM25 index) imports
    only the question path, in a process of its own."""
    code = f"""
import json, sys
from pipeline.cli import app
try:
    app(["ask", "-c", "samples", {QUESTION!r}, "--json"])
except SystemExit as exit_:
    code = exit_.code
print()
print(json.dumps({{"exit": code, "loaded": [m for m in {HEAVY + NOT_ASKING!r} if m in sys.modules]}}))
"""
    first, _ = run_python(code)
    assert first["exit"] == 0
    again, printed = run_python(code)
    assert again == {"exit": 0, "loaded": []}
    assert json.loads(printed)["status"] == "answered"


def test_help_loads_no_settings_store_or_audit_log():
    """`docket --help` is typer, rich and Docket's CLI modules: none of the engine, its settings or its
    numerical and database libraries."""
    shown, _ = run_python("""
import json, sys
from pipeline.cli import app
try:
    app(["--help"])
except SystemExit:
    pass
print()
print(json.dumps(sorted(m for m in ("pydantic", "sqlalchemy", "numpy", "faiss", "onnxruntime", "tokenizers", "cryptography",
                                     "yaml", "platformdirs", "pipeline.settings", "pipeline.app", "audit", "pipeline.review",
                                     "pipeline.evaluation", "pipeline.replay", "pipeline.identity", "pipeline.llm",
                                     "ingest.store") if m in sys.modules)))
""")
    assert shown == []


def test_lazily_mounted_commands_show_their_own_help_line_and_run():
    """The root's --help lists audit, review and eval before loading them: each line must be the one the
    loaded command gives, and each must run once asked for."""
    from pipeline.cli import LAZY_COMMANDS, app

    runner = CliRunner()
    for name, (load, help_line) in LAZY_COMMANDS.items():
        assert load().get_short_help_str(limit=300) == help_line, name
        sub = runner.invoke(app, [name, "--help"], env={"COLUMNS": "200"})
        assert sub.exit_code == 0 and "Usage: " in sub.output, (name, sub.output)
        listed = runner.invoke(app, ["--help"], env={"COLUMNS": "200"}).output
        assert any(line.startswith(f"│ {name} ") and help_line in line for line in listed.splitlines()), (name, listed)


def test_the_audit_package_imports_what_is_asked_for():
    """`import audit` loads none of its modules; AuditLog loads the log (which the ask appends to), not
    the audit commands; every public name still resolves, and submodules still import by name."""
    shown, _ = run_python("""
import json, sys
import audit
bare = sorted(m for m in sys.modules if m.startswith("audit."))
from audit import AuditLog
with_log = [m for m in ("audit.log", "audit.cli") if m in sys.modules]
from audit import schema
names = {name: getattr(audit, name).__name__ for name in audit.__all__}
try:
    audit.no_such_name
    missing = "resolved"
except AttributeError as error:
    missing = str(error)
print()
print(json.dumps({"bare": bare, "with_log": with_log, "schema": schema.__name__, "names": names, "missing": missing}))
""")
    assert shown["bare"] == []
    assert shown["with_log"] == ["audit.log"]
    assert shown["schema"] == "audit.schema"
    assert shown["names"] == {name: name for name in ("AppendedEntry", "AuditContext", "AuditError", "AuditLog", "Entry",
                                                      "EntryFilter", "NewEvent", "Redaction", "VerifyReport")}
    assert shown["missing"] == "module 'audit' has no attribute 'no_such_name'"
