"""What a question about a filing asks for, in the words statements use (issue 17, numeric answers).

A small vocabulary, written from how US filings label their primary statements, not from any one
question set: each ``LineItem`` says how a question names it and how a statement's row labels it
("capital expenditure" ~ "Purchases of property, plant and equipment"; "revenue" ~ "Total net sales");
each ``Metric`` is a textbook formula over line items ("fixed asset turnover" = revenue / average net
PP&E), written in a tiny expression language that ``pipeline.table_formulas`` evaluates on cited cells:
``item`` is the item in the period asked, ``prev(item)`` the period before, ``avg(item)`` their mean,
``delta(item)`` the change from the period before. ``%`` after a formula: the result is a percentage.

Question periods (``asked_years``) are the fiscal years a question names ("FY2018", "fiscal 2022",
"FY20", "2019").
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class LineItem:
    key: str
    name: str  # how an answer names it
    asked: re.Pattern[str]  # how a question names it
    labels: tuple[str, ...]  # how statements label its row, the most specific first
    statement: str  # where it is read: cash_flows, balance_sheet, income (ingest.structure.statement_kind)
    outflow: bool = False  # printed in parentheses as cash paid out; a formula takes its size


def _item(key: str, name: str, asked: str, labels: str, statement: str, outflow: bool = False) -> LineItem:
    return LineItem(key, name, re.compile(asked, re.I), tuple(x.strip() for x in labels.split(";")), statement, outflow)


# Order matters where one name contains another: the more specific item comes first.
LINE_ITEMS: tuple[LineItem, ...] = (
    _item("capex", "capital expenditure", r"\bcapex\b|capital\s+expenditures?|capital\s+spending",
          "capital expenditures; purchases of property, plant and equipment; purchases of property and equipment; "
          "payments for property, plant and equipment; payments for property and equipment; additions to property, plant "
          "and equipment; additions to property and equipment; capital spending; expenditures for property, plant and equipment",
          "cash_flows", outflow=True),
    _item("cfo", "cash flow from operating activities",
          r"cash\s+(?:flows?\s+)?(?:from|provided\s+by|generated\s+(?:from|by|in))\s+operat\w+|operating\s+cash\s+flows?|"
          r"cash\s+(?:flows?\s+)?from\s+operations",
          "net cash provided by operating activities; net cash provided by (used in) operating activities; "
          "net cash from operating activities; net cash provided by operations; cash provided by operating activities; "
          "net cash generated from operating activities; cash flows from operating activities",
          "cash_flows"),
    _item("cfi", "cash flow from investing activities", r"cash\s+(?:flows?\s+)?(?:from|used\s+(?:in|for))\s+investing",
          "net cash used in investing activities; net cash provided by (used in) investing activities; "
          "net cash used for investing activities; net cash from investing activities", "cash_flows"),
    _item("cff", "cash flow from financing activities", r"cash\s+(?:flows?\s+)?(?:from|used\s+(?:in|for))\s+financing",
          "net cash used in financing activities; net cash provided by (used in) financing activities; "
          "net cash used for financing activities; net cash from financing activities", "cash_flows"),
    _item("d_and_a", "depreciation and amortization", r"\bd\s?&\s?a\b|depreciation\s+(?:and|&)\s+amortization",
          "depreciation and amortization; depreciation, amortization and other; depreciation and amortization expense; "
          "depreciation", "cash_flows"),
    _item("dividends", "dividends paid", r"dividends?\s+paid|cash\s+dividends|dividend\s+payments?",
          "dividends paid; cash dividends paid; dividends paid to shareholders; payments of dividends", "cash_flows",
          outflow=True),
    _item("ppe_net", "net PP&E", r"\bpp\s?&?\s?n?e\b|property,?\s+plant,?\s+(?:and|&)\s+equipment|property\s+(?:and|&)\s+equipment|fixed\s+assets?",
          "property, plant and equipment, net; property and equipment, net; net property, plant and equipment; "
          "property, plant and equipment net; net property and equipment", "balance_sheet"),
    _item("total_current_assets", "total current assets", r"current\s+assets", "total current assets", "balance_sheet"),
    _item("total_current_liabilities", "total current liabilities", r"current\s+liabilities", "total current liabilities",
          "balance_sheet"),
    _item("total_assets", "total assets", r"total\s+assets|\bassets\b", "total assets", "balance_sheet"),
    _item("total_liabilities", "total liabilities", r"total\s+liabilities", "total liabilities", "balance_sheet"),
    _item("total_equity", "total shareholders' equity", r"(?:shareholders|stockholders)['’]?\s+equity|total\s+equity",
          "total shareholders' equity; total stockholders' equity; total equity; total shareholders' equity (deficit)",
          "balance_sheet"),
    _item("cash", "cash and cash equivalents", r"cash\s+(?:and|&)\s+cash\s+equivalents",
          "cash and cash equivalents; cash and equivalents", "balance_sheet"),
    _item("accounts_receivable", "accounts receivable", r"accounts\s+receivables?|trade\s+receivables?|\breceivables\b",
          "accounts receivable, net; accounts receivable; trade receivables, net; receivables, net", "balance_sheet"),
    _item("inventory", "inventories", r"\binventor(?:y|ies)\b", "inventories; merchandise inventories; inventory; total inventories",
          "balance_sheet"),
    _item("accounts_payable", "accounts payable", r"accounts\s+payables?|trade\s+payables?",
          "accounts payable; trade accounts payable; accounts payable and accrued liabilities", "balance_sheet"),
    _item("long_term_debt", "long-term debt", r"long[\s-]+term\s+debt", "long-term debt; long-term debt, net of current portion",
          "balance_sheet"),
    _item("cogs", "cost of sales", r"\bcogs\b|cost\s+of\s+(?:goods\s+sold|sales|revenues?|products\s+sold)",
          "cost of sales; cost of goods sold; cost of revenues; cost of revenue; total cost of revenues; cost of products sold",
          "income"),
    _item("gross_profit", "gross profit", r"gross\s+profit", "gross profit; gross margin", "income"),
    _item("operating_income", "operating income", r"operating\s+(?:income|profit)|income\s+from\s+operations|\bebit\b",
          "operating income; income from operations; operating profit; operating income (loss); income (loss) from operations",
          "income"),
    _item("pretax_income", "income before income taxes", r"(?:pre-?tax|before\s+(?:income\s+)?taxes)\s*(?:income|earnings)?",
          "income before income taxes; earnings before income taxes; income before provision for income taxes; pretax income",
          "income"),
    _item("income_tax", "provision for income taxes", r"income\s+tax(?:es)?\s+(?:expense|provision)|provision\s+for\s+income\s+taxes",
          "provision for income taxes; income tax expense; income tax provision; provision for (benefit from) income taxes; "
          "income taxes", "income"),
    _item("sga", "selling, general and administrative expenses", r"\bsg\s?&\s?a\b|selling,?\s+general\s+(?:and|&)\s+administrative",
          "selling, general and administrative expenses; selling, general and administrative; "
          "selling, general and administrative expense", "income"),
    _item("r_and_d", "research and development expenses", r"\br\s?&\s?d\b|research\s+(?:and|&)\s+development",
          "research and development expenses; research and development; research and development expense", "income"),
    _item("interest_expense", "interest expense", r"interest\s+expense", "interest expense; interest expense, net", "income"),
    _item("net_income", "net income", r"net\s+(?:income|earnings|profit)|\bearnings\b",
          "net income; net earnings; net income (loss); net income attributable to", "income"),
    _item("revenue", "revenue", r"\b(?:total\s+)?(?:net\s+)?(?:revenues?|sales|top\s*line)\b",
          "total net sales; total net revenues; total net revenue; total revenues; total revenue; net sales; net revenues; "
          "net revenue; revenues; revenue; sales", "income"),
)
ITEMS = {i.key: i for i in LINE_ITEMS}


@dataclass(frozen=True)
class Metric:
    key: str
    name: str
    asked: re.Pattern[str]
    formula: str  # over item keys, with prev(), avg(), delta(); the result a percentage when ``percent``
    percent: bool = False
    decimals: int = 2  # the rounding shown unless the question asks for another


def _metric(key: str, name: str, asked: str, formula: str, percent: bool = False, decimals: int | None = None) -> Metric:
    return Metric(key, name, re.compile(asked, re.I), formula, percent, decimals if decimals is not None else (1 if percent else 2))


# Textbook definitions. First match wins: the longer names first ("EBITDA margin" before "EBITDA").
METRICS: tuple[Metric, ...] = (
    _metric("ebitda_margin", "EBITDA margin", r"\bebitda\b.{0,20}\bmargin", "(operating_income + d_and_a) / revenue", True),
    _metric("ebitda_less_capex", "EBITDA less capital expenditure", r"\bebitda\b.{0,20}\b(?:less|minus)\b.{0,10}(?:capex|capital\s+expenditure)",
            "operating_income + d_and_a - capex", decimals=0),
    _metric("ebitda", "EBITDA", r"\bebitda\b", "operating_income + d_and_a", decimals=0),
    _metric("free_cash_flow", "free cash flow", r"free\s+cash\s+flows?", "cfo - capex", decimals=0),
    _metric("gross_margin", "gross margin", r"gross\s+(?:profit\s+)?margin", "gross_profit / revenue", True),
    _metric("operating_margin", "operating margin", r"operating\s+(?:profit\s+)?margin|\bebit\s+margin", "operating_income / revenue", True),
    _metric("net_margin", "net profit margin", r"net\s+(?:profit\s+|income\s+)?margin|profit\s+margin", "net_income / revenue", True),
    _metric("fixed_asset_turnover", "fixed asset turnover", r"fixed\s+asset\s+turnover", "revenue / avg(ppe_net)"),
    _metric("asset_turnover", "total asset turnover", r"(?:total\s+)?asset\s+turnover", "revenue / avg(total_assets)"),
    _metric("inventory_turnover", "inventory turnover", r"inventory\s+turnover|times.{0,30}sold\s+(?:its\s+)?inventory",
            "cogs / avg(inventory)"),
    _metric("dpo", "days payable outstanding", r"days\s+payables?\s+outstanding|\bdpo\b",
            "365 * avg(accounts_payable) / (cogs + delta(inventory))"),
    _metric("dso", "days sales outstanding", r"days\s+sales\s+outstanding|\bdso\b", "365 * avg(accounts_receivable) / revenue"),
    _metric("dio", "days inventory outstanding", r"days\s+inventory\s+outstanding|\bdio\b", "365 * avg(inventory) / cogs"),
    _metric("cash_conversion_cycle", "cash conversion cycle", r"cash\s+conversion\s+cycle|\bccc\b",
            "365 * avg(inventory) / cogs + 365 * avg(accounts_receivable) / revenue - 365 * avg(accounts_payable) / cogs"),
    _metric("operating_cash_flow_ratio", "operating cash flow ratio", r"operating\s+cash\s+flow\s+ratio",
            "cfo / total_current_liabilities"),
    _metric("current_ratio", "current ratio", r"current\s+ratio|working\s+capital\s+ratio", "total_current_assets / total_current_liabilities"),
    _metric("quick_ratio", "quick ratio", r"quick\s+ratio|acid[\s-]+test",
            "(total_current_assets - inventory) / total_current_liabilities"),
    _metric("working_capital", "working capital", r"working\s+capital", "total_current_assets - total_current_liabilities", decimals=0),
    _metric("effective_tax_rate", "effective tax rate", r"effective\s+tax\s+rate", "income_tax / pretax_income", True),
    _metric("roa", "return on assets", r"return\s+on\s+(?:total\s+)?assets|\broa\b", "net_income / avg(total_assets)", True),
    _metric("roe", "return on equity", r"return\s+on\s+(?:shareholders['’]?\s+|stockholders['’]?\s+)?equity|\broe\b",
            "net_income / avg(total_equity)", True),
    _metric("interest_coverage", "interest coverage", r"interest\s+coverage", "operating_income / interest_expense"),
    _metric("payout_ratio", "dividend payout ratio", r"(?:dividend\s+)?payout\s+ratio", "dividends / net_income", True),
    _metric("debt_to_equity", "debt to equity", r"debt[\s-]+to[\s-]+equity", "long_term_debt / total_equity"),
)

# "capex as a % of revenue", "SG&A as a percent of net sales": an item over revenue.
SHARE_OF_REVENUE = re.compile(r"\b(?:as\s+(?:a\s+)?(?:%|percent(?:age)?|share)\s+of|to)\s+(?:total\s+)?(?:net\s+)?(?:revenues?|sales)\b", re.I)
# A change between two periods; in percent when the question says so (or asks for growth or a rate).
CHANGE = re.compile(r"\b(?:change|changed|growth|grow|grew|increase|increased|decrease|decreased|decline|declined)\b", re.I)
PERCENT_ASKED = re.compile(r"\bpercent|%|\bgrowth\s+rate\b|\bgrowth\b|\brate\b", re.I)
AVERAGE_OVER_YEARS = re.compile(r"\b(?:\d|two|three|four|five)[\s-]+years?\s+average\b|\baverage\b.{0,40}\bover\b.{0,20}\byears\b", re.I)
_ROUND = re.compile(r"\bround(?:ed|ing)?\b[^.?]{0,40}?\b(?:to\s+)?(\d|one|two|three|zero|no)\s+decimal", re.I)
_WORD_NUMBER = {"zero": 0, "no": 0, "one": 1, "two": 2, "three": 3}

_YEAR = re.compile(r"(?<![\d,.])(?:fy\s?|fiscal\s+(?:year\s+)?)?((?:19|20)\d{2})(?!\d|,\d)", re.I)
_SHORT_FY = re.compile(r"\bfy\s?'?(\d{2})\b", re.I)


def asked_years(question: str) -> list[int]:
    """The fiscal years the question names, in the order it names them, once each."""
    found = [(m.start(), int(m.group(1))) for m in _YEAR.finditer(question)]
    found += [(m.start(), 2000 + int(m.group(1))) for m in _SHORT_FY.finditer(question)]
    return list(dict.fromkeys(year for _, year in sorted(found)))


def asked_decimals(question: str) -> int | None:
    """The rounding the question asks for ("round to one decimal place"), or None."""
    found = _ROUND.search(question)
    if not found:
        return None
    word = found.group(1).casefold()
    return int(word) if word.isdigit() else _WORD_NUMBER[word]


def asked_items(text: str) -> list[LineItem]:
    """The line items ``text`` names, in the order of LINE_ITEMS; a span claimed by one is not read again
    ("net cash provided by operating activities" is not also "net income")."""
    taken: list[tuple[int, int]] = []
    out = []
    for item in LINE_ITEMS:
        for m in item.asked.finditer(text):
            if any(s < m.end() and m.start() < e for s, e in taken):
                continue
            taken.append(m.span())
            if item not in out:
                out.append(item)
    return out


def asked_metric(text: str) -> Metric | None:
    return next((m for m in METRICS if m.asked.search(text)), None)
