"""Verdicts decided by a checklist rule on the value the offline answerer extracted: compliant or
non-compliant with the value and its quote, labelled as the rule's; a bad rule names file, line, field."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from conftest import DRIVEN, DUOS, NETGEAR
from pipeline.app import Docket
from pipeline.review import Checklist, run_review
from pipeline.review.checklist import ChecklistError, load_checklist, parse_checklist
from pipeline.review.verdicts import duration_days

GOOD = """name: rules
title: Rules
items:
  - id: governing-law
    title: Governing law
    question: Which state's law governs the agreement?
    requirement: Governed by Florida law.
    rule: {kind: jurisdiction_in, allowed: [Florida]}
  - id: renewal-notice
    title: Notice period to terminate renewal
    question: What notice period is required to terminate renewal?
    requirement: At least 60 days' notice.
    rule:
      kind: min_duration_days
      value: 60
"""


def test_a_bad_rule_names_file_line_and_field(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(GOOD.replace("value: 60", "value: -5"))
    with pytest.raises(ChecklistError) as caught:
        load_checklist(bad)
    assert f"checklist {bad} line 15, field 'items[1].rule.value'" in str(caught.value)
    with pytest.raises(ChecklistError, match=r"line 8, field 'items\[0\]\.rule\.kind'.*use one of"):
        parse_checklist(GOOD.replace("jurisdiction_in", "jurisdiction"), "x.yaml")
    with pytest.raises(ChecklistError, match=r"line 8, field 'items\[0\]\.rule\.allowed'"):
        parse_checklist(GOOD.replace("allowed: [Florida]", "allowed: []"), "x.yaml")
    with pytest.raises(ChecklistError, match=r"field 'items\[0\]\.rule\.value': a jurisdiction_in rule takes no value"):
        parse_checklist(GOOD.replace("allowed: [Florida]", "allowed: [Florida], value: 3"), "x.yaml")
    # The shipped checklists load, and the contract one carries rules.
    assert sum(i.rule is not None for i in load_checklist("commercial-contract").items) >= 10
    load_checklist("10k-filing")


def test_duration_days_reads_words_and_numbers() -> None:
    assert duration_days("thirty (30) days' prior written notice") == 30
    assert duration_days("ninety (90) days") == 90
    assert duration_days("one (1) year") == 365
    assert duration_days("sixty days") == 60
    assert duration_days("until terminated") is None


def test_rules_decide_cells_on_the_extracted_value(ingested_samples: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    shutil.copytree(ingested_samples, home)
    with pytest.MonkeyPatch.context() as env:
        for var in [v for v in os.environ if v.startswith("DOCKET_") or v == "MISTRAL_API_KEY"]:
            env.delenv(var)
        from pipeline.settings import load_settings

        docket = Docket(load_settings(home=home, actor="test-analyst"))
        review = run_review(docket, parse_checklist(GOOD, "rules.yaml"), collection="samples").review

    def cell(item: str, name: str):
        sha = next(d.sha256 for d in review.documents if d.name == name)
        return review.cells[(item, sha)]

    duos, netgear = cell("governing-law", DUOS), cell("governing-law", NETGEAR)
    assert duos.verdict == "compliant" and netgear.verdict == "non-compliant"
    for law, state in ((duos, "Florida"), (netgear, "California")):
        basis = law.finding.basis
        assert "decided by the rule 'jurisdiction_in'" in basis and "not by a model" in basis
        assert f"State of {state}" in basis and f"laws of the State of {state}" in basis  # value and quote
    notice = cell("renewal-notice", DUOS)  # ninety (90) days >= 60
    assert notice.verdict == "compliant" and "ninety (90) days" in notice.finding.basis
    assert cell("governing-law", DRIVEN).verdict == "non-compliant"
