"""The web app in a real browser: Debian's Chromium driven by Playwright, against a real `docket serve`.

The workspace has one sample contract ingested; the users and grants are made with `docket users`
exactly as an admin would. Each page is checked with axe-core (vendored in tests/vendor/) for
serious or critical accessibility violations. With DOCKET_WEB_SCREENSHOTS=docs/web the screenshots
are written there (docs/web.md), else into the test's temporary folder.

The tests share one server and run in file order, as a day's work would: questions are asked, a
review is run and signed off, a second contract is uploaded and reviewed on its own, then the
auditor reads what all of that left in the log, and last tampers with it.
"""

from __future__ import annotations

import io
import json
import os
import sqlite3
import subprocess
import zipfile
from pathlib import Path

import httpx
import pymupdf
import pytest

from conftest import DUOS, SAMPLES
from service_server import COLLECTION, clean_env, copy_workspace, docket_command, ingested_template, start_server

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = Path("/usr/bin/chromium")
AXE = Path(__file__).with_name("vendor") / "axe.min.js"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
QUESTION = "How much notice must a party give to terminate the agreement without cause?"
PASSWORDS = {"alice": "alice-password-123", "bob": "bob-password-1234", "audrey": "audrey-password-123",
             "rita": "rita-password-1234", "adam": "adam-password-1234"}
# Snapshots of a job's progress element each time htmx swaps it in (what a person watching would see).
WATCH_JOBS = """(target) => {
  window.__jobs = [];
  const seen = () => { for (const j of document.querySelectorAll(target + ' .job'))
    window.__jobs.push({status: j.dataset.status, done: +j.dataset.done, total: +j.dataset.total}); };
  new MutationObserver(seen).observe(document.querySelector(target), {childList: true, subtree: true});
}"""

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
    # alice reads the collection, bob is a reader granted nothing, audrey audits, rita reviews the collection,
    # adam is an admin (uploads).
    for name, role in (("alice", "reader"), ("bob", "reader"), ("audrey", "auditor"), ("rita", "reviewer"),
                       ("adam", "admin")):
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


def watched_jobs(page) -> list[dict]:
    return page.evaluate("() => window.__jobs")


def assert_live(snapshots: list[dict], what: str) -> None:
    """The progress was shown while the job ran (not only once it was done), and it only went forward."""
    assert snapshots and snapshots[-1]["status"] == "done", (what, snapshots)
    assert any(s["status"] in ("queued", "running") for s in snapshots), (what, snapshots)
    done = [s["done"] for s in snapshots]
    assert done == sorted(done), (what, snapshots)


