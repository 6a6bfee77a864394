"""The web app in a real browser: Debian's Chromium driven by Playwright, against a real `docket serve`.

The workspace has one sample contract ingested; the users and grants are made with `docket users`
exactly as an admin would. Each page is checked with axe-core (vendored in tests/vendor/) for
serious or critical accessibility violations. With DOCKET_WEB_SCREENSHOTS=docs/web the screenshots
are written there (docs/web.md), else into the test's temporary folder.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
from pathlib import Path

import httpx
import pytest

from service_server import COLLECTION, clean_env, copy_workspace, docket_command, ingested_template, start_server

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = Path("/usr/bin/chromium")
AXE = Path(__file__).with_name("vendor") / "axe.min.js"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
QUESTION = "How much notice must a party give to terminate the agreement without cause?"
PASSWORDS = {"alice": "alice-password-123", "bob": "bob-password-1234", "audrey": "audrey-password-123",
             "rita": "rita-password-1234"}

playwright_sync = pytest.importorskip("playwright.sync_api", reason="pip install playwright (the test extra)")
if not CHROMIUM.is_file():
    pytest.skip("the system Chromium is missing: scripts/install-system-deps.sh installs it", allow_module_level=True)


def docket(home: Path, *args: str, stdin: str | None = None) -> str:
    done = subprocess.run([*docket_command(), *args], env=clean_env(home), input=stdin, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, f"docket {' '.join(args)}: {done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    base = tmp_path_factory.mktemp("web")
    home = copy_workspace(ingested_template(base), base / "home")
    # alice reads the collection, bob is a reader granted nothing, audrey audits, rita reviews the collection.
    for name, role in (("alice", "reader"), ("bob", "reader"), ("audrey", "auditor"), ("rita", "reviewer")):
        docket(home, "users", "add", name, "--role", role, "--password-stdin", stdin=PASSWORDS[name] + "\n")
    docket(home, "users", "grant", "alice", "--collection", COLLECTION)
    docket(home, "users", "grant", "rita", "--collection", COLLECTION)
    token = next(w for w in docket(home, "users", "token", "alice", "--expires", "1d").split() if w.startswith("dkt_"))
    running = start_server(home, base / "serve.log")
    running.tokens["alice"] = token
    yield running
    running.stop()


@pytest.fixture(scope="module")
def browser():
    with playwright_sync.sync_playwright() as pw:
        launched = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = os.environ.get("DOCKET_WEB_SCREENSHOTS")
    folder = Path(target) if target else tmp_path_factory.mktemp("screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def log_in(browser, server, name: str):
    context = browser.new_context(viewport={"width": 1280, "height": 900}, base_url=server.base_url)
    page = context.new_page()
    page.goto("/login")
    page.get_by_label("Name").fill(name)
    page.get_by_label("Password").fill(PASSWORDS[name])
    page.get_by_role("button", name="Log in").click()
    page.wait_for_load_state("networkidle")
    assert "/login" not in page.url, page.content()
    return page


def assert_accessible(page, where: str) -> None:
    page.add_script_tag(path=str(AXE))
    result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    bad = [(v["id"], v["impact"], [n["target"] for n in v["nodes"]][:3])
           for v in result["violations"] if v["impact"] in ("serious", "critical")]
    assert not bad, f"{where}: accessibility violations {bad}"


def test_login_page_is_accessible(browser, server, shots: Path) -> None:
    page = browser.new_context(viewport={"width": 1280, "height": 700}).new_page()
    page.goto(server.base_url + "/ask")
    assert "/login" in page.url  # no session: the page asks for a login first
    assert_accessible(page, "login")
    page.screenshot(path=str(shots / "login.png"))
    page.get_by_label("Name").fill("alice")
    page.get_by_label("Password").fill("wrong-password-000")
    page.get_by_role("button", name="Log in").click()
    assert "wrong" in page.locator(".problem").inner_text()
    page.context.close()


def test_ask_then_citation_highlights_the_chunk_boxes(browser, server, shots: Path) -> None:
    page = log_in(browser, server, "alice")
    assert page.url.endswith("/ask")
    options = page.locator("#collection option").all_inner_texts()
    assert options == [COLLECTION]  # only the granted collection
    page.get_by_label("Question").fill(QUESTION)
    page.get_by_role("button", name="Ask").click()
    answer = page.locator("article.answer").first
    answer.wait_for(timeout=120_000)
    assert "answered" in answer.locator(".status").inner_text()
    assert answer.locator(".grounding").inner_text().startswith("Checked against the sources: supported")
    trace = answer.locator("details.trace summary")
    assert "program's steps" in trace.inner_text()  # the extractive answerer: labelled as the program's, not a model's
    seq = int(answer.get_attribute("data-seq"))
    assert_accessible(page, "ask")
    page.screenshot(path=str(shots / "ask.png"), full_page=True)

    # A follow-up in the same view is appended below the first answer.
    page.get_by_label("Question").fill("Which state's law governs the agreement?")
    page.get_by_role("button", name="Ask").click()
    page.locator("article.answer").nth(1).wait_for(timeout=120_000)

    link = answer.locator("a.citation").first
    href = link.get_attribute("href")
    chunk_id = int(href.split("chunk=")[1].split("&")[0])
    link.click()
    page.wait_for_load_state("networkidle")
    image = page.locator("#page-image")
    page.wait_for_function("() => { const i = document.getElementById('page-image'); return i.complete && i.naturalWidth > 0 }")
    assert page.locator(".reading").inner_text().count("text layer") == 1

    # The chunk's stored boxes, read through the API as alice (her token), against the overlay's position.
    with httpx.Client(base_url=server.base_url + "/api/v1", headers={"Authorization": f"Bearer {server.tokens['alice']}"},
                      timeout=120) as api:
        answered = api.post("/ask", json={"question": QUESTION, "collection": COLLECTION}).json()
        evidence = next(e for e in answered["evidence"] if e["chunk_id"] == chunk_id)
        document = api.get(f"/documents/{evidence['doc_sha256']}", params={"pages": "true"}).json()
    details = next(p for p in document["page_details"] if p["page"] == evidence["page"])
    img = image.bounding_box()
    scale_x, scale_y = img["width"] / details["width"], img["height"] / details["height"]
    overlays = page.locator(".highlight")
    assert overlays.count() == len(evidence["boxes"]) >= 1
    for i, (x0, y0, x1, y1) in enumerate(evidence["boxes"]):
        shown = overlays.nth(i).bounding_box()
        expected = {"x": img["x"] + x0 * scale_x, "y": img["y"] + y0 * scale_y,
                    "width": (x1 - x0) * scale_x, "height": (y1 - y0) * scale_y}
        for key, value in expected.items():
            assert abs(shown[key] - value) <= 1.5, f"overlay {i} {key}: {shown[key]:.1f} px, the box says {value:.1f}"
    assert_accessible(page, "page view")
    page.screenshot(path=str(shots / "citation.png"), full_page=True)

    page.goto(f"/audit/{seq}")
    assert page.locator("h1").inner_text().startswith("Not allowed")  # a reader does not read the log
    page.goto("/documents")
    assert page.locator("table.documents tbody tr").count() == 1
    assert_accessible(page, "documents")
    page.screenshot(path=str(shots / "documents.png"))
    page.context.close()


def test_document_outside_the_grant_is_not_found(browser, server) -> None:
    page = log_in(browser, server, "bob")
    assert page.locator("#collection").count() == 0  # granted nothing: no collection to pick
    for url in ("/documents/1/pages/1", "/documents/1/pages/1?chunk=1", "/documents/1"):
        response = page.goto(url)
        assert response.status == 404, url
        assert page.locator("h1").inner_text() == "Not found"
        assert "no such document" in page.locator(".problem").inner_text()
    page.goto("/documents")
    assert page.locator("table.documents tbody tr").inner_text() == "No documents yet."
    assert_accessible(page, "not found")
    # A form posted with the session cookie but without its CSRF token (as another site would) is refused.
    forged = page.request.post(server.base_url + "/ask", form={"question": QUESTION, "collection": COLLECTION})
    assert forged.status == 403 and "CSRF" in forged.text()
    page.get_by_role("button", name="Log out").click()
    page.wait_for_url("**/login")
    page.goto("/documents")
    assert "/login" in page.url  # the session has ended
    page.context.close()


def test_review_grid_cell_sign_off_and_the_refused_whole_review(browser, server, shots: Path) -> None:
    page = log_in(browser, server, "rita")
    assert page.url.endswith("/reviews")
    page.get_by_label("Checklist").select_option("commercial-contract")
    page.get_by_role("button", name="Start").click()
    page.locator("#review-progress .job-done").wait_for(timeout=300_000)
    page.locator("#review-progress a", has_text="open review").click()
    page.wait_for_load_state("networkidle")
    review_url = page.url
    grid = page.locator("table.grid")
    items = grid.locator("thead th").count() - 1
    assert items >= 10 and grid.locator("tbody tr").count() == 1
    assert "New York or Delaware" in grid.locator("thead").inner_text()  # each item's requirement is on the grid
    summary = page.locator("table.summary")
    counted = sum(int(t) for t in summary.locator("tbody td").all_inner_texts())
    assert counted == items  # the summary by severity and verdict covers every cell
    header = grid.locator("thead th").nth(1)
    assert header.evaluate("h => getComputedStyle(h).position") == "sticky"
    assert_accessible(page, "review")
    page.screenshot(path=str(shots / "review.png"))

    # The whole review cannot be accepted while cells are open, unless the reviewer acknowledges them.
    unresolved = int(page.locator("section.summary p").first.inner_text().split()[0])
    assert unresolved >= 1, "the sample review has cells that need a human"
    page.get_by_label("Note (goes into the audit log)").fill("Reviewed with the deal team")
    page.get_by_role("button", name="Accept the review").click()
    refused = page.locator("#sign-off-message")
    assert refused.inner_text().startswith(f"Not signed off: {unresolved} cells are unresolved")
    assert "whole review accepted" not in page.locator("section.summary").inner_text()

    # One open cell: its evidence on the page, then a sign-off that resolves it.
    page.goto(review_url + "?show=open")
    open_cell = page.locator("td.verdict-needs-review a").first
    open_cell.click()
    page.wait_for_load_state("networkidle")
    assert page.locator("dd.verdict-needs-review").count() == 1
    assert_accessible(page, "cell")
    page.screenshot(path=str(shots / "cell.png"), full_page=True)
    cell_url = page.url
    if page.locator("a.citation").count():
        page.locator("a.citation").first.click()
        page.wait_for_load_state("networkidle")
        assert page.locator(".highlight").count() >= 1
        page.goto(cell_url)
    page.get_by_label("Decision").select_option("override")
    page.get_by_label("Verdict (for an override)").select_option("not-addressed")
    page.get_by_label("Note (goes into the audit log)").fill("The contract is silent on this; checked by hand")
    page.get_by_role("button", name="Sign off this cell").click()
    page.wait_for_load_state("networkidle")
    assert page.locator("dd.verdict-not-addressed").count() == 1 and "override" in page.locator("main ul").inner_text()

    page.get_by_role("link", name="Back to review").click()
    left = int(page.locator("section.summary p").first.inner_text().split()[0])
    assert left == unresolved - 1
    page.get_by_label("Note (goes into the audit log)").fill("Accepted with the open items listed")
    page.get_by_label("I accept the review with its").check()
    page.get_by_role("button", name="Accept the review").click()
    page.wait_for_load_state("networkidle")
    assert "whole review accepted by session:rita" in page.locator("section.summary").inner_text()
    # The acknowledgement is in the audit log with the sign-off.
    with httpx.Client(base_url=server.base_url + "/api/v1", timeout=60) as api:
        found = api.post("/login", json={"name": "audrey", "password": PASSWORDS["audrey"]})
        entries = api.get("/audit/entries", params={"type": "sign_off"}).json()["entries"]
    assert any(f"acknowledged {left} unresolved cells" in (e["payload"] or {}).get("note", "") for e in entries), entries
    assert found.status_code == 200
    page.context.close()


def test_audit_verify_ok_then_names_the_tampered_seq(browser, server, shots: Path) -> None:
    page = log_in(browser, server, "audrey")
    assert page.url.endswith("/audit")
    page.get_by_label("Event type").fill("answer")
    page.get_by_role("button", name="Filter").click()
    rows = page.locator("table.entries tbody tr")
    assert rows.count() >= 2 and all(t == "answer" for t in page.locator("table.entries tbody td:nth-child(3)").all_inner_texts())
    assert_accessible(page, "audit")
    page.get_by_role("button", name="Verify").click()
    outcome = page.locator("#verify-outcome")
    outcome.wait_for()
    assert outcome.inner_text().startswith("OK")
    page.screenshot(path=str(shots / "audit.png"), full_page=True)

    seq = int(rows.first.locator("td").first.inner_text())
    page.goto(f"/audit/{seq}")
    assert page.locator("h1").inner_text().startswith(f"Audit entry {seq}")
    assert "session:alice" in page.locator("dl.facts").first.inner_text()
    assert "supported" in page.locator(".grounding").inner_text()
    assert_accessible(page, "entry")
    page.screenshot(path=str(shots / "entry.png"), full_page=True)
    # An auditor opens the page the logged answer cites, and no other.
    page.locator("a.citation").first.click()
    assert page.locator(".highlight").count() >= 1
    assert page.goto("/documents/1/pages/1").status == 404

    # Tamper, as someone with the database's files would: drop the triggers, edit one payload.
    conn = sqlite3.connect(server.home / "audit.db")
    try:
        for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall():
            conn.execute(f"DROP TRIGGER {name}")
        edited = conn.execute("UPDATE audit_payloads SET payload = replace(payload, 'thirty', 'ninety') WHERE seq = ?",
                              (seq,)).rowcount
        conn.commit()
    finally:
        conn.close()
    assert edited == 1
    page.goto("/audit")
    page.get_by_role("button", name="Verify").click()
    outcome = page.locator("#verify-outcome")
    outcome.wait_for()
    assert outcome.inner_text().startswith(f"FAILED at seq {seq}"), outcome.inner_text()
    assert_accessible(page, "audit after tamper")
    page.screenshot(path=str(shots / "audit-tampered.png"))
    page.context.close()
