"""POST /ask says where its time went: a Server-Timing header of the ask's stages, through a real
`docket serve` (the extractive answerer: no model server needed). The stages are not in the record."""

from __future__ import annotations

from pathlib import Path

import pytest

from service_server import COLLECTION, add_users, copy_workspace, ingested_template, start_server

STAGES = ["auth", "prepare", "retrieval", "answerer", "grounding", "audit", "ask", "serialize", "total"]
ROUNDING_MS = 0.05  # each figure is rounded to 0.1 ms


def parse_server_timing(header: str) -> dict[str, float]:
    stages = {}
    for metric in header.split(","):
        name, _, rest = metric.strip().partition(";")
        assert rest.startswith("dur="), metric
        stages[name] = float(rest.removeprefix("dur="))
    return stages


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    home = copy_workspace(ingested_template(tmp_path_factory.getbasetemp()), tmp_path_factory.mktemp("timing") / "home")
    tokens = add_users(home)
    running = start_server(home, home.parent / "serve.log", DOCKET_SERVICE__RATE_LIMIT_PER_MINUTE="1000")
    running.tokens = tokens
    yield running
    running.stop()


def test_an_ask_reports_its_stages_and_they_add_up(server) -> None:
    with server.client("reader") as reader:
        response = reader.post("/ask", json={"question": "How much notice ends the agreement?", "collection": COLLECTION})
    assert response.status_code == 200, response.text
    stages = parse_server_timing(response.headers["server-timing"])
    assert list(stages) == STAGES and all(ms >= 0 for ms in stages.values()), stages
    inner = sum(stages[s] for s in ("retrieval", "answerer", "grounding", "audit"))
    assert stages["ask"] >= inner - 4 * ROUNDING_MS, stages
    outer = sum(stages[s] for s in ("auth", "prepare", "ask", "serialize"))
    assert stages["total"] >= outer - 4 * ROUNDING_MS and stages["total"] >= stages["ask"], stages
    assert stages["answerer"] > 0 and stages["retrieval"] > 0
    record = response.json()
    assert "timings" not in record and record["status"] in ("answered", "withheld", "refused"), record["status"]
    with server.client("auditor") as auditor:
        payload = auditor.get(f"/audit/entries/{record['audit_seq']}").json()["payload"]
    assert "timings" not in payload and "timings" not in payload.get("retrieval", {})


def test_an_ask_that_finds_no_document_reports_retrieval_only(server) -> None:
    with server.client("reader") as reader:
        response = reader.post("/ask", json={"question": "What is the term?", "collection": COLLECTION,
                                             "documents": ["no-such-file.pdf"]})
    assert response.status_code == 200 and response.json()["status"] == "error", response.text
    stages = parse_server_timing(response.headers["server-timing"])
    assert "answerer" not in stages and {"retrieval", "grounding", "audit", "total"} <= set(stages), stages


def test_a_streamed_ask_has_no_timing_header(server) -> None:
    """Its headers are sent before the ask runs; the stages are not known then."""
    with server.client("reader") as reader, reader.stream(
        "POST", "/ask/stream", json={"question": "How much notice ends the agreement?", "collection": COLLECTION}
    ) as response:
        assert response.status_code == 200 and "server-timing" not in response.headers
        assert any(line == "event: answer" for line in response.iter_lines())