def test_review_grid_cell_sign_off_and_the_refused_whole_review(browser, server, shots: Path) -> None:
    page = log_in(browser, server, "rita")
    assert page.url.endswith("/reviews")
    page.get_by_label("Checklist").select_option("commercial-contract")
    page.evaluate(WATCH_JOBS, "#review-progress")
    page.get_by_role("button", name="Start").click()
    page.locator("#review-progress .job-done").wait_for(timeout=300_000)
    progress = watched_jobs(page)
    assert_live(progress, "review")
    # Cells were counted as they were recorded: some snapshot shows part of the review done.
    assert any(0 < s["done"] < s["total"] for s in progress), progress
    assert progress[-1]["done"] == progress[-1]["total"] >= 10
    page.locator("#review-progress a", has_text="open review").click()
    page.wait_for_load_state("networkidle")
    review_url = page.url
    review_id = review_url.rstrip("/").split("/")[-1]
    grid = page.locator("table.grid")
    items = grid.locator("thead th").count() - 1
    assert items >= 10 and grid.locator("tbody tr").count() == 1
    assert "New York or Delaware" in grid.locator("thead").inner_text()  # each item's requirement is on the grid
    summary = page.locator("table.summary")
    counted = sum(int(t) for t in summary.locator("tbody td").all_inner_texts())
    applicable = items - grid.locator("td.verdict-not-applicable").count()
    assert counted == applicable  # the summary by severity and verdict covers every cell the checklist applies to
    header = grid.locator("thead th").nth(1)
    assert header.evaluate("h => getComputedStyle(h).position") == "sticky"
    assert_accessible(page, "review")
    page.screenshot(path=str(shots / "review.png"))

    # The whole review cannot be accepted while cells are open, unless the reviewer acknowledges them.
    unresolved = int(page.locator("section.summary p.open-count").inner_text().split()[0])
    assert unresolved >= 1, "the sample review has cells that need a human"
    page.get_by_label("Note (goes into the audit log)").fill("Reviewed with the deal team")
    page.get_by_role("button", name="Accept the review").click()
    refused = page.locator("#sign-off-message")
    assert refused.inner_text().startswith(f"Review {review_id}: not signed off, {unresolved} open items ("), refused.inner_text()
    assert "whole review accepted" not in page.locator("section.summary").inner_text()

    # A cell's evidence marks the passages its answer cites (the API's cell has their labels).
    cells = page.request.get(f"{server.base_url}/api/v1/reviews/{review_id}").json()["cells"]
    citing = next(c for c in cells if c["citations"])
    page.goto(f"{review_url}/cells/{citing['item_id']}/{citing['document']['sha256']}")
    marked = [t.split("]")[0].lstrip("[") for t in page.locator("li.cited a.citation").all_inner_texts()]
    assert sorted(marked) == sorted({c["label"] for c in citing["citations"]}), (marked, citing["citations"])
    assert page.locator("li:not(.cited) .cited-mark").count() == 0

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
    assert page.locator("dd.verdict-not-addressed").count() == 1 and "override" in page.locator("main ul").last.inner_text()

    page.get_by_role("link", name="Back to review").click()
    left = int(page.locator("section.summary p.open-count").inner_text().split()[0])
    assert left == unresolved - 1
    page.get_by_label("Note (goes into the audit log)").fill("Accepted with the open items listed")
    page.get_by_label("I accept the review with its").check()
    page.get_by_role("button", name="Accept the review").click()
    page.wait_for_load_state("networkidle")
    assert "whole review accepted by session:rita" in page.locator("section.summary").inner_text()
    # The acknowledgement is in the audit log with the sign-off: how many, which, and who.
    with httpx.Client(base_url=server.base_url + "/api/v1", timeout=60) as api:
        found = api.post("/login", json={"name": "audrey", "password": PASSWORDS["audrey"]})
        entries = api.get("/audit/entries", params={"type": "sign_off"}).json()["entries"]
    assert found.status_code == 200
    whole = [e for e in entries if (e["payload"] or {}).get("item_id") is None]
    assert len(whole) == 1 and whole[0]["actor"] == "session:rita", entries
    acknowledged = whole[0]["payload"]["acknowledged_open"]
    assert (acknowledged["count"], acknowledged["by"], len(acknowledged["items"])) == (left, "session:rita", left)

    # The report for a partner: the executive summary first, and it prints to PDF.
    page.get_by_role("link", name="The report").click()
    page.wait_for_load_state("networkidle")
    assert page.locator("h2").first.inner_text() == "Executive summary"
    assert_accessible(page, "report")
    page.screenshot(path=str(shots / "report.png"))
    pdf = pymupdf.open(stream=page.pdf(prefer_css_page_size=True), filetype="pdf")
    pages = [" ".join(p.get_text().split()) for p in pdf]
    findings = next(i for i, t in enumerate(pages) if "Findings by document" in t)
    summary_text = " ".join(pages[:findings])
    assert findings >= 1 and pages[findings].startswith("Findings by document")  # the summary has its own page(s)
    assert summary_text.index("Executive summary") < summary_text.index("Open items") < summary_text.index("Sign-off")
    assert f"{left} open items" in summary_text and "signed off by session:rita" in summary_text
    assert "Accepted with the open items listed" in summary_text and "needs human review" in summary_text
    assert not any("Print this page" in t for t in pages)  # the screen-only hint is not printed
    assert pdf[0].rect.width < pdf[0].rect.height and pdf[-1].rect.width > pdf[-1].rect.height  # the grid: landscape
    assert pages[-1].startswith("The grid") or "The grid" in pages[-2]
    page.context.close()


