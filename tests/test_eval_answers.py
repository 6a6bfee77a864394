"""The answer measures of `docket eval --answers` / `--review` (issue 17 "Measured"), on small cases
made by hand: quotes from the sample CUAD contracts, made-up filing numbers (no FinanceBench text)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from conftest import shared_eval_or_skip
from pipeline.answer_eval import (
    AnswerOutcome,
    GoldClause,
    best_overlap,
    char_overlap,
    expected_verdict,
    first_quote,
    gold_number,
    number_in_answer,
    summarise_answers,
    summarise_review,
    CellOutcome,
)
from pipeline.evaluation import EvalError, EvalQuestion, questions_of_part
from pipeline.review.checklist import load_checklist

LAW = "This Agreement shall be governed by and construed in accordance with the laws of the State of California"
ANSWER = f'the State of California [S1]\n"{LAW}, without regard to its conflict of laws rules." [S1]\n"Other text." [S2]'


def test_the_first_quote_is_the_first_cited_passage_not_the_value_line():
    assert first_quote(ANSWER) == f"{LAW}, without regard to its conflict of laws rules."
    # A quote that holds a defined term in quotes is one passage.
    nested = '"2. “Term.” The term of this Agreement is one year." [S3]'
    assert first_quote(nested) == "2. “Term.” The term of this Agreement is one year."
    assert first_quote("California [S1]") is None  # nothing quoted


def test_overlap_is_a_share_of_the_shorter_ones_characters_across_pdf_spacing():
    gold = LAW + "."
    assert char_overlap(gold, "this agreement shall be GOVERNED by and construed in\naccordance with the laws of the State of California") == 1.0
    # The quote holds the whole gold clause and more: the shorter (the gold) is covered.
    assert char_overlap(gold, "Section 12. " + gold + " Each party submits to the courts of San Diego.") == 1.0
    # Half a clause: the other half is a different sentence.
    half = "This Agreement shall be governed by and construed in accordance with the laws of the State of Texas. Notices shall be in writing."
    share = char_overlap(gold, half)
    assert 0.5 < share < 1.0
    # Two common words apart are chance, not overlap.
    assert char_overlap(gold, "The State shall pay.") == 0.0
    assert char_overlap("", gold) == 0.0


def test_best_overlap_takes_the_best_gold_clause_and_none_without_a_quote():
    golds = ["Distributor may not cancel or reschedule any order.", LAW]
    assert best_overlap(ANSWER, golds) == 1.0
    assert best_overlap("the State of California [S1]", golds) is None


@pytest.mark.parametrize(("gold", "question", "answer", "found"), [
    ("$2345.00", "What is the FY2020 capex (in USD millions)?", 'capital expenditure (2,345) [S1]', True),
    ("$2345.00", "What is the FY2020 capex (in USD millions)?", "$2,345 million [S2]", True),
    ("$2345.00", "What is the FY2020 capex (in USD millions)?", "$2.345 billion [S2]", True),
    ("$2345.00", "What is the FY2020 capex (in USD millions)?", "$2.3 billion [S2]", False),  # coarser than the gold
    ("$2345.00", "What is the FY2020 capex (in USD millions)?", "2,354 [S1]", False),
    ("12.34", "What is the ratio?", "computed by Docket: 12.3412 = 4,321 / 350.14", True),  # rounded as the gold is
    ("12.34", "What is the ratio?", "12.3 [S1]", False),
    ("12.34", "What is the ratio?", "12,340 [S1]", False),  # both bare: no shift by thousands
    ("-3.5%", "What is the change?", "a decrease of 3.5% [S1]", True),  # sign normalised
    ("3.5%", "What is the growth?", "0.035 [S1]", True),  # a ratio for a percentage
    ("3.5%", "What is the growth?", "3.5 million [S1]", False),
    ("$6.10", "What is the EPS?", "$6.10 per share [S4]", True),
])
def test_the_gold_number_is_found_normalised_for_units_sign_and_rounding(gold, question, answer, found):
    number = gold_number(gold, question)
    assert number is not None
    assert number_in_answer(number, answer) is found


def test_only_a_gold_that_is_a_number_is_numeric():
    assert gold_number("$1,234.5 million").value == 1234.5
    assert gold_number("$1,234.5 million").unit == 1e6
    assert gold_number("0.45").decimals == 2
    assert gold_number("Yes, the margin fell by 1.1%.") is None
    assert gold_number("The company grew 3% in 2020.") is None


def _outcome(i, category, answerable, status, correct=None):
    return AnswerOutcome(f"q{i}", "cuad", category, "unspecified", answerable, status, correct=correct,
                         overlap=1.0 if correct else None)


def test_refusal_precision_recall_and_per_category_accuracy():
    outcomes = [
        _outcome(1, "Governing Law", True, "answered", True),
        _outcome(2, "Governing Law", True, "answered", False),
        _outcome(3, "Governing Law", False, "refused"),
        _outcome(4, "Insurance", True, "refused", False),
        _outcome(5, "Insurance", False, "answered"),
        _outcome(6, "Insurance", False, "refused"),
        _outcome(7, "Insurance", False, "withheld"),  # neither an answer nor a refusal
    ]
    report = summarise_answers("extractive", outcomes)
    assert (report.answered, report.refused, report.withheld, report.unanswerable) == (3, 3, 1, 4)
    assert report.refusal_precision == pytest.approx(2 / 3)  # q4 was answerable
    assert report.refusal_recall == pytest.approx(2 / 4)
    assert (report.quote_correct, report.quote_questions) == (1, 3)
    law, insurance = report.per_category
    assert (law["category"], law["correct"], law["answerable"], law["accuracy"]) == ("Governing Law", 1, 2, 0.5)
    assert (insurance["refused_answerable"], insurance["refused_unanswerable"], insurance["withheld"]) == (1, 1, 1)


def test_expected_verdicts_follow_each_rule_on_the_cuad_annotation():
    items = {i.id: i for i in load_checklist("commercial-contract").items}
    absent = GoldClause(False, "", ())
    assert expected_verdict(items["insurance"], absent) == "non-compliant"  # clause_present
    assert expected_verdict(items["non-compete"], absent) == "compliant"  # clause_absent
    assert expected_verdict(items["governing-law"], absent) == "not-addressed"
    assert expected_verdict(items["expiration-date"], absent) == "not-addressed"  # no rule
    assert expected_verdict(items["governing-law"], GoldClause(True, "California", (LAW,))) == "non-compliant"
    assert expected_verdict(items["governing-law"], GoldClause(True, "Delaware", ())) == "compliant"
    assert expected_verdict(items["renewal-term"], GoldClause(True, "successive 1 year", ())) == "compliant"
    assert expected_verdict(items["renewal-term"], GoldClause(True, "2 years", ())) == "non-compliant"
    # CUAD's column says only "Yes": the days are read from the gold clause.
    notice = "Either party may terminate this Agreement upon thirty (30) days' prior written notice."
    assert expected_verdict(items["termination-for-convenience"], GoldClause(True, "Yes", (notice,))) == "non-compliant"
    assert expected_verdict(items["termination-for-convenience"], GoldClause(True, "Yes", ("At any time.",))) is None
    assert expected_verdict(items["expiration-date"], GoldClause(True, "12/31/2020", ())) is None  # a person judges


def test_review_coverage_counts_needs_review_as_undecided():
    items = load_checklist("commercial-contract").items
    cells = [
        CellOutcome("insurance", "a.pdf", "compliant", "", "present", "compliant", True),
        CellOutcome("insurance", "b.pdf", "non-compliant", "", "present", "compliant", False),
        CellOutcome("governing-law", "a.pdf", "needs-review", "", "present", "non-compliant", None),
        CellOutcome("governing-law", "b.pdf", "not-addressed", "", None, None, None),  # no annotation
    ]
    report = summarise_review("commercial-contract", items, cells)
    assert (report.cells, report.decided, report.with_gold, report.agree) == (4, 3, 2, 1)
    assert report.coverage == 0.75 and report.agreement == 0.5
    assert {i["item"]: i["decided"] for i in report.per_item} == {"governing-law": 1, "insurance": 2}


def test_a_part_holds_whole_documents():
    qs = [EvalQuestion(id=f"{d}{n}", question="?", doc_id=d, pdf_path=f"{d}.pdf") for d in "abcde" for n in range(2)]
    one, two = questions_of_part(qs, "1/2"), questions_of_part(qs, "2/2")
    assert {q.pdf_path for q in one} == {"a.pdf", "c.pdf", "e.pdf"} and {q.pdf_path for q in two} == {"b.pdf", "d.pdf"}
    with pytest.raises(EvalError, match="K/N"):
        questions_of_part(qs, "3/2")


# -- the real thing on a few questions -------------------------------------------------------------


def _app() -> typer.Typer:
    from pipeline.cli.eval import eval_command

    app = typer.Typer()
    app.command()(eval_command)
    return app


@pytest.mark.shared_eval
def test_answers_and_review_on_one_cuad_contract(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    shared = shared_eval_or_skip()
    for var in ("DOCKET_REASONER", "DOCKET_HOME"):
        monkeypatch.delenv(var, raising=False)
    rows = [json.loads(line) for line in (shared / "cuad" / "questions.jsonl").read_text().splitlines() if line.strip()]
    contract = rows[0]["doc_id"]
    mine = [r for r in rows if r["doc_id"] == contract]
    assert any(not r["answerable"] for r in mine) and any(r["answerable"] for r in mine)
    questions = tmp_path / "cuad" / "few.jsonl"
    questions.parent.mkdir()
    questions.write_text("\n".join(json.dumps(r) for r in mine) + "\n")
    result = CliRunner().invoke(_app(), [
        str(questions), "--root", str(shared), "--workspace", str(tmp_path / "ws"), "--answers",
        "--review", "commercial-contract", "--no-retrieval", "--json",
    ])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout[result.stdout.index("{"):])
    answers = report["answers"]
    assert answers["questions"] == len(mine) and answers["reasoner"] == "extractive"
    assert answers["answered"] + answers["withheld"] + answers["refused"] + answers["errors"] == len(mine)
    assert answers["quote_questions"] == sum(r["answerable"] for r in mine)
    assert {c["category"] for c in answers["per_category"]} == {r["meta"]["cuad_category"] for r in mine}
    # Each outcome's correctness is its own overlap against the threshold, as the summary counts it.
    for o in answers["per_question"]:
        if o["answerable"]:
            assert o["correct"] == (o["status"] == "answered" and o["overlap"] is not None and o["overlap"] >= 0.5)
    assert answers["quote_correct"] == sum(bool(o["correct"]) for o in answers["per_question"])
    review = report["review"]
    assert review["cells"] == len(review["per_cell"]) >= 19  # every item applies to a licence agreement
    assert review["decided"] == sum(c["verdict"] != "needs-review" for c in review["per_cell"])
    graded = [c for c in review["per_cell"] if c["agrees"] is not None]
    assert review["with_gold"] == len(graded) and all(c["gold"] is not None for c in graded)
