"""Numeric answers read from statement tables (issue 17): the row of the line item asked, the column of
the period asked, the table's units, the cell cited; what the question asks to compute is computed
from cited cells, shown as a formula and labelled as computed by Docket.

The filing is drawn here with PyMuPDF (three statements, two years, "(in millions)"), ingested through
the real store (SQLite, the packaged encoder, FAISS), asked through ``pipeline.ask`` with the offline
answerer, and grounded by the real check: every figure in an answer is found in its cited source and
matched to its cell, whose box is read back from the PDF. Expected values are computed here from the
figures drawn, never written out.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import pymupdf
import pytest

from conftest import shared_eval_or_skip
from pipeline.answer_eval import gold_number, number_in_answer
from pipeline.ask import AskOptions, ask
from pipeline.grounding import check_grounding
from pipeline.table_answers import table_answer, table_views, word_score
from pipeline.financial_terms import ITEMS, asked_years

YEARS = ("2023", "2022")
INCOME = [
    ("Net sales", "12,500", "10,000"),
    ("Cost of sales", "7,500", "6,200"),
    ("Gross profit", "5,000", "3,800"),
    ("Selling, general and administrative", "2,100", "1,900"),
    ("Operating income", "2,900", "1,900"),
    ("Interest expense", "150", "140"),
    ("Income before income taxes", "2,750", "1,760"),
    ("Provision for income taxes", "550", "352"),
    ("Net income", "2,200", "1,408"),
]
BALANCE = [
    ("Current assets:", None, None),
    ("Cash and cash equivalents", "1,500", "1,200"),
    ("Accounts receivable, net", "2,310", "2,045"),
    ("Inventories", "3,456", "3,120"),
    ("Total current assets", "7,266", "6,365"),
    ("Property and equipment, net", "2,876", "2,835"),
    ("Total assets", "10,142", "9,200"),
    ("Accounts payable", "1,987", "1,754"),
    ("Total current liabilities", "2,599", "2,342"),
    ("Long-term debt", "3,210", "3,300"),
    ("Total shareholders' equity", "4,333", "3,558"),
]
CASH_FLOWS = [
    ("Operating activities:", None, None),
    ("Net income", "2,200", "1,408"),
    ("Depreciation and amortization", "410", "390"),
    ("Inventories", "(336)", "(120)"),
    ("Net cash provided by operating activities", "2,274", "1,678"),
    ("Investing activities:", None, None),
    ("Purchases of property and equipment", "(1,234)", "(1,050)"),
    ("Net cash used in investing activities", "(1,234)", "(1,050)"),
]
STATEMENTS = (
    ("Consolidated Statements of Operations", "Years ended December 31,", INCOME),
    ("Consolidated Balance Sheets", "December 31,", BALANCE),
    ("Consolidated Statements of Cash Flows", "Years ended December 31,", CASH_FLOWS),
)
COLUMNS = (430.0, 530.0)


def figure(rows, label: str, year: str) -> Decimal:
    """A drawn figure as a number (sign dropped: a formula takes an outflow's size)."""
    current, prior = next((c, p) for lab, c, p in rows if lab == label)
    text = current if year == YEARS[0] else prior
    return Decimal(text.strip("()").replace(",", ""))


def rounded(value: Decimal, decimals: int) -> str:
    return f"{value.quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_UP):,.{decimals}f}"


def _right(page, x1: float, y: float, text: str) -> None:
    page.insert_text((x1 - pymupdf.get_text_length(text, fontsize=9), y), text, fontsize=9)


@pytest.fixture(scope="module")
def filing(tmp_path_factory) -> Path:
    doc = pymupdf.open()
    prose = doc.new_page(width=612, height=792)
    prose.insert_textbox(pymupdf.Rect(50, 60, 560, 700), (
        "Management's discussion. Example Holdings designs and sells industrial sensors. Sales grew in 2023 on "
        "higher volumes in every region, and the company kept investing in its plants and in research. "
        "The company expects demand to remain steady and continues to review its supply chain."), fontsize=10)
    for title, period, rows in STATEMENTS:
        page = doc.new_page(width=612, height=792)
        page.insert_text((50, 60), "Example Holdings Inc. and Subsidiaries", fontsize=11)
        page.insert_text((50, 76), title, fontsize=11)
        page.insert_text((50, 100), "(in millions)", fontsize=9)
        _right(page, 505, 100, period)
        for x1, year in zip(COLUMNS, YEARS):
            _right(page, x1, 114, year)
        y = 132
        for label, current, prior in rows:
            page.insert_text((50 if current is None else 60, y), label, fontsize=9)
            for x1, value in zip(COLUMNS, (current, prior)):
                if value is not None:
                    _right(page, x1, y, value)
            y += 14
    path = tmp_path_factory.mktemp("filing") / "example_10k.pdf"
    doc.save(path)
    return path


@pytest.fixture
def filed(docket, filing: Path):
    report = docket.store.ingest([filing], "filings")
    assert report.summary()["failed"] == 0
    return docket


def asked(docket, question: str, top_k: int | None = None):
    return ask(docket, question, AskOptions(collection="filings", record=False, top_k=top_k))


def words_in(pdf: Path, page: int, box) -> list[str]:
    with pymupdf.open(pdf) as doc:
        return [w[4] for w in doc[page - 1].get_text("words", clip=pymupdf.Rect(box) + (-1, -1, 1, 1))]


def test_a_line_item_is_read_from_its_row_and_period_column_with_units_and_its_cell_cited(filed, filing: Path):
    record = asked(filed, "What was the FY2023 capital expenditure (in USD millions)? Use the cash flow statement.")
    assert record.status == "answered", record.answer
    capex = figure(CASH_FLOWS, "Purchases of property and equipment", "2023")
    first = record.answer.splitlines()[0]
    assert first.startswith(f"${capex:,} million (Purchases of property and equipment, Years ended December 31, 2023, Consolidated Statements of Cash Flows) [S")
    assert record.grounding.supported and record.grounding.verdict == "grounded"
    cell = next(c for c in record.grounding.cells if c.row_label == "Purchases of property and equipment")
    assert cell.column.endswith("2023") and words_in(filing, cell.page, cell.box) == ["(1,234)"]
    # The prior year's figure is another column: asked for it, the answer is that cell.
    prior = asked(filed, "What was the FY2022 capital expenditure (in USD millions)?")
    assert prior.answer.startswith(f"${figure(CASH_FLOWS, 'Purchases of property and equipment', '2022'):,} million")


def test_growth_is_computed_from_cited_cells_shown_as_a_formula_and_labelled_computed(filed):
    question = "What is the year-over-year revenue growth from FY2022 to FY2023, in percent, rounded to one decimal place?"
    record = asked(filed, question)
    assert record.status == "answered", record.answer
    new, old = figure(INCOME, "Net sales", "2023"), figure(INCOME, "Net sales", "2022")
    growth = rounded((new - old) / old * 100, 1)
    line = record.answer.splitlines()[0]
    assert "computed by Docket from the cited cells (not read from the filing)" in line
    assert f"({new:,} - {old:,}) / {old:,} = {growth}%" in line
    assert record.grounding.supported
    # Each input is its own cited line, and the grounding check found both cells.
    assert {c.row_label for c in record.grounding.cells} == {"Net sales"}
    assert {c.column[-4:] for c in record.grounding.cells} == set(YEARS)


def test_a_ratio_over_two_statements_brings_the_rows_the_search_did_not(filed):
    # With one source retrieved, the margin's other statement row is added by a search for it.
    record = asked(filed, "What is the FY2023 operating margin? Round to one decimal place.", top_k=1)
    assert record.status == "answered", record.answer
    margin = figure(INCOME, "Operating income", "2023") / figure(INCOME, "Net sales", "2023") * 100
    assert f"= {rounded(margin, 1)}%" in record.answer.splitlines()[0]
    assert record.grounding.supported
    # Days payable outstanding: averages and the 365 of its definition, inputs from two statements.
    dpo = asked(filed, "What is the FY2023 days payable outstanding (DPO)? Round to two decimal places.", top_k=1)
    assert dpo.status == "answered", dpo.answer
    payable = (figure(BALANCE, "Accounts payable", "2023") + figure(BALANCE, "Accounts payable", "2022")) / 2
    cogs = figure(INCOME, "Cost of sales", "2023")
    inventory = figure(BALANCE, "Inventories", "2023") - figure(BALANCE, "Inventories", "2022")
    assert f"= {rounded(365 * payable / (cogs + inventory), 2)} [" in dpo.answer.splitlines()[0]
    assert dpo.grounding.supported
    # Inventories were read from the balance sheet (a level), not the cash flow statement's change.
    assert any(c.row_label == "Inventories" and c.cell_text == "3,456" for c in dpo.grounding.cells)


def test_shares_of_revenue_and_averages_over_the_years_named(filed):
    share = asked(filed, "What was SG&A as a percent of net sales in FY2023?")
    assert share.status == "answered" and share.grounding.supported, share.answer
    sga, sales = figure(INCOME, "Selling, general and administrative", "2023"), figure(INCOME, "Net sales", "2023")
    assert f"{sga:,} / {sales:,} = {rounded(sga / sales * 100, 1)}%" in share.answer.splitlines()[0]
    average = asked(filed, "What were the average inventories between FY2022 and FY2023 (in USD millions)?")
    assert average.status == "answered" and average.grounding.supported, average.answer
    mean = (figure(BALANCE, "Inventories", "2022") + figure(BALANCE, "Inventories", "2023")) / 2
    assert f"= {rounded(mean, 0)} million [" in average.answer.splitlines()[0]


def test_the_change_of_a_metric_is_computed_for_both_years_on_one_checkable_line(filed):
    record = asked(filed, "How much has the gross margin changed between FY2022 and FY2023?")
    assert record.status == "answered" and record.grounding.supported, record.answer
    margins = [rounded(figure(INCOME, "Gross profit", y) / figure(INCOME, "Net sales", y) * 100, 1) for y in ("2022", "2023")]
    line = record.answer.splitlines()[0]
    assert f"FY2022: {figure(INCOME, 'Gross profit', '2022'):,} / {figure(INCOME, 'Net sales', '2022'):,} = {margins[0]}%" in line
    change = Decimal(margins[1]) - Decimal(margins[0])
    assert f"an increase of {margins[1]} - {margins[0]} = {change} percentage points" in line


def test_a_computed_figure_that_does_not_follow_from_its_cells_is_caught(filed):
    record = asked(filed, "What is the FY2023 gross margin in percent?")
    assert record.status == "answered", record.answer
    wrong = record.answer.replace("= 40.0%", "= 45.0%")
    assert wrong != record.answer
    report = check_grounding(wrong, record.evidence, question="What is the FY2023 gross margin in percent?")
    assert not report.supported
    assert any(p.kind == "computation_mismatch" for p in report.problems)


def test_questions_that_ask_for_no_figure_are_left_to_the_quoting_answerer(filed):
    record = asked(filed, "What is the FY2023 capital expenditure?")
    evidence = record.evidence
    assert table_views(evidence)
    assert table_answer("Does the company have a supply chain review?", evidence) is None
    assert table_answer("What is the FY2023 number of employees?", evidence) is None  # no such row
    # Naming a figure is not asking for it: reasons, comparisons in words, which one.
    assert table_answer("What drove the change in net sales in FY2023?", evidence) is None
    assert table_answer("For Example Holdings, which segment had the biggest drop in net sales in FY2023?", evidence) is None
    assert table_answer("What was the FY2023 capital expenditure?", evidence) is not None
    # A line item the filing does not print is not read from another row.
    missing = asked(filed, "What was the FY2023 research and development expense?")
    assert table_answer("What was the FY2023 research and development expense?", missing.evidence) is None


def test_row_labels_are_matched_by_their_words_not_by_a_shared_word():
    assert word_score("Total net sales", ITEMS["revenue"]) == 1.0
    assert word_score("Purchases of property, plant and equipment (PP&E)", ITEMS["capex"]) > 0.95
    assert word_score("Net cash provided by (used in) operating activities", ITEMS["cfo"]) == 1.0
    assert word_score("Deferred revenues", ITEMS["revenue"]) < 0.7
    assert word_score("Net income", ITEMS["revenue"]) == 0.0
    assert asked_years("FY2017 - FY2019 average, and FY20") == [2017, 2019, 2020]


def test_the_measure_reads_a_financebench_gold_at_its_own_precision():
    # FinanceBench writes every extracted figure with two decimals: "$8.70" billion is 8,738 million
    # rounded to 8.7, so the answer's 8,738 million is the gold; 8,800 million is not.
    gold = gold_number("$8.70", "What is the FY2018 net PPNE? Answer in USD billions.")
    assert gold.decimals == 1
    assert number_in_answer(gold, "$8,738 million (≈ $8.7 billion) [S1]")
    assert not number_in_answer(gold, "$8,800 million [S1]")
    assert gold_number("$382.00", "How much ... in USD million?").unit == 1e6


@pytest.mark.shared_eval
@pytest.mark.slow
def test_a_real_filing_capital_expenditure_is_read_from_its_cash_flow_statement(docket):
    pdf = shared_eval_or_skip() / "financebench" / "pdfs" / "3M_2018_10K.pdf"
    assert docket.store.ingest([pdf], "filings").summary()["failed"] == 0
    record = asked(docket, "What is the FY2018 capital expenditure amount (in USD millions) for 3M?")
    assert record.status == "answered" and record.grounding.supported, record.answer
    assert record.answer.startswith("$1,577 million (Purchases of property, plant and equipment (PP&E), 2018,")
    cell = next(c for c in record.grounding.cells if c.cell_text == "(1,577)")
    assert cell.page == 60 and words_in(pdf, 60, cell.box) == ["(1,577)"]