def _grown_review(home: Path, review_id: str, documents: int, items: int) -> str:
    """A review of `documents` documents x `items` items, made from the real review `review_id`: its
    checklist's items repeated and its one document's findings copied under other names and hashes
    (the same document id, so the grants apply as to the original). Written through ReviewState."""
    import copy
    import hashlib
    import uuid

    from pipeline.review.state import Cell, ReviewDocument, ReviewState

    state = ReviewState(f"sqlite:///{home / 'registry.db'}")
    try:
        old = state.load(review_id)
        source = old.ready_documents[0]
        checklist = copy.deepcopy(old.checklist)
        base_items = checklist["items"]
        checklist["items"] = [
            {**base_items[i % len(base_items)], "id": f"{base_items[i % len(base_items)]['id']}-{i}"} for i in range(items)
        ]
        grown = copy.deepcopy(old)
        grown.id, grown.resume_key = uuid.uuid4().hex[:12], uuid.uuid4().hex
        grown.checklist, grown.cells, grown.signoffs = checklist, {}, []
        grown.documents = []
        for n in range(documents):
            name = f"COMPANY_{n:02d}_HOLDINGS_INC_05_22_2020-EX-10.{n}-MASTER_SERVICES_AND_SUPPLY_AGREEMENT.pdf"
            sha = hashlib.sha256(name.encode()).hexdigest()
            grown.documents.append(ReviewDocument(n, name, "ready", source.document_id, sha, 1))
        state.create(grown)
        originals = [c for (item, sha), c in old.cells.items() if sha == source.sha256]
        for doc in grown.documents:
            for i, item in enumerate(checklist["items"]):
                cell = originals[i % len(originals)]
                state.put_cell(grown.id, Cell(item["id"], doc.sha256, cell.verdict, cell.failed, cell.confidence,
                                              cell.audit_seq, cell.finding.model_copy(update={"item_id": item["id"]})))
    finally:
        state.close()
    return grown.id


def test_the_grid_stays_readable_at_twenty_items_by_fifty_documents(browser, server, shots: Path) -> None:
    page = log_in(browser, server, "rita")
    reviews = page.request.get(f"{server.base_url}/api/v1/reviews").json()["reviews"]
    assert reviews, "the review test before this one made a review"
    grown = _grown_review(server.home, reviews[0]["id"], documents=50, items=20)
    page.goto(f"/reviews/{grown}")
    grid = page.locator("table.grid")
    assert grid.locator("tbody tr").count() == 50 and grid.locator("thead th").count() == 21
    # Every item's requirement is on the grid, and the page itself does not scroll sideways: the grid does.
    assert grid.locator("thead .requirement").count() == 20
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
    # Document names stay whole words across a few lines, not one letter a line.
    heights = grid.locator("tbody th.docname").evaluate_all("hs => hs.map(h => [h.getBoundingClientRect().width, h.getBoundingClientRect().height])")
    line = page.evaluate("parseFloat(getComputedStyle(document.querySelector('th.docname')).lineHeight) || 20")
    assert all(width >= 150 and height <= 6 * line for width, height in heights), heights[:3]
    # Scrolled to the last row and the last item, the item headers stay at the top of the grid and the
    # document names at its left (sticky), so every cell still says which item and document it is.
    wrap = page.locator(".grid-wrap")
    wrap.evaluate("w => { w.scrollTop = w.scrollHeight; w.scrollLeft = w.scrollWidth; }")
    frame = wrap.bounding_box()
    header = grid.locator("thead th").nth(20).bounding_box()
    name = grid.locator("tbody th.docname").nth(49).bounding_box()
    assert abs(header["y"] - frame["y"]) <= 2 and frame["x"] <= header["x"] < frame["x"] + frame["width"], (header, frame)
    assert abs(name["x"] - frame["x"]) <= 2 and frame["y"] <= name["y"] < frame["y"] + frame["height"], (name, frame)
    assert_accessible(page, "review 20x50")
    page.screenshot(path=str(shots / "review-20x50.png"))


