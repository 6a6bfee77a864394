"""The whole-review sign-off rule (pipeline/review/signoff.py) through `docket review sign-off`, and the
review report's executive summary.

A review of the three sample contracts with the extractive answerer (real PDFs, encoder, FAISS, SQLite;
no model at all): a termination item with no rule leaves its cells to a person ("needs human review"),
a governing-law item with a rule decides its own. Accepting the whole review is refused while such
cells are open, nothing is recorded then, and an accept with the right acknowledgement is recorded
with the count, the cells and who acknowledged them.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from conftest import DUOS
from pipeline.app import Docket
from pipeline.review import parse_checklist, run_review
from pipeline.cli.review import make_review_app
from pipeline.review.reports import render
from pipeline.review.runner import review_state
from pipeline.settings import load_settings

ACTOR = "test-reviewer"
CHECKLIST = """\
name: signoff-check
title: Sign-off check
items:
  - id: termination
    title: Termination notice
    question: How much notice must a party give to terminate the agreement?
    requirement: The agreement can be ended on written notice.
    severity: high
  - id: governing-law
    title: Governing law
    question: Which state's law governs the agreement?
    requirement: The agreement is governed by California law.
    severity: medium
    rule:
      kind: jurisdiction_in
      allowed: [California]
"""


@pytest.fixture
def reviewed(samples_copy: Path):
    docket = Docket(load_settings(home=samples_copy, actor=ACTOR))
    review = run_review(docket, parse_checklist(CHECKLIST), collection="samples").review
    app = typer.Typer()
    app.add_typer(make_review_app(lambda: docket), name="review")
    return docket, review, app


def _load(docket: Docket, review_id: str):
    state = review_state(docket)
    try:
        return state.load(review_id)
    finally:
        state.close()


def _needing_a_person(docket: Docket, review_id: str) -> list[tuple[str, str]]:
    """(item, document) of the cells still "needs human review" with no sign-off of their own, read
    from the state tables (not through open_items, the function under test)."""
    review = _load(docket, review_id)
    signed = {(s.item_id, s.doc_sha256) for s in review.signoffs}
    names = {d.sha256: d.name for d in review.documents}
    return sorted((c.item_id, names[c.doc_sha256]) for c in review.cells.values()
                  if c.verdict == "needs-review" and (c.item_id, c.doc_sha256) not in signed)


def test_whole_review_accept_is_refused_while_cells_are_open_then_recorded_with_the_acknowledgement(reviewed) -> None:
    docket, review, app = reviewed
    cli = CliRunner()
    open_cells = _needing_a_person(docket, review.id)
    assert len(open_cells) >= 2, "the termination cells need a person (no rule decides them)"
    assert {item for item, _ in open_cells} == {"termination"}
    n = len(open_cells)

    size = docket.audit.size
    refused = cli.invoke(app, ["review", "sign-off", review.id, "--decision", "accept", "--note", "looks fine"])
    assert refused.exit_code == 2, refused.output
    line = " ".join(refused.output.split())  # rich may wrap the one line at the terminal's width
    assert line.startswith(f"error: review {review.id}: not signed off, {n} open items (termination x ")
    assert f"--acknowledge-open {n}" in line and "Traceback" not in refused.output
    assert docket.audit.size == size  # nothing recorded
    guessed = cli.invoke(app, ["review", "sign-off", review.id, "--decision", "accept", "--note", "x",
                               "--acknowledge-open", str(n + 3)])
    assert guessed.exit_code == 2 and f"the acknowledgement says {n + 3} open but {n} are open now" in " ".join(guessed.output.split())
    misplaced = cli.invoke(app, ["review", "sign-off", review.id, "--item", "termination", "--doc", DUOS,
                                 "--decision", "accept", "--note", "x", "--acknowledge-open", "1"])
    assert misplaced.exit_code == 2 and "--acknowledge-open is for accepting the whole review" in misplaced.output
    assert docket.audit.size == size

    # One open cell resolved by hand: one fewer to acknowledge.
    item, name = open_cells[0]
    resolved = cli.invoke(app, ["review", "sign-off", review.id, "--item", item, "--doc", name, "--decision", "override",
                                "--verdict", "compliant", "--note", "read the clause myself"])
    assert resolved.exit_code == 0, resolved.output
    assert len(_needing_a_person(docket, review.id)) == n - 1
    stale = cli.invoke(app, ["review", "sign-off", review.id, "--decision", "accept", "--note", "x", "--acknowledge-open", str(n)])
    assert stale.exit_code == 2 and f"says {n} open but {n - 1}" in " ".join(stale.output.split())

    accepted = cli.invoke(app, ["review", "sign-off", review.id, "--decision", "accept", "--note", "accepted, open ones to the deal team",
                                "--acknowledge-open", str(n - 1), "--json"])
    assert accepted.exit_code == 0, accepted.output
    shown = json.loads(accepted.output)
    assert shown["acknowledged_open"] == n - 1 and shown["signed_off"]["item_id"] is None
    entry = docket.audit.get(shown["signed_off"]["audit_seq"])
    assert entry.event_type == "sign_off" and entry.actor == ACTOR
    acknowledged = entry.payload["acknowledged_open"]
    assert acknowledged["count"] == n - 1 and acknowledged["by"] == ACTOR
    assert sorted((i["item_id"], i["document"]) for i in acknowledged["items"]) == open_cells[1:]
    assert {i["why"] for i in acknowledged["items"]} == {"needs human review"}
    assert entry.payload["note"] == "accepted, open ones to the deal team"  # the note is the reviewer's own words


def test_a_review_without_open_cells_is_accepted_without_an_acknowledgement(reviewed) -> None:
    docket, review, app = reviewed
    cli = CliRunner()
    for item, name in _needing_a_person(docket, review.id):
        done = cli.invoke(app, ["review", "sign-off", review.id, "--item", item, "--doc", name, "--decision", "accept",
                                "--note", "checked"])
        assert done.exit_code == 0, done.output
    needless = cli.invoke(app, ["review", "sign-off", review.id, "--decision", "accept", "--note", "x", "--acknowledge-open", "2"])
    assert needless.exit_code == 2 and "none is open now" in " ".join(needless.output.split())
    accepted = cli.invoke(app, ["review", "sign-off", review.id, "--decision", "accept", "--note", "all checked", "--json"])
    assert accepted.exit_code == 0, accepted.output
    entry = docket.audit.get(json.loads(accepted.output)["signed_off"]["audit_seq"])
    assert "acknowledged_open" not in entry.payload


def _text(html: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def test_the_html_report_opens_with_the_executive_summary(reviewed) -> None:
    docket, review, app = reviewed
    cli = CliRunner()
    open_cells = _needing_a_person(docket, review.id)
    before = render(_load(docket, review.id), "html")
    text = _text(before)
    assert text.index("Executive summary") < text.index("Findings by document") < text.index("The grid")
    assert f"{len(open_cells)} open items" in text and "Not signed off" in text
    # The severity x verdict table: the high row counts the termination cells, the medium row the law cells.
    counts = re.search(r"<caption>Cells by severity.*?</table>", before, re.S).group(0)
    rows = {m.group(1): [int(x) for x in re.findall(r'<td class="num">(\d+)</td>', m.group(2))]
            for m in re.finditer(r'<tr><th scope="row">(\w+)</th>(.*?)</tr>', counts)}
    assert rows["high"][-1] == rows["medium"][-1] == 3 and rows["all"][-1] == 6
    assert rows["high"][3] == len(open_cells)  # the "needs human review" column
    assert rows["medium"][1] == 1  # DUOS: Florida law, the one non-compliant cell
    # Findings per document: each with its quotes and pages.
    assert text.count("SHA-256") == 3 and "laws of the State of Florida" in text
    assert re.search(r'<div class="citation" data-page="\d+">\[S\d+\] page \d+<blockquote class="quote">', before)
    assert "@media print" in before and "break-inside:avoid" in before

    cli.invoke(app, ["review", "sign-off", review.id, "--decision", "accept", "--note", "handed to the partner",
                     "--acknowledge-open", str(len(open_cells))])
    after = _text(render(_load(docket, review.id), "html"))
    summary = after[after.index("Executive summary"):after.index("Findings by document")]
    assert f"signed off by {ACTOR}" in summary and "handed to the partner" in summary
    markdown = render(_load(docket, review.id), "md")
    assert "## Executive summary" in markdown and f"**{len(open_cells)} open items**" in markdown
