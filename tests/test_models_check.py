"""`docket models check` against the fake LLM server's GET /v1/models (Mistral's model cards): the
model in force is named, the endpoint's models listed, and the exit code says offered (0), not offered
or deprecated (1), or not checkable (2: no key for Mistral's API, or no list)."""

from __future__ import annotations

import json

import pytest
from fake_llm import TEST_KEY, fake_llm, mistral_model_cards  # noqa: F401  (fake_llm is a fixture)
from typer.testing import CliRunner

from pipeline.cli import app


def _run(monkeypatch: pytest.MonkeyPatch, server, model: str, key: str | None = TEST_KEY, *args: str):
    monkeypatch.setenv("DOCKET_LLM_BASE_URL", server.base_url)
    monkeypatch.setenv("DOCKET_LLM_MODEL", model)
    if key:
        monkeypatch.setenv("MISTRAL_API_KEY", key)
    return CliRunner().invoke(app, ["models", "check", *args])


def _model_requests(server) -> list:
    return [r for r in server.requests if r.path.rstrip("/").endswith("/models")]


def test_an_offered_model_is_named_with_the_endpoints_list(home, fake_llm, monkeypatch):
    fake_llm.models = mistral_model_cards("mistral-medium-3-5", "mistral-small-2603", "magistral-medium-2506",
                                          deprecated={"magistral-medium-2506": "mistral-medium-3-5"})
    result = _run(monkeypatch, fake_llm, "mistral-medium-3-5")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == f"endpoint: {fake_llm.base_url} (provider mistral)"
    assert "model used: mistral-medium-3-5 (llm.model / DOCKET_LLM_MODEL)" in lines
    assert "offered (2): mistral-medium-3-5, mistral-small-2603" in lines
    assert any(line.startswith("deprecated: magistral-medium-2506 (2026-03-31") and "replaced by mistral-medium-3-5" in line
               for line in lines)
    assert lines[-1] == f"model 'mistral-medium-3-5' is offered by {fake_llm.base_url}"
    assert len(_model_requests(fake_llm)) == 1  # one request: the list printed is the one checked
    assert _model_requests(fake_llm)[0].headers.get("authorization") == f"Bearer {TEST_KEY}"


def test_a_retired_or_deprecated_model_exits_1_naming_the_setting(home, fake_llm, monkeypatch):
    fake_llm.models = mistral_model_cards("mistral-medium-3-5", "magistral-medium-2506",
                                          deprecated={"magistral-medium-2506": "mistral-medium-3-5"})
    gone = _run(monkeypatch, fake_llm, "magistral-medium-2505")
    assert gone.exit_code == 1
    assert "model 'magistral-medium-2505' is not offered" in gone.stdout and "set llm.model or DOCKET_LLM_MODEL" in gone.stdout
    old = _run(monkeypatch, fake_llm, "magistral-medium-2506", TEST_KEY, "--json")
    assert old.exit_code == 1
    report = json.loads(old.stdout)
    assert report["offered"] is True and "replaced by mistral-medium-3-5" in report["deprecated"]
    assert report["models"] == ["mistral-medium-3-5", "magistral-medium-2506"] and report["checked"] is True


def test_without_a_key_it_cannot_check_and_says_so(home, fake_llm, monkeypatch):
    fake_llm.models = mistral_model_cards("mistral-medium-3-5")
    result = _run(monkeypatch, fake_llm, "mistral-medium-3-5", None)
    assert result.exit_code == 2
    assert "cannot check: model 'mistral-medium-3-5' not checked" in result.stderr
    assert "DOCKET_LLM_API_KEY (or MISTRAL_API_KEY)" in result.stderr
    assert _model_requests(fake_llm) == []  # Mistral's list is not asked for without a key


def test_an_endpoint_without_a_model_list_cannot_be_checked(home, fake_llm, monkeypatch):
    fake_llm.models = None  # the fake answers GET /v1/models with 404
    result = _run(monkeypatch, fake_llm, "mistral-medium-3-5")
    assert result.exit_code == 2 and "could not be read (HTTP 404)" in result.stderr
