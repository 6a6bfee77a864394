"""`docket serve` through a real uvicorn process with httpx, the model being the fake LLM server:
asks (JSON and Server-Sent Events), 16 concurrent clients, tokens (expiry, revocation), browser
sessions with CSRF, uploads and the bad input the issue names, and the ask and audit paths on
PostgreSQL as well as SQLite.
"""

from __future__ import annotations

import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from fake_llm import FakeLLM, mistral_2509
from service_server import (
    COLLECTION, SAMPLE, add_users, copy_workspace, ingested_template, start_server,
)

QUESTION = "How much notice ends the consulting agreement?"
MAX_UPLOAD_MB = 0.5
MAX_UPLOAD_PAGES = 5
RATE_LIMIT = 120


class AlwaysAnswers(FakeLLM):
    """Answers every chat request (the service's asks are many and concurrent), citing S1."""

    def __init__(self, latency_s: float = 0.0):
        self.latency_s = latency_s
        super().__init__()

    def _next(self, path: str):
        if self.latency_s:
            time.sleep(self.latency_s)
        return mistral_2509("The notice clause is in S1.", "The agreement ends on notice as set out in S1 [S1].")


def llm_env(fake: FakeLLM) -> dict[str, str]:
    return {"DOCKET_REASONER": "magistral", "DOCKET_LLM__PROVIDER": "openai-compatible",
            "DOCKET_LLM__BASE_URL": fake.base_url, "DOCKET_LLM__MAX_RETRIES": "0", "DOCKET_LLM__TIMEOUT_S": "60"}


@pytest.fixture(scope="module")
def fake():
    server = AlwaysAnswers()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, fake):
    home = copy_workspace(ingested_template(tmp_path_factory.getbasetemp()), tmp_path_factory.mktemp("svc") / "home")
    tokens = add_users(home)
    running = start_server(
        home, home.parent / "serve.log", **llm_env(fake),
        DOCKET_SERVICE__MAX_UPLOAD_MB=str(MAX_UPLOAD_MB), DOCKET_SERVICE__MAX_UPLOAD_PAGES=str(MAX_UPLOAD_PAGES),
        DOCKET_SERVICE__RATE_LIMIT_PER_MINUTE=str(RATE_LIMIT), DOCKET_SERVICE__MAX_JSON_KB="64",
    )
    running.tokens = tokens
    try:
        yield running
    finally:
        running.stop()


def pdf_bytes(pages: int = 1, text: str = "SERVICES AGREEMENT. Either party may end it on sixty days' notice.") -> bytes:
    import pymupdf

    doc = pymupdf.open()
    for n in range(pages):
        doc.new_page().insert_textbox(pymupdf.Rect(50, 50, 545, 790), f"Page {n + 1}. {text}", fontsize=11)
    return doc.tobytes()


def wait_job(client: httpx.Client, job_id: str, timeout: float = 300) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/jobs/{job_id}").json()
        if job["status"] in ("done", "failed"):
            return job
        time.sleep(0.5)
    raise AssertionError(f"job {job_id} did not finish within {timeout} s")


# -- ask ------------------------------------------------------------------------------------------------------
def test_ask_returns_the_answer_record_with_boxes_and_its_audit_entry(server) -> None:
    with server.client("reader") as reader:
        response = reader.post("/ask", json={"question": QUESTION, "collection": COLLECTION})
    assert response.status_code == 200, response.text
    record = response.json()
    assert record["reasoner"] == "magistral" and record["actor"] == "token:reader"
    assert record["status"] in ("answered", "withheld") and record["citations"] == ["S1"]
    assert record["trace"] and record["grounding"]["verdict"]
    first = record["evidence"][0]
    assert first["doc_name"] == SAMPLE.name and first["page"] >= 1
    assert first["boxes"] and all(len(b) == 4 for b in first["boxes"])
    with server.client("auditor") as auditor:
        entry = auditor.get(f"/audit/entries/{record['audit_seq']}").json()
    assert entry["event_type"] == "answer" and entry["actor"] == "token:reader"
    assert entry["payload"]["request_id"] == record["request_id"]


