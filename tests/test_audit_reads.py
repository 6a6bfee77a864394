"""Reads that return entries (`audit list`, `audit search`) are recorded as read events, like `audit show`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_audit_support import db_url, fill, keys_dir  # noqa: F401
from typer.testing import CliRunner

from audit import AuditContext, AuditLog
from audit.cli import make_app


@pytest.fixture
def log(db_url: str, keys_dir: Path) -> AuditLog:
    opened = AuditLog.open(db_url, keys_dir)
    yield opened
    opened.close()


@pytest.fixture
def run(db_url: str, keys_dir: Path):
    app = make_app(lambda: AuditContext(url=db_url, keys_dir=keys_dir, actor="reader"))
    runner = CliRunner()

    def invoke(*args: str) -> str:
        result = runner.invoke(app, list(args))
        assert result.exit_code == 0, result.output
        return result.output

    return invoke


def reads(log: AuditLog) -> list:
    return list(log.entries(event_type="read"))


def test_list_is_recorded_and_never_lists_its_own_read(log: AuditLog, run) -> None:
    fill(log, 4)
    size = log.size
    listed = json.loads(run("list", "--json"))
    assert [e["seq"] for e in listed] == list(range(1, size + 1))
    (first,) = reads(log)
    assert first.seq == size + 1 and first.actor == "reader" and first.subjects == ()
    assert first.payload == {
        "command": "list", "filters": {}, "limit": 100, "up_to": size, "returned": size, "first_seq": 1, "last_seq": size,
    }
    # The next list shows the earlier read, not its own.
    again = json.loads(run("list", "--json"))
    assert [e["seq"] for e in again] == list(range(1, size + 2))
    assert [r.payload["up_to"] for r in reads(log)] == [size, size + 1]
    # The table prints metadata, not payloads, and is recorded all the same.
    assert f"{size + 2} entries" in run("list")
    assert reads(log)[-1].payload["returned"] == size + 2


def test_filtered_list_records_its_filter_and_does_not_grow(log: AuditLog, run) -> None:
    fill(log, 6)
    first = json.loads(run("list", "--json", "--subject", "doc-1", "--limit", "1"))
    second = json.loads(run("list", "--json", "--subject", "doc-1", "--limit", "1"))
    assert first == second and len(first) == 1  # the read events are not about doc-1: no loop
    payload = reads(log)[0].payload
    assert payload["filters"] == {"subject": "doc-1"} and payload["limit"] == 1
    assert payload["returned"] == 1 and payload["first_seq"] == payload["last_seq"] == first[0]["seq"]


def test_search_is_recorded_and_does_not_find_earlier_searches(log: AuditLog, run) -> None:
    fill(log, 5)
    found = [e["seq"] for e in json.loads(run("search", "question 3", "--json"))]
    assert len(found) == 1
    (recorded,) = reads(log)
    assert recorded.payload["command"] == "search" and recorded.payload["filters"] == {"text": "question 3"}
    assert recorded.payload["returned"] == 1 and recorded.payload["first_seq"] == found[0]
    # The recorded search holds the text itself; a later search does not find it unless asked to.
    assert [e["seq"] for e in json.loads(run("search", "question 3", "--json"))] == found
    searches = json.loads(run("search", "question 3", "--type", "read", "--json"))
    assert [e["seq"] for e in searches] == [r.seq for r in reads(log)[:2]]
    assert "1 entry" in run("search", "answer 4")
    assert len(reads(log)) == 4
    assert log.verify().ok
