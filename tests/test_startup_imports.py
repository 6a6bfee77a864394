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
    torch_docket.__dict__["reasoner"] = ExtractiveReasoner(torch_docket.store.encoder.encode)  # torch's vectors
    by_torch = ask(torch_docket, QUESTION, AskOptions(collection="samples", documents=[NETGEAR]))
    assert (record["answer"], record["citations"]) == (by_torch.answer, by_torch.citations)
    assert by_torch.audit_seq == record["audit_seq"] + 1


def test_help_loads_no_settings_store_or_audit_log():
    shown, _ = run_python("""
import json, sys
from pipeline.cli import app
try:
    app(["--help"])
except SystemExit:
    pass
print()
print(json.dumps(sorted(m for m in ("pydantic", "sqlalchemy", "numpy", "faiss", "onnxruntime", "pipeline.settings",
                                     "audit", "pipeline.review", "pipeline.evaluation", "ingest.store") if m in sys.modules)))
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