@pytest.mark.parametrize("how", ["accept header", "stream endpoint"])
def test_ask_streams_server_sent_events(server, how: str) -> None:
    path, headers = ("/ask", {"Accept": "text/event-stream"}) if how == "accept header" else ("/ask/stream", {})
    with server.client("reader") as reader, reader.stream(
        "POST", path, json={"question": QUESTION, "collection": COLLECTION}, headers=headers
    ) as response:
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
        events = [line.removeprefix("event: ") for line in response.iter_lines() if line.startswith("event: ")]
    assert events[-1] == "answer" and "delta" in events[:-1]


def test_sixteen_concurrent_clients_record_contiguous_entries_with_their_actors(server) -> None:
    """16 clients at once, two users: every answer entry is in the log, contiguous, under the right actor."""
    users = ["reader", "reviewer"] * 8
    barrier = threading.Barrier(len(users))

    def ask(user: str) -> tuple[str, int]:
        with server.client(user) as client:
            barrier.wait()
            response = client.post("/ask", json={"question": f"{QUESTION} ({uuid.uuid4().hex[:6]})", "collection": COLLECTION})
        assert response.status_code == 200, response.text
        return user, response.json()["audit_seq"]

    with ThreadPoolExecutor(len(users)) as pool:
        results = list(pool.map(ask, users))
    seqs = sorted(seq for _, seq in results)
    assert seqs == list(range(seqs[0], seqs[0] + len(users))), seqs  # no gaps, no duplicates
    with server.client("auditor") as auditor:
        for user, seq in results:
            entry = auditor.get(f"/audit/entries/{seq}").json()
            assert entry["event_type"] == "answer" and entry["actor"] == f"token:{user}"
        assert auditor.get("/audit/verify").json()["ok"] is True
    assert server.alive()


# -- reviews -------------------------------------------------------------------------------------------------
CHECKLIST = """name: notice
title: Notice check
items:
  - id: termination
    title: Termination notice
    question: "How much notice ends the agreement?"
    requirement: The agreement can be ended on written notice.
"""


def test_review_runs_as_a_job_then_grid_cell_sign_off_and_report(server) -> None:
    with server.client("reviewer") as reviewer:
        started = reviewer.post("/reviews", json={"checklist_yaml": CHECKLIST, "collection": COLLECTION, "documents": ["1"]})
        assert started.status_code == 202, started.text
        job = wait_job(reviewer, started.json()["job"]["id"])
        assert job["status"] == "done" and job["done"] == job["total"] == 1, job
        review_id = job["result"]["review_id"]
        grid = reviewer.get(f"/reviews/{review_id}").json()
        assert grid["summary"]["cells"] == 1 and grid["review"]["created_by"] == "token:reviewer"
        cell = reviewer.get(f"/reviews/{review_id}/cells/termination/1")
        assert cell.status_code == 200 and cell.json()["audit_seq"] >= 1
        # The one cell needs a person (the extractive answerer does not judge): accepting the whole review
        # is refused until the reviewer acknowledges it open (pipeline/review/signoff.py's rule).
        refused = reviewer.post(f"/reviews/{review_id}/sign-off", json={"decision": "accept", "note": "checked the clause"})
        assert refused.status_code == 409, refused.text
        message = refused.json()["error"]["message"]
        assert message.startswith(f"review {review_id}: not signed off, 1 open item (termination x ") and \
            '"acknowledge_open": 1' in message
        signed = reviewer.post(f"/reviews/{review_id}/sign-off", json={"decision": "accept", "note": "checked the clause",
                                                                        "acknowledge_open": 1})
        assert signed.status_code == 200, signed.text
        assert signed.json()["acknowledged_open"] == 1
        seq = signed.json()["signed_off"]["audit_seq"]
        report = reviewer.get(f"/reviews/{review_id}/report", params={"format": "csv"})
        assert report.status_code == 200 and report.headers["content-type"].startswith("text/csv")
        assert reviewer.get(f"/reviews/{review_id}/cells/termination/999").status_code == 404
    with server.client("auditor") as auditor:
        entry = auditor.get(f"/audit/entries/{seq}").json()
        assert entry["actor"] == "token:reviewer"
        assert {k: entry["payload"]["acknowledged_open"][k] for k in ("count", "by")} == {"count": 1, "by": "token:reviewer"}
        # A finding is a logged answer too: the auditor opens the page its cell's answer cites through it, and
        # no other page of the document.
        finding_seq = cell.json()["audit_seq"]
        finding = auditor.get(f"/audit/entries/{finding_seq}").json()
        assert finding["event_type"] == "review_finding"
        cited = finding["payload"]["answer_record"]["evidence"][0]
        url = f"/documents/1/pages/{cited['page']}/image"
        assert auditor.get(url).status_code == 404
        shown = auditor.get(url, params={"seq": finding_seq})
        assert shown.status_code == 200 and shown.content.startswith(b"\x89PNG")
        assert auditor.get(url, params={"seq": seq}).status_code == 404  # the sign-off entry cites no page
    with server.client("reviewer-nogrant") as outsider:
        assert outsider.get(f"/reviews/{review_id}").status_code == 404
        assert review_id not in {r["id"] for r in outsider.get("/reviews").json()["reviews"]}


