"""The README's first command runs `docket demo`: it must ingest, answer with citations, and verify."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.slow
def test_demo_ingests_answers_and_verifies_offline(home: Path):
    env = {**os.environ, "DOCKET_HOME": str(home), "HF_HUB_OFFLINE": "1", "COLUMNS": "200",
           # no proxy or network is needed; make any attempt fail loudly instead of waiting
           "HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9"}
    proc = subprocess.run([sys.executable, "-m", "pipeline.cli", "demo", "--fresh"],
                          capture_output=True, text=True, env=env, timeout=900)
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr
    assert out.count("added ") == 3
    assert "State of California" in out  # the governing-law answer, quoted
    assert "thirty (30) days" in out  # the termination-notice answer
    assert "Not found in the documents." in out  # the question the contracts do not answer
    assert "Program steps (not a model's reasoning)" in out  # traces are shown and labelled
    # The audit log verified: three document_ingested events, the settings and the corpus the answers were
    # made with (written once each, for replay), and four answers.
    assert "OK: 9 entries" in out
    assert "docket serve" in out and "http://127.0.0.1:8000/" in out and "demo-auditor" in out  # the web app's logins
    # A second run without --fresh re-uses the workspace: nothing re-ingested, the log keeps growing.
    again = subprocess.run([sys.executable, "-m", "pipeline.cli", "demo"], capture_output=True, text=True, env=env, timeout=900)
    assert again.returncode == 0, again.stdout + again.stderr
    # unchanged: no events, and the same settings and corpus (no new snapshot); the 16 are the first run's 9,
    # its demo users (two users, one grant) and four answers
    assert again.stdout.count("unchanged ") == 3 and "OK: 16 entries" in again.stdout
    assert "the password an earlier run printed" in again.stdout


def test_the_demo_names_a_docket_command_the_user_can_run(monkeypatch, tmp_path: Path):
    """`make demo` runs .venv/bin/docket without activating the venv: the closing hint must name that
    path then, and the bare name when the shell finds docket itself."""
    from pipeline.cli import demo

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", [str(tmp_path / ".venv" / "bin" / "docket"), "demo"])
    monkeypatch.setattr(demo.shutil, "which", lambda name: None)
    assert demo._docket_command() == os.path.join(".venv", "bin", "docket")
    monkeypatch.setattr(demo.shutil, "which", lambda name: "/usr/local/bin/docket")
    assert demo._docket_command() == "docket"


def test_fresh_refuses_a_workspace_the_demo_did_not_make(tmp_path: Path, capsys):
    from pipeline.cli import demo

    home = tmp_path / "real-workspace"
    home.mkdir()
    (home / "registry.db").write_bytes(b"a user's data")
    with pytest.raises(SystemExit) as stopped:
        demo.prepare_home(home, fresh=True)
    assert stopped.value.code == 2
    assert f"--fresh would delete {home}" in capsys.readouterr().err
    assert (home / "registry.db").read_bytes() == b"a user's data"
