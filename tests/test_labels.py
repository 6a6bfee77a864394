"""Each grounding label on real pages: citations valid, quotes found on the cited pages, numbers found,
and, on its own, whether the answer addresses the question. A footer or a certification that is
quoted verbatim is not shown as answering the question.

Pages are the sample CUAD contracts in samples/ (real PDFs, read with PyMuPDF as ingest reads them)
and, when ../shared/eval is present, 3M's 2018 10-K from FinanceBench."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import pymupdf
import pytest

from conftest import DRIVEN, NETGEAR, SAMPLES, SHARED_EVAL
from pipeline.answer_kinds import answer_kind, check_kind
from pipeline.grounding import check_grounding
from pipeline.reasoning import Evidence

NOTICE_Q = "How much notice ends the consulting agreement without cause?"
LAW_Q = "Which state's law governs the agreement?"
PARTIES_Q = "In the CONSULTING AGREEMENT (DrivenDeliveries): Who are the parties that signed this contract?"
DATE_Q = "In the CONSULTING AGREEMENT (DrivenDeliveries): What is the date of this contract?"
TERMINATION_Q = "Can a party terminate this contract without cause (solely by giving a notice and allowing a waiting period to expire)?"
CAPEX_Q = ("What is the FY2018 capital expenditure amount (in USD millions) for 3M? Give a response to the question "
           "by relying on the details shown in the cash flow statement.")
FOOTER = "Consulting Agreement Page 1 of 7"  # the running footer of every page of the consulting agreement


@lru_cache
def page_text(pdf: Path, page: int) -> str:
    with pymupdf.open(pdf) as doc:
        return doc[page - 1].get_text()


def page(pdf: Path, number: int, label: str = "S1") -> Evidence:
    text = page_text(pdf, number)
    return Evidence(label, int(label[1:]), number, "d" * 64, pdf.name, number, 0, len(text), text, 0.7, "pymupdf")


def driven(number: int, label: str = "S1") -> Evidence:
    return page(SAMPLES / DRIVEN, number, label)


def test_the_question_rules_name_the_kind_asked_for():
    assert [answer_kind(q) for q in (NOTICE_Q, LAW_Q, PARTIES_Q, DATE_Q, TERMINATION_Q, CAPEX_Q)] == [
        "duration", "jurisdiction", "party", "date", "yes_no_clause", "amount",
    ]
    assert answer_kind("List the products covered by the agreement.") == "list"
    assert answer_kind("Tell me about the weather.") == "unspecified"


def test_a_verbatim_footer_is_not_shown_as_answering():
    assert FOOTER in " ".join(page_text(SAMPLES / DRIVEN, 1).split())
    report = check_grounding(f'"{FOOTER}" [S1]', [driven(1)], question=NOTICE_Q)
    assert report.checks == {"citations": "valid", "quotes": "found", "numbers": "none stated", "addresses_question": "no"}
    assert report.verdict == "not_answering" and not report.supported
    assert report.label == "not supported: citations valid, quotes found on the cited pages, but it does not state a duration"
    # The same footer for a governing-law question.
    law = check_grounding(f'"{FOOTER}" [S1]', [driven(1)], question=LAW_Q)
    assert law.label.endswith("but it does not state a governing law or jurisdiction") and not law.supported


def test_the_clause_that_answers_is_supported_on_every_check():
    answer = ('"Either Party may terminate this Agreement, with or without cause, upon giving the other party '
              'thirty (30) days prior written notice" [S1]. The notice is 30 days [S1].')
    report = check_grounding(answer, [driven(5)], question=NOTICE_Q)
    assert report.checks == {"citations": "valid", "quotes": "found", "numbers": "found", "addresses_question": "yes"}
    assert report.supported and report.verdict == "grounded"
    assert report.label.startswith("supported: citations valid, quotes found on the cited pages, numbers found, states a duration")
    assert report.to_dict()["label"] == report.label and report.to_dict()["supported"] is True


@pytest.mark.parametrize(
    ("question", "pdf", "number", "quote", "kind"),
    [
        (LAW_Q, SAMPLES / DRIVEN, 6, "This Agreement shall be governed by the laws of the State of California", "jurisdiction"),
        (LAW_Q, SAMPLES / NETGEAR, 8, "governed by the laws of the State of California", "jurisdiction"),
        (PARTIES_Q, SAMPLES / DRIVEN, 1, "by and between Driven Deliveries, Inc. (“Company”), a Nevada corporation, and TruckThat LLC", "party"),
        (DATE_Q, SAMPLES / DRIVEN, 1, "is made and entered into as of May 1, 2019", "date"),
        (TERMINATION_Q, SAMPLES / DRIVEN, 5, "Either Party may terminate this Agreement, with or without cause", "yes_no_clause"),
    ],
    ids=["law-driven", "law-netgear", "parties", "date", "termination-clause"],
)
def test_each_kind_is_found_in_the_clause_that_answers_and_not_in_the_footer(question, pdf, number, quote, kind):
    evidence = [page(pdf, number)]
    good = check_grounding(f'"{quote}" [S1]', evidence, question=question)
    assert good.kind.kind == kind and good.checks["quotes"] == "found"
    assert good.supported, good.label
    footer = check_grounding(f'"{FOOTER}" [S1]', [driven(1)], question=question)
    assert footer.checks["addresses_question"] == "no" and not footer.supported, footer.label


def test_a_quote_that_is_not_on_its_cited_page_is_caught():
    # The termination clause is on page 5; citing page 1 for it fails the quote check, whatever the kind.
    clause = "Either Party may terminate this Agreement, with or without cause, upon giving the other party thirty (30) days"
    report = check_grounding(f'"{clause}" [S1]', [driven(1, "S1"), driven(5, "S2")], question=NOTICE_Q)
    assert report.checks["quotes"] == "not found" and report.checks["addresses_question"] == "yes"
    assert not report.supported and report.label.endswith("but a quote is not on the cited page")
    assert check_grounding(f'"{clause}" [S2]', [driven(1, "S1"), driven(5, "S2")], question=NOTICE_Q).supported


def test_an_invented_number_is_caught_even_when_the_kind_is_right():
    report = check_grounding("Either party may terminate on 45 days notice [S1].", [driven(5)], question=NOTICE_Q)
    assert report.checks["numbers"] == "not found" and report.checks["addresses_question"] == "yes"
    assert report.label == "not supported: citations valid, states a duration, but a number or date is not in the cited sources"
    assert report.kind.found == "45 days"


def test_a_label_never_sent_makes_citations_invalid():
    report = check_grounding("Either party may terminate on thirty (30) days notice [S4].", [driven(5)], question=NOTICE_Q)
    assert report.checks["citations"] == "invalid" and not report.supported


def test_without_a_question_the_kind_is_not_checked_and_the_label_says_so():
    report = check_grounding(f'"{FOOTER}" [S1]', [driven(1)])
    assert report.checks["addresses_question"] == "not checked" and report.verdict == "grounded"
    assert report.label.endswith("whether it answers the question was not checked")


def _filing_or_skip() -> Path:
    pdf = SHARED_EVAL / "financebench" / "pdfs" / "3M_2018_10K.pdf"
    if not pdf.is_file():
        pytest.skip(f"FinanceBench filing not found at {pdf} (../shared/eval is beside the repo)")
    return pdf


def _find_page(pdf: Path, needle: str) -> int:
    with pymupdf.open(pdf) as doc:
        return next(i + 1 for i in range(len(doc)) if needle in doc[i].get_text())


def test_a_filings_certification_is_not_an_amount_and_its_cash_flow_row_is():
    pdf = _filing_or_skip()
    certification = page(pdf, _find_page(pdf, "I have reviewed this annual report"))
    quoted = "I have reviewed this annual report on Form 10-K of 3M Company"
    report = check_grounding(f'"{quoted}" [S1]', [certification], question=CAPEX_Q)
    assert report.checks["quotes"] == "found" and report.checks["addresses_question"] == "no"
    assert not report.supported and report.label.endswith("but it does not state an amount")

    cash_flow = page(pdf, _find_page(pdf, "Purchases of property, plant and equipment (PP&E)"))
    row = check_grounding("Capital expenditure (purchases of PP&E) in 2018 was $1,577 million [S1].", [cash_flow], question=CAPEX_Q)
    assert row.supported, row.label
    assert check_kind(CAPEX_Q, "Purchases of property, plant and equipment (PP&E) $ (1,577)").addresses
