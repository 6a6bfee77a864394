"""The shipped contract checklist over the three sample contracts with the extractive answerer, its
verdicts checked against what the contracts say, and its HTML report opened in a real browser."""

from __future__ import annotations

import os
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from PIL import Image

from conftest import DRIVEN, DUOS, NETGEAR
from pipeline.app import Docket
from pipeline.review import Checklist, load_checklist, run_review
from pipeline.review.reports import VERDICT_COLOURS, render
from pipeline.review.state import Review
from pipeline.settings import load_settings

ITEMS = ("governing-law", "renewal-notice", "termination-for-convenience", "insurance", "source-code-escrow")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def reviewed(ingested_samples: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Docket, Review]:
    """One review of five items of the shipped CUAD checklist over the samples (run once: ~12 cells)."""
    home = tmp_path_factory.mktemp("review-home")
    shutil.copytree(ingested_samples, home, dirs_exist_ok=True)
    with pytest.MonkeyPatch.context() as env:
        for var in [v for v in os.environ if v.startswith("DOCKET_") or v == "MISTRAL_API_KEY"]:
            env.delenv(var)
        docket = Docket(load_settings(home=home, actor="test-analyst"))
        shipped = load_checklist("commercial-contract")
        checklist = Checklist.model_validate(
            shipped.model_dump() | {"items": [i.model_dump() for i in shipped.items if i.id in ITEMS]}
        )
        outcome = run_review(docket, checklist, collection="samples")
    return docket, outcome.review


def _cell(review: Review, item: str, document: str):
    sha = next(d.sha256 for d in review.documents if d.name == document)
    return review.cells.get((item, sha))


def _quotes(cell) -> str:
    return " ".join(c.quote for c in cell.finding.citations)


def test_verdicts_match_what_the_contracts_say(reviewed) -> None:
    _, review = reviewed
    # The extractive answerer never judges; the shipped checklist's rules decide on the value it
    # extracted (issue 17): no sample is governed by New York or Delaware law.
    assert {c.verdict for c in review.cells.values()} <= {"compliant", "non-compliant", "needs-review", "not-addressed"}
    assert all("not by a model" in c.finding.basis for c in review.cells.values() if c.verdict.endswith("compliant"))
    assert _cell(review, "renewal-notice", DUOS).verdict == "compliant"  # ninety (90) days >= 60
    assert _cell(review, "termination-for-convenience", DRIVEN).verdict == "non-compliant"  # thirty (30) days < 60
    assert _cell(review, "termination-for-convenience", NETGEAR).verdict == "compliant"  # ninety (90) days

    for document, state, page in ((NETGEAR, "California", 8), (DRIVEN, "California", 6), (DUOS, "Florida", 5)):
        law = _cell(review, "governing-law", document)
        assert law.verdict == "non-compliant" and f"State of {state}" in law.finding.basis
        cited = [c for c in law.finding.citations if f"laws of the State of {state}" in c.quote]
        assert cited and cited[0].page == page, law.finding.citations

    assert "ninety (90) days" in _quotes(_cell(review, "renewal-notice", DUOS))
    assert "thirty (30) days" in _quotes(_cell(review, "termination-for-convenience", DRIVEN))
    assert "without cause by either party upon ninety (90) days" in _quotes(
        _cell(review, "termination-for-convenience", NETGEAR)
    )
    # Only the NETGEAR agreement requires insurance (page 7); the other two never mention it, so
    # nothing they yield can be insurance evidence (DUOS's nearest sentence is left for a person).
    insurance = _cell(review, "insurance", NETGEAR)
    assert insurance.verdict == "compliant" and {c.page for c in insurance.finding.citations} == {7}
    assert "maintain insurance coverage" in _quotes(insurance)
    assert _cell(review, "insurance", DRIVEN).verdict == "non-compliant"  # clause_present, none found
    assert "insurance" not in _quotes(_cell(review, "insurance", DUOS)).lower()
    # Source-code escrow applies to licence agreements only: no cell for these contracts.
    assert not any(item == "source-code-escrow" for item, _ in review.cells)
    assert len(review.cells) == 12 and review.completed_at is not None


