"""Shared fixtures. Everything here is real: real PDFs, the packaged encoder, FAISS, SQLite.

The one fake in the suite is the remote LLM (tests/fake_llm.py, a local OpenAI-compatible server).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

pytest_plugins = ["fake_llm"]

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "samples" / "contracts"
SHARED_EVAL = REPO.parent / "shared" / "eval"

NETGEAR = "NETGEAR_INC_04_21_2003-EX-10.16-DISTRIBUTOR_AGREEMENT.pdf"
DUOS = "DUOSTECHNOLOGIESGROUP_INC_04_21_2009-EX-10.1-STRATEGIC_ALLIANCE_AGREEMENT.pdf"
DRIVEN = "DRIVENDELIVERIES_INC_05_22_2020-EX-10.4-CONSULTING_AGREEMENT.pdf"


def shared_eval_or_skip() -> Path:
    if not SHARED_EVAL.is_dir():
        pytest.skip(f"evaluation data not found at {SHARED_EVAL} (it lives beside the repo in ../shared/eval)")
    return SHARED_EVAL


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh workspace, and an environment with no Docket/Mistral settings leaking in from outside."""
    for var in list(os.environ):
        if var.startswith("DOCKET_") or var == "MISTRAL_API_KEY":
            monkeypatch.delenv(var)
    workspace = tmp_path / "home"
    monkeypatch.setenv("DOCKET_HOME", str(workspace))
    return workspace


@pytest.fixture
def docket(home: Path):
    from pipeline.app import Docket
    from pipeline.settings import load_settings

    return Docket(load_settings())


@pytest.fixture(scope="session")
def ingested_samples(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace with the three sample contracts ingested once for the whole session (read-only use)."""
    from pipeline.app import Docket
    from pipeline.settings import load_settings

    workspace = tmp_path_factory.mktemp("samples-home")
    docket = Docket(load_settings(home=workspace))
    report = docket.store.ingest([SAMPLES], "samples")
    assert report.count("added") == 3, report.results
    return workspace


@pytest.fixture
def samples_copy(ingested_samples: Path, tmp_path: Path, home: Path) -> Path:
    """A private copy of the ingested workspace, for tests that write (ask, remove)."""
    shutil.copytree(ingested_samples, home)
    return home
