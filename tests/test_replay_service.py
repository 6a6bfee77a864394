"""POST /api/v1/audit/entries/{seq}/replay against a real `docket serve` (extractive answerer, SQLite): who
may replay what, and the replay report and entry it makes."""

from __future__ import annotations

import re

import pytest

from service_server import COLLECTION, add_users, copy_workspace, ingested_template, start_server

QUESTION = "How much notice ends the consulting agreement?"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    base = tmp_path_factory.getbasetemp()
    home = copy_workspace(ingested_template(base), tmp_path_factory.mktemp("replay") / "home")
    tokens = add_users(home)
    running = start_server(home, home.parent / "serve.log", DOCKET_SERVICE__RATE_LIMIT_PER_MINUTE="10000")
    running.tokens = tokens
    try:
        yield running
    finally:
        running.stop()


def test_an_auditor_and_the_answers_own_user_replay_it_and_others_are_refused(server) -> None:
    with server.client("reader") as reader:
        asked = reader.post("/ask", json={"question": QUESTION, "collection": COLLECTION})
        assert asked.status_code == 200, asked.text
        seq = asked.json()["audit_seq"]

        own = reader.post(f"/audit/entries/{seq}/replay", json={})
        assert own.status_code == 200, own.text
        assert own.json()["outcome"] == "identical" and own.json()["replays_seq"] == seq

    with server.client("auditor") as auditor:
        frozen = auditor.post(f"/audit/entries/{seq}/replay", json={"against": "frozen"}).json()
        assert frozen["outcome"] == "identical" and frozen["evidence"]["same"]
        assert frozen["record"]["answer"] == asked.json()["answer"]
        current = auditor.post(f"/audit/entries/{seq}/replay", json={"against": "current"}).json()
        assert current["outcome"] == "identical" and current["changes"]["versions"] == []
        logged = auditor.get(f"/audit/entries/{frozen['audit_seq']}").json()
        assert logged["event_type"] == "replay" and logged["actor"] == "token:auditor"
        assert f"seq:{seq}" in logged["subjects"] and logged["status"] == "identical"

        not_an_answer = auditor.post("/audit/entries/1/replay", json={})
        assert not_an_answer.status_code == 400 and "only answer entries" in not_an_answer.json()["error"]["message"]
        assert auditor.post("/audit/entries/999999/replay", json={}).status_code == 404
        assert auditor.post(f"/audit/entries/{seq}/replay", json={"against": "yesterday"}).status_code in (400, 422)

    # A role that may neither read the log nor ask: 403. One that may ask, on someone else's answer: 404, the
    # words of a seq that does not exist, so the entry's existence does not leak.
    for other, status in (("admin", 403), ("reviewer", 404), ("reader-nogrant", 404)):
        with server.client(other) as client:
            refused = client.post(f"/audit/entries/{seq}/replay", json={})
            assert refused.status_code == status, (other, refused.text)
            assert set(refused.json()["error"]) == {"code", "message"}
            if status == 404:
                assert refused.json()["error"]["message"] == \
                    client.post("/audit/entries/999999/replay", json={}).json()["error"]["message"].replace("999999", str(seq))
    with server.client("auditor") as auditor:
        denied = auditor.get("/audit/entries", params={"type": "access_denied", "limit": 1000}).json()["entries"]
        assert any(e["payload"].get("action") == "replay_audit" for e in denied)
    assert server.alive()


def test_the_web_entry_page_replays_an_answer_and_shows_the_report(server) -> None:
    import httpx

    with server.client("reader") as reader:
        seq = reader.post("/ask", json={"question": QUESTION, "collection": COLLECTION}).json()["audit_seq"]
    with httpx.Client(base_url=server.base_url, timeout=120) as browser:
        login = browser.post("/login", data={"name": "auditor", "password": "auditor-password-123", "next": "/audit"})
        assert login.status_code == 303, login.text
        page = browser.get(f"/audit/{seq}")
        assert page.status_code == 200 and f'action="/audit/{seq}/replay"' in page.text
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
        forged = browser.post(f"/audit/{seq}/replay", data={"against": "frozen", "csrf_token": "not-the-token"})
        assert forged.status_code == 403
        shown = browser.post(f"/audit/{seq}/replay", data={"against": "frozen", "csrf_token": csrf})
        assert shown.status_code == 200, shown.text
        assert '<strong class="outcome">identical</strong>' in shown.text and "recorded as <a href=\"/audit/" in shown.text
        today = browser.post(f"/audit/{seq}/replay", data={"against": "current", "csrf_token": csrf},
                             headers={"HX-Request": "true"})
        assert today.status_code == 200 and "on today's corpus" in today.text