# -- tokens and sessions ---------------------------------------------------------------------------------------
def test_token_revocation_and_expiry(server) -> None:
    from sqlalchemy import create_engine, text

    with server.client("admin") as admin:
        issued = admin.post("/users/reader/tokens", json={"expires": "1d"})
        assert issued.status_code == 201, issued.text
        token, token_id = issued.json()["token"], issued.json()["token_id"]
        second = admin.post("/users/reader/tokens", json={"expires": "1d"}).json()
    fresh = httpx.Client(base_url=server.base_url + "/api/v1", headers={"Authorization": f"Bearer {token}"})
    expiring = httpx.Client(base_url=server.base_url + "/api/v1", headers={"Authorization": f"Bearer {second['token']}"})
    with fresh, expiring:
        assert fresh.get("/me").json()["actor"] == "token:reader"
        assert expiring.get("/me").status_code == 200
        with server.client("admin") as admin:
            assert admin.delete(f"/tokens/{token_id}").status_code == 200
        revoked = fresh.get("/me")
        assert revoked.status_code == 401 and "revoked" in revoked.json()["error"]["message"]
        # Expiry: the token's time runs out (set in the registry, as time passing would), the next request fails.
        engine = create_engine(f"sqlite:///{server.home / 'registry.db'}")
        with engine.begin() as conn:
            conn.execute(text("UPDATE api_tokens SET expires_at = '2000-01-01 00:00:00' WHERE token_id = :t"),
                         {"t": second["token_id"]})
        engine.dispose()
        assert expiring.get("/me").status_code == 401
    with server.client("auditor") as auditor:
        failed = auditor.get("/audit/entries", params={"type": "login_failed", "limit": 1000}).json()["entries"]
    assert {e["payload"].get("reason") for e in failed} >= {"revoked", "expired"}


def test_session_cookie_needs_csrf_for_changes_and_ends_at_logout(server) -> None:
    with httpx.Client(base_url=server.base_url + "/api/v1") as browser:
        wrong = browser.post("/login", json={"name": "reader", "password": "not-the-password"})
        assert wrong.status_code == 401 and "docket_session" not in browser.cookies
        login = browser.post("/login", json={"name": "reader", "password": "reader-password-123"})
        assert login.status_code == 200, login.text
        cookie = login.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie
        csrf = login.json()["csrf_token"]
        assert browser.get("/me").json() == {"name": "reader", "role": "reader", "via": "session", "actor": "session:reader"}
        body = {"question": QUESTION, "collection": COLLECTION}
        refused = browser.post("/ask", json=body)
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "csrf"
        asked = browser.post("/ask", json=body, headers={"X-CSRF-Token": csrf})
        assert asked.status_code == 200 and asked.json()["actor"] == "session:reader"
        assert browser.post("/logout", headers={"X-CSRF-Token": csrf}).status_code == 200
        browser.cookies.set("docket_session", login.cookies["docket_session"], path="/api")
        assert browser.get("/me").status_code == 401