def test_every_cell_is_one_audit_entry_and_the_review_ends_with_a_checkpoint(reviewed) -> None:
    docket, review = reviewed
    findings = list(docket.audit.entries(event_type="review_finding", subject=f"review:{review.id}"))
    assert sorted(e.seq for e in findings) == sorted(c.audit_seq for c in review.cells.values())
    for entry in findings:
        assert entry.payload["verdict"] == entry.status and entry.payload["document"]["sha256"] in entry.subjects
    started = docket.audit.get(review.started_seq)
    assert started.event_type == "review_started"
    assert {d["sha256"] for d in started.payload["documents"]} == {d.sha256 for d in review.documents}
    assert started.payload["index_generation"] == review.index_generation == docket.store.generation()
    checkpoint = docket.audit.get(review.checkpoint["size"] + 1)
    assert checkpoint.event_type == "checkpoint" and checkpoint.payload["root"] == review.checkpoint["root"]
    assert docket.audit.verify(Path(review.checkpoint["file"])).ok


def test_running_it_again_redoes_nothing(reviewed) -> None:
    docket, review = reviewed
    checklist = Checklist.model_validate(review.checklist)
    again = run_review(docket, checklist, collection="samples")
    assert again.resumed and again.ran == 0 and again.review.id == review.id
    assert len(list(docket.audit.entries(event_type="review_finding", subject=f"review:{review.id}"))) == 12


class _Cells(HTMLParser):
    """The findings (one a cell) and the evidence inside them, as the browser's DOM has them."""

    def __init__(self) -> None:
        super().__init__()
        self.cells: list[dict] = []
        self._in_quote = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "article" and "finding" in (a.get("class") or "").split():
            self.cells.append({"item": a["data-item"], "verdict": a["data-verdict"], "quotes": [], "pages": []})
        elif tag == "div" and a.get("class") == "citation":
            self.cells[-1]["pages"].append(int(a["data-page"]))
        elif tag == "blockquote":
            self._in_quote = True
            self.cells[-1]["quotes"].append("")

    def handle_endtag(self, tag):
        if tag == "blockquote":
            self._in_quote = False

    def handle_data(self, data):
        if self._in_quote:
            self.cells[-1]["quotes"][-1] += data


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")
def test_html_report_renders_cells_and_evidence_in_a_real_browser(reviewed, tmp_path: Path) -> None:
    _, review = reviewed
    page = tmp_path / "review.html"
    page.write_text(render(review, "html"), encoding="utf-8")
    flags = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([*flags, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120).stdout

    parsed = _Cells()
    parsed.feed(dom)
    assert len(parsed.cells) == 12
    law = [c for c in parsed.cells if c["item"] == "governing-law"]
    assert len(law) == 3 and all(c["verdict"] == "non-compliant" and c["quotes"] for c in law)
    assert any("laws of the State of Florida" in q for c in law for q in c["quotes"])
    law_pages = {p for c in law for p, q in zip(c["pages"], c["quotes"], strict=True) if "laws of the State of" in q}
    assert law_pages == {5, 6, 8}  # DUOS, DRIVEN, NETGEAR: each quote shown with its page
    assert dom.count('<td class="cell"') == 12 and 'class="trace"' in dom  # the grid has a cell for each finding
    text = " ".join(dom.split())
    assert text.index("Executive summary") < text.index("Findings by document") < text.index("The grid")

    shot = tmp_path / "review.png"
    subprocess.run([*flags, f"--screenshot={shot}", "--window-size=1600,9000", page.as_uri()],  # the whole report
                   capture_output=True, timeout=120, check=True)
    colours = {colour for _, colour in Image.open(shot).convert("RGB").getcolors(maxcolors=1 << 24)}
    # The verdict colours are painted by the summary's headings, the findings' labels and the grid's cells
    # (the legend's swatches are drawn translucent, so not by them).
    for verdict in ("compliant", "non-compliant"):
        hex_colour = VERDICT_COLOURS[verdict].lstrip("#")
        assert tuple(int(hex_colour[i : i + 2], 16) for i in (0, 2, 4)) in colours
