"""Schemathesis against the OpenAPI document of a real `docket serve`: no endpoint answers 500, whatever
the generated input, as a reviewer (asks, documents, reviews) and as an auditor (the audit log).

Bounded: a few examples per endpoint (``MAX_EXAMPLES``), extractive answerer, SQLite.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from service_server import add_users, copy_workspace, ingested_template, start_server

MAX_EXAMPLES = 4
CALLERS = ("reviewer", "auditor")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    home = copy_workspace(ingested_template(tmp_path_factory.getbasetemp()), tmp_path_factory.mktemp("fuzz") / "home")
    tokens = add_users(home)
    running = start_server(home, home.parent / "serve.log", DOCKET_SERVICE__RATE_LIMIT_PER_MINUTE="100000")
    running.tokens = tokens
    try:
        yield running
    finally:
        running.stop()


def test_no_endpoint_answers_500(server) -> None:
    """Every operation of the OpenAPI document, a few generated cases each (schemathesis' strategies run
    by hypothesis here: its pytest plugin does not load on this pytest)."""
    from hypothesis import given

    api = schemathesis.openapi.from_url(server.base_url + "/openapi.json")
    operations = [result.ok() for result in api.get_all_operations()]
    assert len(operations) >= 25
    failures: list[str] = []
    for operation in operations:
        @given(case=operation.as_strategy())
        @settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        def check(case) -> None:
            for caller in CALLERS:
                response = case.call(headers={"Authorization": f"Bearer {server.tokens[caller]}"}, timeout=120)
                if response.status_code >= 500:
                    failures.append(f"{caller} {case.method} {case.formatted_path}: {response.status_code} {response.text[:300]}")
                elif response.status_code >= 400:
                    body = response.json()
                    assert set(body["error"]) == {"code", "message"} and body["error"]["message"], body

        check()
    assert not failures, "\n".join(failures)
    assert server.alive()
