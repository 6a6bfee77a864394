"""The permission matrix of `docket serve`, generated from a table: each role x each endpoint x granted
or not, against a real uvicorn process (extractive answerer, SQLite).

The expected outcome of each cell comes from the policy table (pipeline.identity.access.PERMISSIONS:
scope all / granted / none per role and action) and the endpoint's kind: a resource endpoint answers
404 outside the grant (a document's name must not leak), a list answers without what is outside it,
and a role with no scope at all is refused with 403.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from service_server import COLLECTION, ROLES, add_users, copy_workspace, ingested_template, start_server

QUESTION = "How much notice ends the consulting agreement?"
BAD_CHECKLIST = "items: [not a checklist"

# (name, method, path, request keywords, action, kind, status when allowed)
# kind: resource (granted: allowed; not granted: 404), list (not granted: allowed but empty),
#       role (only the role's scope matters), image (like resource, and 404 for a role with no scope too)
ENDPOINTS = [
    ("ask", "POST", "/ask", {"json": {"question": QUESTION, "collection": COLLECTION}}, "ask", "resource", 200),
    ("ask stream", "POST", "/ask/stream", {"json": {"question": QUESTION, "collection": COLLECTION}}, "ask", "resource", 200),
    ("list documents", "GET", "/documents", {}, "list_documents", "list", 200),
    ("collections", "GET", "/collections", {}, "list_documents", "list", 200),
    ("show document", "GET", "/documents/{doc}", {}, "read_document", "resource", 200),
    ("document pages", "GET", "/documents/{doc}?pages=true", {}, "read_document", "resource", 200),
    ("page image", "GET", "/documents/{doc}/pages/1/image?box=50,50,300,120", {}, "read_document", "image", 200),
    ("start review", "POST", "/reviews",
     {"json": {"checklist_yaml": BAD_CHECKLIST, "documents": ["{doc}"], "collection": COLLECTION}}, "run_review", "resource", 400),
    ("list reviews", "GET", "/reviews", {}, "read_review", "role", 200),
    ("audit list", "GET", "/audit/entries?limit=5", {}, "read_audit", "role", 200),
    ("audit search", "GET", "/audit/search?text=consulting", {}, "read_audit", "role", 200),
    ("audit show", "GET", "/audit/entries/1", {}, "read_audit", "role", 200),
    ("audit verify", "GET", "/audit/verify", {}, "verify_audit", "role", 200),
    ("audit proof", "GET", "/audit/entries/1/proof", {}, "prove_audit", "role", 200),
    ("audit checkpoint", "POST", "/audit/checkpoint", {}, "checkpoint_audit", "role", 200),
    ("audit bundle", "GET", "/audit/bundle", {}, "export_audit", "role", 200),
    ("annotate", "POST", "/audit/entries/1/annotations", {"json": {"decision": "approve", "note": "matrix"}},
     "annotate_audit", "resource", 200),
    ("users", "GET", "/users", {}, "manage_users", "role", 200),
    ("add user", "POST", "/users", {"json": {"name": "{user}-made", "role": "reader"}}, "manage_users", "role", 201),
    ("upload (not a PDF)", "POST", "/documents", {"files": {"file": ("notes.txt", b"plain text")}}, "manage_documents",
     "role", 415),
    ("remove unknown", "DELETE", "/documents/424242", {}, "manage_documents", "role", 404),
]


def expected(role: str, granted: bool, action: str, kind: str, ok: int) -> tuple[int, bool]:
    """(status, whether the answer should contain the granted document) for one cell of the matrix."""
    from pipeline.identity.access import PERMISSIONS

    scope = PERMISSIONS[action][role]
    if scope == "none":
        return (404 if kind == "image" else 403), False
    if scope == "all" or granted or kind == "role":
        return ok, True
    return (ok, False) if kind == "list" else (404, False)


CASES = [
    pytest.param(role, granted, endpoint, id=f"{role}-{'granted' if granted else 'nogrant'}-{endpoint[0]}")
    for role in ROLES for granted in (True, False) for endpoint in ENDPOINTS
]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    base = tmp_path_factory.getbasetemp()
    home = copy_workspace(ingested_template(base), tmp_path_factory.mktemp("perm") / "home")
    tokens = add_users(home)
    running = start_server(home, home.parent / "serve.log", DOCKET_SERVICE__RATE_LIMIT_PER_MINUTE="10000")
    running.tokens = tokens
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def document(server) -> dict:
    with server.client("admin") as admin:
        docs = admin.get("/documents").json()["documents"]
    assert len(docs) == 1
    return docs[0]


@pytest.mark.parametrize("role, granted, endpoint", CASES)
def test_permission_matrix(server, document, role: str, granted: bool, endpoint) -> None:
    name, method, path, kwargs, action, kind, ok = endpoint
    user = role if granted else f"{role}-nogrant"
    path = path.format(doc=document["id"], user=user)
    kwargs = {k: _fill(v, document, user) for k, v in kwargs.items()}
    status, sees_document = expected(role, granted, action, kind, ok)
    with server.client(user) as client:
        response = client.request(method, path, **kwargs)
    assert response.status_code == status, (name, user, response.text[:300])
    if status >= 400:
        assert set(response.json()["error"]) == {"code", "message"}
        if status == 404:  # the same words as for a document that does not exist: its name never shows
            assert document["name"] not in response.text
    if name in ("list documents", "collections") and status == 200:
        listed = response.json()["documents" if name == "list documents" else "collections"]
        assert bool(listed) == sees_document, (name, user, listed)
    if name == "ask" and status == 200:
        record = response.json()
        assert record["actor"] == f"token:{user}" and record["audit_seq"] >= 1
        assert {e["doc_name"] for e in record["evidence"]} == {document["name"]}
    if name == "page image" and status == 200:
        assert response.headers["content-type"] == "image/png" and response.content.startswith(b"\x89PNG")
    assert server.alive()


def _fill(value, document: dict, user: str):
    if isinstance(value, dict):
        return {k: _fill(v, document, user) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, document, user) for v in value]
    if isinstance(value, str):
        return value.format(doc=document["id"], user=user) if "{" in value and "[" not in value else value
    return value


def test_outside_the_grant_reads_as_not_existing(server, document) -> None:
    """A document outside the grant and one that never existed get the same answer, id aside."""
    with server.client("reader-nogrant") as client:
        hidden = client.get(f"/documents/{document['id']}")
        missing = client.get("/documents/424242")
        by_name = client.get(f"/documents/{document['name']}")
    assert hidden.status_code == missing.status_code == by_name.status_code == 404
    assert hidden.json()["error"]["message"].replace(f"document {document['id']}:", "document X:") == \
        missing.json()["error"]["message"].replace("document 424242:", "document X:")


def test_denied_accesses_are_audit_events(server, document) -> None:
    with server.client("reader-nogrant") as client:
        assert client.get(f"/documents/{document['id']}").status_code == 404
    with server.client("auditor") as auditor:
        entries = auditor.get("/audit/entries", params={"type": "access_denied", "actor": "token:reader-nogrant",
                                                        "limit": 1000}).json()["entries"]
    assert entries and all(e["actor"] == "token:reader-nogrant" for e in entries)


def test_auditor_opens_a_page_only_through_an_answer_that_cites_it(server, document) -> None:
    with server.client("reader") as reader:
        record = reader.post("/ask", json={"question": QUESTION, "collection": COLLECTION}).json()
    cited = record["evidence"][0]
    other_page = next(p for p in range(1, document["pages"] + 1) if p not in {e["page"] for e in record["evidence"]})
    with server.client("auditor") as auditor:
        url = f"/documents/{document['id']}/pages/{cited['page']}/image"
        assert auditor.get(url).status_code == 404
        shown = auditor.get(url, params={"seq": record["audit_seq"], "chunk": cited["chunk_id"]})
        assert shown.status_code == 200 and shown.content.startswith(b"\x89PNG")
        uncited = auditor.get(f"/documents/{document['id']}/pages/{other_page}/image", params={"seq": record["audit_seq"]})
        assert uncited.status_code == 404


def test_two_users_get_evidence_only_from_their_own_documents(server, document) -> None:
    """Search filters by the grant before top-k: a user granted one document gets a full top-k from it."""
    import uuid

    from service_server import SAMPLE

    # A second document in the collection, granted to nobody but the admin who uploads it.
    with server.client("admin") as admin:
        pdf = _small_pdf("SECOND SERVICES AGREEMENT. The consulting agreement ends on ninety days' notice. " * 5, pages=4)
        job = admin.post("/documents", files={"file": (f"second-{uuid.uuid4().hex[:6]}.pdf", pdf, "application/pdf")},
                         data={"collection": COLLECTION}).json()["job"]
        job = _wait(admin, job["id"])
        assert job["status"] == "done", job
        second_id = job["result"]["file"]["document_id"]
        admin.post("/users", json={"name": "one-doc", "role": "reader"}).raise_for_status()
        admin.post("/users/one-doc/grants", json={"collection": COLLECTION, "document": str(second_id)}).raise_for_status()
        token = admin.post("/users/one-doc/tokens", json={"expires": "1d"}).json()["token"]
    server.tokens["one-doc"] = token
    answers = {}
    for user in ("reader", "one-doc"):
        with server.client(user) as client:
            top_k = 3 if user == "one-doc" else 10
            answers[user] = client.post("/ask", json={"question": QUESTION, "collection": COLLECTION, "top_k": top_k}).json()
    assert all(e["doc_name"].startswith("second-") for e in answers["one-doc"]["evidence"])
    assert len(answers["one-doc"]["evidence"]) == 3  # complete: the filter ran before top-k
    # Checked against the search over the whole collection (the reader's grant): it draws on the sample
    # too, whose passages the one-document user never receives.
    assert SAMPLE.name in {e["doc_name"] for e in answers["reader"]["evidence"]}


def _small_pdf(text: str, pages: int = 1) -> bytes:
    import pymupdf

    doc = pymupdf.open()
    for n in range(pages):
        page = doc.new_page()
        page.insert_textbox(pymupdf.Rect(50, 50, 545, 790), f"Page {n + 1}. {text}", fontsize=11)
    return doc.tobytes()


def _wait(client: httpx.Client, job_id: str, timeout: float = 300) -> dict:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/jobs/{job_id}").json()
        if job["status"] in ("done", "failed"):
            return job
        time.sleep(0.5)
    raise AssertionError(f"job {job_id} did not finish in {timeout} s")