# -- uploads and bad input -------------------------------------------------------------------------------------
def test_upload_ingests_in_a_job_then_pages_render_and_remove_works(server) -> None:
    name = f"upload-{uuid.uuid4().hex[:6]}.pdf"
    with server.client("admin") as admin:
        started = admin.post("/documents", files={"file": (name, pdf_bytes(2), "application/pdf")}, data={"collection": COLLECTION})
        assert started.status_code == 202, started.text
        job = wait_job(admin, started.json()["job"]["id"])
        assert job["status"] == "done" and job["done"] == job["total"] == 1, job
        doc_id = job["result"]["file"]["document_id"]
        listed = {d["id"]: d for d in admin.get("/documents").json()["documents"]}
        assert listed[doc_id]["name"] == name and listed[doc_id]["pages"] == 2
        assert admin.get(f"/documents/{doc_id}").status_code == 403  # an admin lists documents, never reads them
        with server.client("reader") as reader:
            assert reader.get(f"/documents/{doc_id}", params={"pages": True}).json()["page_details"][1]["page"] == 2
            # Asked before the removal, the upload is evidence, and the ask on it alone finds live chunks.
            asked = ask_about_upload(reader, doc_id)
            assert doc_id in asked["anywhere"] and asked["alone"]["status"] != "error", asked
        removed = admin.delete(f"/documents/{doc_id}")
        assert removed.status_code == 200 and removed.json()["removed"]["id"] == doc_id
        assert doc_id not in {d["id"] for d in admin.get("/documents").json()["documents"]}
        with server.client("reader") as reader:
            # The same asks after it: none of its chunks is evidence, and asked on it alone it is no document
            # the reader may read any more (a removed document is outside every grant's live documents).
            asked = ask_about_upload(reader, doc_id)
            assert doc_id not in asked["anywhere"], asked
            assert asked["alone"]["status"] == "error" and not asked["alone"]["evidence"], asked["alone"]
            assert "no such document" in asked["alone"]["error"], asked["alone"]
    with server.client("reader") as reader:
        image = reader.get("/documents/1/pages/1/image", params={"box": "50,50,300,120", "zoom": 1})
        assert image.status_code == 200 and image.content.startswith(b"\x89PNG")
        assert reader.get("/documents/1/pages/999/image").status_code == 404
        assert reader.get("/documents/1/pages/1/image", params={"box": "1,2,three"}).status_code == 400


def ask_about_upload(reader: httpx.Client, doc_id: int) -> dict:
    """The document ids of the evidence of an ask about pdf_bytes' text in the collection, and the record of
    the same ask restricted to ``doc_id``."""
    question = "Which party may end the services agreement on sixty days' notice?"
    anywhere = reader.post("/ask", json={"question": question, "collection": COLLECTION})
    alone = reader.post("/ask", json={"question": question, "collection": COLLECTION, "documents": [str(doc_id)]})
    assert anywhere.status_code == 200 and alone.status_code == 200, (anywhere.text, alone.text)
    return {"anywhere": {e["document_id"] for e in anywhere.json()["evidence"]}, "alone": alone.json()}


def _documents(server) -> list[int]:
    with server.client("admin") as admin:
        return sorted(d["id"] for d in admin.get("/documents", params={"include_removed": True}).json()["documents"])


@pytest.mark.parametrize("case, file, status, says", [
    ("over the size limit", ("big.pdf", b"%PDF-1.7\n" + b"0" * int(MAX_UPLOAD_MB * 1024 * 1024 + 200_000)), 413, "MiB"),
    ("over the page limit", ("long.pdf", pdf_bytes(MAX_UPLOAD_PAGES + 1)), 413, f"limit of {MAX_UPLOAD_PAGES}"),
    ("not a PDF or image", ("notes.docx", b"PK\x03\x04 a word file"), 415, "not a PDF or image"),
    ("a PDF name on other bytes", ("fake.pdf", b"MZ\x90\x00 an executable"), 415, "not a PDF file"),
    ("a broken PDF", ("broken.pdf", b"%PDF-1.7\n garbage with no objects"), 415, "not a readable PDF"),
])
def test_bad_uploads_get_a_clear_4xx_and_leave_nothing(server, case: str, file, status: int, says: str) -> None:
    before = _documents(server)
    with server.client("admin") as admin:
        response = admin.post("/documents", files={"file": (file[0], file[1], "application/pdf")}, data={"collection": COLLECTION})
        assert response.status_code == status, (case, response.text)
        assert says in response.json()["error"]["message"], response.json()
        assert admin.get("/health").status_code == 200
    assert _documents(server) == before
    staging = server.home / "uploads" / ".staging"
    assert not staging.exists() or not any(staging.iterdir())