def test_upload_with_progress_then_review_a_selection(browser, server, shots: Path) -> None:
    page = log_in(browser, server, "adam")
    page.goto("/documents")
    page.evaluate(WATCH_JOBS, "#upload-progress")
    page.get_by_label("PDF or image").set_input_files(str(SAMPLES / DUOS))
    page.get_by_label("Collection").fill(COLLECTION)
    page.get_by_label("Type").fill("alliance agreement")
    page.get_by_role("button", name="Upload").click()
    page.locator("#upload-progress .job-done").wait_for(timeout=300_000)
    assert page.locator("#upload-bar").evaluate("b => b.value") == 100  # every byte sent
    assert_live(watched_jobs(page), "upload")
    assert f"added: {DUOS}, 7 pages" in page.locator("#upload-progress").inner_text()
    assert_accessible(page, "documents (admin)")
    page.screenshot(path=str(shots / "upload.png"))
    page.get_by_role("link", name="reload the list").click()
    assert page.locator("table.documents tbody tr").count() == 2
    page.context.close()

    # A reviewer reviews only the new contract: a selection, not the collection.
    page = log_in(browser, server, "rita")
    page.locator("details.pick summary").click()
    page.get_by_label(DUOS).check()
    page.get_by_label("Checklist").select_option("commercial-contract")
    assert_accessible(page, "reviews")
    page.screenshot(path=str(shots / "reviews.png"))
    page.evaluate(WATCH_JOBS, "#review-progress")
    page.get_by_role("button", name="Start").click()
    page.locator("#review-progress .job-done").wait_for(timeout=300_000)
    assert_live(watched_jobs(page), "review of a selection")
    page.locator("#review-progress a", has_text="open review").click()
    page.wait_for_load_state("networkidle")
    rows = page.locator("table.grid tbody th.docname").all_inner_texts()
    assert rows == [DUOS]  # the collection holds two contracts; the review covers the one ticked
    # A ticked id that is no document the reviewer may review is "not found", and nothing starts.
    page.goto("/reviews")
    token = json.loads(page.locator("body").get_attribute("hx-headers"))["X-CSRF-Token"]
    before = len(page.request.get(f"{server.base_url}/api/v1/reviews").json()["reviews"])
    forged = page.request.post(f"{server.base_url}/reviews", headers={"X-CSRF-Token": token},
                               form={"checklist": "commercial-contract", "collection": COLLECTION, "documents": "999"})
    assert forged.status == 404 and "document 999: no such document" in forged.text()
    assert len(page.request.get(f"{server.base_url}/api/v1/reviews").json()["reviews"]) == before
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
    # Each piece of evidence with a thumbnail of its page, served to the auditor because this answer cites it.
    thumbs = page.locator("img.thumbnail")
    assert thumbs.count() == page.locator("li.evidence").count() >= 1
    page.wait_for_function("() => [...document.querySelectorAll('img.thumbnail')].every(i => i.complete && i.naturalWidth > 0)")
    src = thumbs.first.get_attribute("src")
    assert page.request.get(server.base_url + src).status == 200
    cited = {int(t.get_attribute("src").split("/pages/")[1].split("/")[0]) for t in thumbs.all()}
    uncited = next(n for n in range(1, 8) if n not in cited)  # the contract has 7 pages
    other = src.split("/pages/")[0] + f"/pages/{uncited}/" + src.split("/pages/")[1].split("/", 1)[1]
    assert page.request.get(server.base_url + other).status == 404
    assert "names no earlier entry" in page.locator("section.links").inner_text()
    assert_accessible(page, "entry")
    page.screenshot(path=str(shots / "entry.png"), full_page=True)

    # The inclusion proof downloads as JSON, and it proves this entry's leaf under the log's root.
    from audit.verification.tree import verify_inclusion

    with page.expect_download() as got:
        page.get_by_role("link", name="Download its inclusion proof (JSON)").click()
    proof = json.loads(Path(got.value.path()).read_text())
    leaf = page.locator("details dl.facts dd code").first.text_content()
    assert proof["seq"] == seq and proof["leaf_hash"] == leaf
    assert verify_inclusion(seq - 1, proof["tree_size"], bytes.fromhex(leaf), [bytes.fromhex(h) for h in proof["path"]],
                            bytes.fromhex(proof["root"]))

    # What supersedes what: the reviewer's cell sign-off names the finding it signs off, and the finding
    # names the sign-off that came after it.
    page.goto("/audit?type=sign_off")
    cell_sign_off = next(int(r.locator("td").first.inner_text()) for r in page.locator("table.entries tbody tr").all()
                         if "override" in r.inner_text())
    page.goto(f"/audit/{cell_sign_off}")
    link = page.locator("ul.points-at a")
    assert page.locator("ul.points-at").inner_text().startswith("This entry signs off the finding entry")
    finding = int(link.inner_text().split()[-1])
    link.click()
    page.wait_for_load_state("networkidle")
    assert page.locator("h1").inner_text().startswith(f"Audit entry {finding} review_finding")
    # A finding is rendered as its cell's answer, under the verdict, with its evidence's pages as thumbnails
    # that the auditor may open because this finding cites them.
    assert "Verdict" in page.locator("#f-title + dl.facts").inner_text()
    assert page.locator("img.thumbnail").count() == page.locator("li.evidence").count() >= 1
    page.wait_for_function("() => [...document.querySelectorAll('img.thumbnail')].every(i => i.complete && i.naturalWidth > 0)")
    later = page.locator("ul.pointed-at-by").inner_text()
    assert f"Entry {cell_sign_off}, sign_off (override) by session:rita" in later and "signs off the finding this one" in later
    assert_accessible(page, "entry links")
    page.locator("section.links").scroll_into_view_if_needed()
    page.screenshot(path=str(shots / "entry-links.png"))
    for bad, status, words in (("abc", 400, "give the number of an entry"), ("999999", 404, "no entry with seq 999999")):
        refused = page.request.get(f"{server.base_url}/audit/proof?seq={bad}")
        assert refused.status == status and words in refused.text(), (bad, refused.status)

    # An auditor opens the page the logged answer cites, and no other.
    page.goto(f"/audit/{seq}")
    page.locator("a.citation").first.click()
    assert page.locator(".highlight").count() >= 1
    assert page.goto("/documents/1/pages/1").status == 404

    # A bundle of the filtered entries downloads as a zip that verifies under the log's key, and the export
    # is itself in the log, by the auditor.
    page.goto("/audit?type=answer")
    with page.expect_download() as got:
        page.get_by_role("link", name="Download a bundle").click()
    bundle = Path(got.value.path())
    unpacked = bundle.parent / "unpacked"
    with zipfile.ZipFile(io.BytesIO(bundle.read_bytes())) as zf:
        zf.extractall(unpacked)
    from audit.verification.bundle import verify_bundle

    checked = verify_bundle(unpacked / "bundle", trust=[str(k) for k in (server.home / "keys").glob("*.pub")])
    assert checked.ok, checked.problems
    exported = [json.loads(line) for line in (unpacked / "bundle" / "entries.jsonl").read_text().splitlines()]
    assert exported and {e["event_type"] for e in exported} == {"answer"}
    page.goto("/audit?type=export")
    assert "session:audrey" in page.locator("table.entries tbody tr").last.inner_text()

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
