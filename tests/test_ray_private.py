"""`compute.engine: ray` with no `compute.address`: the command starts a private local Ray, uses it, and
stops it, leaving nothing behind (no processes, no token in the user's ~/.ray), with the local engine's
results."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import DRIVEN, REPO, SAMPLES
from test_ray_cluster import assert_same_corpus

pytestmark = pytest.mark.slow


def raylets() -> set[int]:
    """The raylet processes on this host (from /proc)."""
    found = set()
    for comm in Path("/proc").glob("[0-9]*/comm"):
        try:
            if comm.read_text().strip() == "raylet":
                found.add(int(comm.parent.name))
        except OSError:
            continue
    return found


def test_without_an_address_a_private_ray_is_started_used_and_stopped(tmp_path: Path):
    from pipeline.app import Docket
    from pipeline.documents import ingest_documents
    from pipeline.settings import load_settings

    local = tmp_path / "local"
    assert ingest_documents(Docket(load_settings(home=local)), [SAMPLES / DRIVEN], "deals").count("added") == 1

    user_home = tmp_path / "user"
    user_home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DOCKET_", "RAY_"))}
    env.update(
        HOME=str(user_home), XDG_CACHE_HOME=os.environ.get("XDG_CACHE_HOME", str(Path.home() / ".cache")),
        DOCKET_HOME=str(tmp_path / "ray"), DOCKET_COMPUTE__ENGINE="ray", DOCKET_COMPUTE__OBJECT_STORE_MB="100",
        HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
    )
    before = raylets()
    driver = subprocess.Popen(
        [sys.executable, "-m", "pipeline.cli", "ingest", str(SAMPLES / DRIVEN), "-c", "deals", "--json"],
        env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    out, err = driver.communicate(timeout=900)
    assert driver.returncode == 0, err
    assert json.loads(out)["summary"]["added"] == 1
    assert "Token authentication" not in err  # Ray made no token of its own, so said nothing of it
    assert not (user_home / ".ray").exists(), "the private Ray wrote its token to the user's ~/.ray"
    assert raylets() - before == set(), "the private Ray's node outlived the command"
    assert_same_corpus(local, f"sqlite:///{tmp_path / 'ray' / 'registry.db'}")  # vectors to the bit