def test_path_tricks_in_file_names_stay_inside_the_workspace(server, tmp_path: Path) -> None:
    tricky = f"../../../../{tmp_path.name}-escape-{uuid.uuid4().hex[:6]}.pdf"
    with server.client("admin") as admin:
        started = admin.post("/documents", files={"file": (tricky, pdf_bytes(), "application/pdf")}, data={"collection": "../../x"})
        assert started.status_code == 202, started.text
        safe = started.json()["name"]
        assert "/" not in safe and not safe.startswith(".") and safe.endswith(".pdf")
        job = wait_job(admin, started.json()["job"]["id"])
    assert job["status"] == "done", job
    written = [p for p in server.home.rglob(safe)]
    assert written and all(server.home in p.resolve().parents for p in written)
    assert not list(server.home.parent.parent.glob(f"**/{safe}")) or all(
        server.home in p.resolve().parents for p in server.home.parent.parent.glob(f"**/{safe}"))


def test_unknown_ids_oversized_json_and_bursts(server) -> None:
    with server.client("auditor") as auditor:
        for path in ("/audit/entries/999999", "/audit/entries/999999/proof", "/jobs/nosuchjob", "/reviews/nosuchreview"):
            response = auditor.get(path)
            assert response.status_code == 404, (path, response.text)
            assert response.json()["error"]["message"]
    with server.client("reader") as reader:
        assert reader.get("/documents/424242").status_code == 404
        huge = reader.post("/ask", json={"question": "x" * 100_000, "collection": COLLECTION})
        assert huge.status_code == 413 and "64 KiB" in huge.json()["error"]["message"]
        invalid = reader.post("/ask", json={"question": ""})
        assert invalid.status_code == 422 and "question" in invalid.json()["error"]["message"]
    # A burst from one token: 429 with Retry-After once over the limit; other callers are not affected.
    with server.client("reviewer-nogrant") as burst:
        codes = [burst.get("/me").status_code for _ in range(RATE_LIMIT + 5)]
        limited = burst.get("/me")
    assert codes[:RATE_LIMIT - 5].count(200) == RATE_LIMIT - 5 and 429 in codes
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1
    with server.client("reader") as other:
        assert other.get("/me").status_code == 200
    assert server.alive()


# -- PostgreSQL --------------------------------------------------------------------------------------------------
@pytest.mark.postgres
@pytest.mark.slow
def test_ask_and_audit_through_the_service_on_postgresql(tmp_path_factory: pytest.TempPathFactory, fake) -> None:
    from test_audit_support import pg_schema_url

    urls = pg_schema_url()
    url = next(urls)
    try:
        home = ingested_template(tmp_path_factory.mktemp("pg"), registry_url=url, audit_url=url)
        tokens = add_users(home, registry_url=url, audit_url=url)
        running = start_server(home, home.parent / "serve-pg.log", **llm_env(fake),
                               DOCKET_REGISTRY_URL=url, DOCKET_AUDIT_URL=url)
        running.tokens = tokens
        try:
            users = ["reader", "reviewer"] * 4
            with ThreadPoolExecutor(len(users)) as pool:
                def ask(user: str):
                    with running.client(user) as client:
                        response = client.post("/ask", json={"question": QUESTION, "collection": COLLECTION})
                    assert response.status_code == 200, response.text
                    return user, response.json()["audit_seq"]
                results = list(pool.map(ask, users))
            seqs = sorted(s for _, s in results)
            assert seqs == list(range(seqs[0], seqs[0] + len(users)))
            with running.client("auditor") as auditor:
                listed = auditor.get("/audit/entries", params={"type": "answer", "limit": 100}).json()["entries"]
                assert {(e["seq"], e["actor"]) for e in listed} >= {(s, f"token:{u}") for u, s in results}
                assert auditor.get("/audit/verify").json()["ok"] is True
                assert auditor.get(f"/audit/entries/{seqs[0]}/proof").json()["seq"] == seqs[0]
        finally:
            running.stop()
    finally:
        urls.close()
