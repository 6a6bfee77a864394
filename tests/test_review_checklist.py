"""Checklists: the shipped ones load, bad ones fail with one line naming line and field."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from conftest import shared_eval_or_skip
from pipeline.review.checklist import ChecklistError, load_checklist, parse_checklist
from pipeline.review.verdicts import parse_verdict

GOOD = """\
name: tiny
title: Tiny
items:
  - id: governing-law
    title: Governing law
    question: Which state's law governs the agreement?
    requirement: New York law governs.
    severity: high
  - id: notice
    title: Notice
    question: What notice is needed to terminate?
    requirement: At least 60 days' notice.
"""


def _error(text: str) -> str:
    with pytest.raises(ChecklistError) as caught:
        parse_checklist(text, "bad.yaml")
    message = str(caught.value)
    assert "\n" not in message and message.startswith("checklist bad.yaml line ")
    return message


def test_a_good_checklist_loads_with_defaults() -> None:
    checklist = parse_checklist(GOOD)
    assert [i.id for i in checklist.items] == ["governing-law", "notice"]
    assert checklist.item("notice").severity == "medium"
    assert checklist.item("notice").applies_to.matches("ANY.pdf", "any")


def test_bad_severity_names_its_line_and_field() -> None:
    message = _error(GOOD.replace("severity: high", "severity: hgh"))
    assert "line 8, field 'items[0].severity'" in message
    assert "'low', 'medium', 'high' or 'critical'" in message


def test_missing_field_points_at_the_item_that_lacks_it() -> None:
    message = _error(GOOD.replace("    requirement: At least 60 days' notice.\n", ""))
    assert "line 9, field 'items[1].requirement'" in message and "add it" in message


def test_unknown_field_is_named_with_its_line() -> None:
    message = _error(GOOD.replace("    severity: high\n", "    severity: high\n    severty: low\n"))
    assert "line 9, field 'items[0].severty'" in message and "spelling" in message


def test_duplicate_item_id_names_the_second_one() -> None:
    message = _error(GOOD.replace("id: notice", "id: governing-law"))
    assert "line 9, field 'items[1].id'" in message and "duplicate item id 'governing-law'" in message


def test_bad_id_and_bad_yaml_and_wrong_shape() -> None:
    assert "line 4, field 'items[0].id'" in _error(GOOD.replace("id: governing-law", "id: Governing Law"))
    assert "line 2: not valid YAML (mapping values are not allowed here)" in _error("name: x\ntitle: y: z\nitems: []\n")
    assert "line 1" in _error("- just\n- a list\n")
    assert "field 'items'" in _error("name: x\ntitle: y\nitems: []\n")


def test_applies_to_selects_documents_by_name_and_collection() -> None:
    text = GOOD + "    applies_to: {names: ['*license*'], collections: [legal]}\n"
    item = parse_checklist(text).item("notice")
    assert item.applies_to.matches("ACME_SOFTWARE_LICENSE.pdf", "legal")
    assert not item.applies_to.matches("ACME_SOFTWARE_LICENSE.pdf", "other")
    assert not item.applies_to.matches("NETGEAR_DISTRIBUTOR_AGREEMENT.pdf", "legal")


def test_shipped_checklists_load_by_name(tmp_path: Path) -> None:
    contract = load_checklist("commercial-contract")
    filing = load_checklist("10k-filing")
    assert len(contract.items) >= 15 and len(filing.items) >= 10
    assert all(i.applies_to.matches("PEPSICO_2022_10K.pdf", "x") for i in filing.items)
    assert not any(i.applies_to.matches("NETGEAR_DISTRIBUTOR_AGREEMENT.pdf", "x") for i in filing.items)
    with pytest.raises(ChecklistError, match="no such file and no shipped checklist"):
        load_checklist(tmp_path / "nope.yaml")


def test_contract_checklist_is_built_from_cuad_categories() -> None:
    descriptions = shared_eval_or_skip() / "cuad" / "category_descriptions.csv"
    with descriptions.open(encoding="utf-8-sig") as fh:
        categories = {row[0].removeprefix("Category: ").strip().casefold() for row in csv.reader(fh)}
    renamed = {"post-termination obligations": "post-termination services"}
    titles = [renamed.get(i.title.casefold(), i.title.casefold()) for i in load_checklist("commercial-contract").items]
    assert [t for t in titles if t not in categories] == []


@pytest.mark.parametrize(
    ("answer", "verdict"),
    [
        ("Governed by California law [S1].\nVERDICT: non-compliant", "non-compliant"),
        ("It is [S1].\n**Verdict:** Compliant.", "compliant"),
        ("Nothing on this [S1].\nVERDICT: not addressed", "not-addressed"),
        ("VERDICT: compliant\nLater I changed my mind [S1].\nVERDICT: non compliant", "non-compliant"),
        ("Governed by California law [S1].", None),
        ("Governed by California law [S1].\nVERDICT: probably fine", None),
    ],
)
def test_parse_verdict(answer: str, verdict: str | None) -> None:
    parsed, rationale = parse_verdict(answer)
    assert parsed == verdict
    assert "[S1]" in rationale and "probably" not in rationale.replace("VERDICT: probably fine", "")


def test_citations_keep_quotes_inside_quoted_passages() -> None:
    from pipeline.reasoning import Evidence
    from pipeline.review.verdicts import cell_citations

    sources = [Evidence(f"S{n}", n, n, "sha", "doc.pdf", n + 2, 0, 9, f"source {n} text", 0.5, "pymupdf") for n in (1, 2)]
    quoted = cell_citations('"the term (the “Initial Term”) renews yearly" [S2]\nAlso relevant [S1].', sources)
    assert [(c.label, c.page, c.quote, c.quoted) for c in quoted] == [
        ("S2", 4, "the term (the “Initial Term”) renews yearly", True),
        ("S1", 3, "source 1 text", False),  # cited without a quote: the passage's own text stands in
    ]


def test_validate_reports_the_checklist_as_json_and_names_a_bad_line(tmp_path: Path) -> None:
    import json

    from typer.testing import CliRunner

    from pipeline.cli import app

    good, bad = tmp_path / "good.yaml", tmp_path / "bad.yaml"
    good.write_text(GOOD)
    bad.write_text(GOOD.replace("severity: high", "severity: urgent"))
    runner = CliRunner()
    shown = runner.invoke(app, ["--home", str(tmp_path / "home"), "review", "validate", str(good), "--json"])
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.output) == {"valid": True, "name": "tiny", "title": "Tiny", "version": "1",
                                        "items": ["governing-law", "notice"]}
    refused = runner.invoke(app, ["--home", str(tmp_path / "home"), "review", "validate", str(bad), "--json"])
    assert refused.exit_code == 2 and "severity" in refused.output
