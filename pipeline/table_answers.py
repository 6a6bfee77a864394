"""Numeric answers read from the statement tables among the evidence (issue 17, "Numeric questions on
filings read the table row").

Given a question and the retrieved sources, the table chunks among them (a Markdown header row in the
chunk's context, its rows as the text; ``ingest.tables.as_table``) are read as tables: the row whose
label is the line item the question names (``pipeline.financial_terms``: normalised words against the
labels statements use, the encoder's similarity as a fallback, the statement the item belongs on), the
column whose header holds the period asked, the units the table states. The answer puts the value
first with where it was read, cited to its source; the grounding check then finds the number in that
source and matches it to its cell and box.

What the question asks to compute (a change, a growth rate, a margin, a ratio, an average) is computed
from cited cells only, shown as one formula with its inputs as the cells print them, and labelled as
computed by Docket, not read: the grounding check re-evaluates the formula and checks every input
against the cited sources. When a needed cell is not among the sources, nothing is computed and the
extractive answerer goes on as it would have.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal

import numpy as np

from ingest.structure import statement_kind
from ingest.tables import cell_value, split_context, units_exponent
from pipeline import financial_terms as terms
from pipeline.answer_kinds import kind_rule, question_core
from pipeline.reasoning import Evidence

# A row label matching an item's label this well (1.0: the same words) is that item's row.
MIN_LABEL_SCORE = 0.7
# Encoder similarity counts for less than the same words: a label only the encoder relates to an item
# needs cosine >= MIN_LABEL_SCORE + this.
ENCODER_DISCOUNT = 0.2
# A balance sheet holds levels at a date, the other statements flows over a period: a balance-sheet item
# read from another statement is a change in it ("Inventories" in the cash flow statement), a flow read
# from a balance sheet is another thing of the same name ("Deferred revenues"). Such a row needs far more.
OTHER_STATEMENT_PENALTY = 0.35
SAME_STATEMENT_BONUS = 0.05
# Kinds of question the tables may answer (a yes/no question or a list is the quoting answerer's).
NUMERIC_KINDS = frozenset({"amount", "percentage", "unspecified"})
_STOP = frozenset("of and the in for to by from a an on at".split())
_SCALE_WORD = {3: "thousand", 6: "million", 9: "billion"}
# Questions that name a figure but ask for its reasons, a comparison in words or which one it is ("What
# drove operating margin change?", "How does the tax rate compare?", "Which region had the biggest
# drop in revenue?"): the quoting answerer's, not one figure's.
_REASONS = re.compile(r"^(?:what|which)\s+(?:\w+\s+)?(?:drove|drives|driven|caused|causes|explains?)\b|^why\b|(?:^|,\s*)(?:which|who)\b|"
                      r"^how\s+(?:did|does|do|has|have)\b(?!.*\bhow\s+much\b)", re.I)
_QUESTION_SCALE = re.compile(r"\b(?:in|usd|us\$|\$)\s*(?:usd\s+)?(thousand|million|billion)s?\b", re.I)


@dataclass(frozen=True)
class TableView:
    """A table chunk read back from its Markdown: where it is, its units, its columns and rows."""

    label: str  # the source's [S#]
    where: str  # the chunk's context before its header row: company; statement title; units; section
    statement: str | None  # cash_flows / balance_sheet / income, from the title in ``where``
    exponent: int  # the power of ten of the figures ("in millions" -> 6)
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    dollars: bool  # the table prints $ signs or says dollars


@dataclass(frozen=True)
class CellRead:
    """One figure read: its source, row, column, the cell as printed, its value in the table's units."""

    label: str
    row: str
    column: str
    text: str
    value: Decimal
    exponent: int
    statement: str | None
    where: str
    dollars: bool
    score: float

    @property
    def digits(self) -> str:
        """The cell's figure without sign, parentheses or currency: how a formula shows it."""
        found = re.search(r"\d[\d,]*(?:\.\d+)?", self.text)
        return found.group(0) if found else self.text


@dataclass
class TableAnswer:
    answer: str
    citations: list[str]
    steps: list[str] = field(default_factory=list)


def _cells(line: str) -> tuple[str, ...] | None:
    line = line.strip()
    if not (line.startswith("|") and line.endswith("|")) or len(line) < 3:
        return None
    return tuple(c.strip() for c in line[1:-1].split(" | "))


_SEPARATOR = re.compile(r"^\|\s*---\s*\|")


def _view(label: str, where: str, columns: tuple[str, ...], lines: list[str]) -> TableView:
    rows = tuple(r for r in (_cells(line) for line in lines) if r and len(r) == len(columns))
    kinds = [statement_kind(part.strip()) for part in re.split(r"[;|]", where)]
    dollars = any("$" in c for r in rows for c in r) or bool(re.search(r"\$|dollars", where + columns[0], re.I))
    return TableView(label, where, next((k for k in kinds if k), None), units_exponent(f"{where} {columns[0]}"),
                     columns, rows, dollars)


def table_views(evidence: list[Evidence]) -> list[TableView]:
    """The tables among ``evidence``: a table chunk (its header row in the context, its rows as the text),
    or a Markdown table inside a chunk of text (a header row, its separator, rows), titled by the lines
    above it. Chunks without a table are left out."""
    out = []
    for ev in evidence:
        where, header = split_context(ev.context)
        columns = _cells(header) if header else None
        if columns and ev.text.lstrip().startswith("| "):
            out.append(_view(ev.label, where, columns, ev.text.splitlines()))
            continue
        lines = ev.text.splitlines()
        for i in range(len(lines) - 1):
            columns = _cells(lines[i]) if _SEPARATOR.match(lines[i + 1].strip()) else None
            if not columns:
                continue
            end = i + 2
            while end < len(lines) and _cells(lines[end]):
                end += 1
            above = [ln.strip() for ln in lines[max(0, i - 4): i] if ln.strip() and not _cells(ln)]
            out.append(_view(ev.label, "; ".join([p for p in (where, *above) if p]), columns, lines[i + 2: end]))
    return out


def _singular(word: str) -> str:
    """Plural and singular are one word to a label ("Income taxes" ~ "income tax", "Net revenues" ~ "net revenue")."""
    return word[:-1] if len(word) > 3 and word.endswith("s") and not word.endswith("ss") else word


def _words(label: str) -> frozenset[str]:
    plain = re.sub(r"\([^)]*\)", " ", label.casefold()).replace("&", " and ")
    return frozenset(_singular(w) for w in re.findall(r"[a-z]+", plain) if w not in _STOP)


def word_score(label: str, item: terms.LineItem) -> float:
    """The share of the row label's words that one of the item's labels has, when it has all of its own
    (1.0: the same words; "Deferred revenues" is only half "revenues"); a little less the further down
    the item's list that label is."""
    have = _words(label)
    best = 0.0
    for rank, wanted in enumerate(item.labels):
        want = _words(wanted)
        if want and want <= have:
            best = max(best, len(want) / len(have) - 0.01 * rank)
    return best


def _columns_for(view: TableView, year: int) -> int | None:
    """The figure column whose header holds ``year``; for a fiscal year ending early in the next
    calendar year ("January 28, 2023" for fiscal 2022), that column."""
    pattern = re.compile(rf"(?<!\d){year}(?!\d)")
    for i, header in enumerate(view.columns[1:], start=1):
        if pattern.search(header):
            return i
    early = re.compile(rf"\b(?:jan\w*|feb\w*)\b[^|]*(?<!\d){year + 1}(?!\d)", re.I)
    for i, header in enumerate(view.columns[1:], start=1):
        if early.search(header):
            return i
    return None


def latest_year(views: list[TableView]) -> int | None:
    years = [int(y) for v in views for h in v.columns[1:] for y in re.findall(r"(?<!\d)((?:19|20)\d{2})(?!\d)", h)]
    return max(years) if years else None


class CellFinder:
    """Finds an item's cell for a year among the table views, scoring row labels once per item."""

    def __init__(self, views: list[TableView], embed: Callable[[list[str]], np.ndarray] | None, named_statements: set[str]):
        self.views = views
        self.embed = embed
        self.named = named_statements  # statements the question names ("in the cash flow statement")
        self._cosines: dict[str, dict[str, float]] = {}

    def _cosine(self, item: terms.LineItem) -> dict[str, float]:
        if self.embed is None:
            return {}
        if item.key not in self._cosines:
            labels = sorted({r[0] for v in self.views for r in v.rows if r[0]})
            if not labels:
                return {}
            vectors = self.embed(list(item.labels) + labels)
            sims = vectors[len(item.labels):] @ vectors[: len(item.labels)].T
            self._cosines[item.key] = {label: float(s.max()) for label, s in zip(labels, sims, strict=True)}
        return self._cosines[item.key]

    def score(self, item: terms.LineItem, view: TableView, label: str) -> float:
        words = word_score(label, item)
        if words < 1.0 and any(word_score(label, other) >= 0.95 for other in terms.LINE_ITEMS if other is not item):
            return 0.0  # the row is exactly another item's ("Net income" is not revenue, however close its vector)
        score = max(words, self._cosine(item).get(label, 0.0) - ENCODER_DISCOUNT)
        if view.statement == item.statement:
            score += SAME_STATEMENT_BONUS
        elif view.statement is not None and "balance_sheet" in (item.statement, view.statement):
            score -= OTHER_STATEMENT_PENALTY
        if view.statement and view.statement in self.named:
            score += SAME_STATEMENT_BONUS
        return score

    def find(self, item: terms.LineItem, year: int) -> CellRead | None:
        best: CellRead | None = None
        for view in self.views:
            column = _columns_for(view, year)
            if column is None:
                continue
            for row in view.rows:
                if not row[0] or not row[column]:
                    continue
                value = cell_value(row[column])
                if value is None:
                    continue
                score = self.score(item, view, row[0])
                if score >= MIN_LABEL_SCORE and (best is None or score > best.score):
                    best = CellRead(view.label, row[0], view.columns[column], row[column], value, view.exponent,
                                    view.statement, view.where, view.dollars, score)
        return best


# -- formulas over cells -----------------------------------------------------------------------------


@dataclass
class _Evaluation:
    value: Decimal
    shown: str  # the expression with the cells' figures


class _Formula:
    """Evaluates a ``financial_terms`` formula for year ``year``, reading each item's cell once."""

    def __init__(self, finder: CellFinder, year: int):
        self.finder, self.year = finder, year
        self.inputs: list[tuple[terms.LineItem, int, CellRead]] = []
        self.missing: list[tuple[terms.LineItem, int]] = []

    def cell(self, key: str, year: int) -> CellRead | None:
        for item, y, read in self.inputs:
            if item.key == key and y == year:
                return read
        item = terms.ITEMS[key]
        read = self.finder.find(item, year)
        if read is None:
            self.missing.append((item, year))
            return None
        self.inputs.append((item, year, read))
        return read

    def _leaf(self, key: str, year: int) -> _Evaluation | None:
        read = self.cell(key, year)
        if read is None:
            return None
        item = terms.ITEMS[key]
        value = abs(read.value) if item.outflow else read.value
        if value < 0:
            return _Evaluation(value, f"(-{read.digits})")
        return _Evaluation(value, read.digits)

    def evaluate(self, node: ast.AST, year: int) -> _Evaluation | None:
        if isinstance(node, ast.Name):
            return self._leaf(node.id, year)
        if isinstance(node, ast.Constant):
            return _Evaluation(Decimal(str(node.value)), str(node.value))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            (arg,) = node.args
            fixed = re.fullmatch(r"at(\d{4})", node.func.id)
            if fixed:  # the item in a fixed year ("from FY2017 to FY2019": the FY2017 figure)
                return self.evaluate(arg, int(fixed.group(1)))
            if node.func.id == "prev":
                return self.evaluate(arg, year - 1)
            now, before = self.evaluate(arg, year), self.evaluate(arg, year - 1)
            if now is None or before is None:
                return None
            if node.func.id == "avg":  # in parentheses: it is a quotient inside the formula
                return _Evaluation((now.value + before.value) / 2, f"(({now.shown} + {before.shown}) / 2)")
            if node.func.id == "delta":
                return _Evaluation(now.value - before.value, f"({now.shown} - {before.shown})")
            raise ValueError(f"unknown function {node.func.id}")
        if isinstance(node, ast.BinOp):
            left, right = self.evaluate(node.left, year), self.evaluate(node.right, year)
            if left is None or right is None:
                return None
            if isinstance(node.op, ast.Add):
                return _Evaluation(left.value + right.value, f"{left.shown} + {right.shown}")
            if isinstance(node.op, ast.Sub):
                return _Evaluation(left.value - right.value, f"{left.shown} - {_group(node.right, right.shown)}")
            if isinstance(node.op, (ast.Mult, ast.Div)):
                if isinstance(node.op, ast.Div) and right.value == 0:
                    return None
                value = left.value * right.value if isinstance(node.op, ast.Mult) else left.value / right.value
                sign = "×" if isinstance(node.op, ast.Mult) else "/"
                return _Evaluation(value, f"{_group(node.left, left.shown)} {sign} {_group(node.right, right.shown)}")
        raise ValueError("not a formula")


def _group(node: ast.AST, shown: str) -> str:
    """Parentheses around a sum or difference inside a product, quotient or difference."""
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub)):
        return f"({shown})"
    return shown


def _round(value: Decimal, decimals: int) -> Decimal:
    return value.quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_UP)


def _figure(value: Decimal, decimals: int) -> str:
    return f"{_round(value, decimals):,.{decimals}f}"


# -- the answer ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Plan:
    """What a question asks for: one item read, or a formula computed, for a year."""

    name: str
    formula: str | None  # None: read ``item`` itself
    item: terms.LineItem | None
    percent: bool
    decimals: int
    years: tuple[int, ...]  # the years the result is computed for (more than one: their average)
    difference: bool = False  # the change of a metric between the first and the last of ``years``


def plan(question: str, views: list[TableView]) -> _Plan | None:
    """What ``question`` asks to read or compute from the tables, or None when it asks for no figure."""
    kind, _ = kind_rule(question)
    if kind not in NUMERIC_KINDS:
        return None
    core = question_core(question)
    if _REASONS.search(core):
        return None
    years = terms.asked_years(question)
    if not years:
        # No period asked: only a primary statement's latest column answers (a contract's fee table does not).
        views[:] = [v for v in views if v.statement]
        latest = latest_year(views)
        years = [latest] if latest else []
    if not years:
        return None
    last, first = max(years), min(years)
    asked = terms.asked_decimals(question)
    metric = terms.asked_metric(core)
    if metric is not None:
        if terms.CHANGE.search(core) and first < last:  # "how much has the effective tax rate changed"
            return _Plan(f"change in {metric.name}", metric.formula, None, metric.percent,
                         asked if asked is not None else metric.decimals, (first, last), difference=True)
        return _Plan(metric.name, metric.formula, None, metric.percent, asked if asked is not None else metric.decimals, (last,))
    items = terms.asked_items(core)
    if not items:
        return None
    item = items[0]
    share = terms.SHARE_OF_REVENUE.search(core)
    if share and item.key != "revenue":
        span = tuple(range(first, last + 1)) if terms.AVERAGE_OVER_YEARS.search(core) and first < last else (last,)
        label = f"{item.name} as a percentage of revenue" + (f", {len(span)}-year average" if len(span) > 1 else "")
        return _Plan(label, f"{item.key} / revenue", None, True, asked if asked is not None else 1, span)
    if terms.CHANGE.search(core) or re.search(r"year[\s-]+over[\s-]+year|\byoy\b", core, re.I):
        percent = bool(terms.PERCENT_ASKED.search(question))
        base = first if first < last else last - 1
        formula = f"({item.key} - prev({item.key})) / prev({item.key})" if percent else f"{item.key} - prev({item.key})"
        if last - base != 1:  # a change over several years: from the first year asked to the last
            formula = formula.replace(f"prev({item.key})", f"{item.key}@{base}")
        return _Plan(f"change in {item.name}", formula, None, percent, asked if asked is not None else (1 if percent else 0), (last,))
    if terms.AVERAGE_OVER_YEARS.search(core) or (re.search(r"\baverage\b", core, re.I) and first < last):
        # "the average inventories between FY2021 and FY2022": the mean of the item over the years named.
        span = tuple(range(first, last + 1))
        return _Plan(f"average {item.name}", item.key, None, False, asked if asked is not None else 0, span)
    return _Plan(item.name, None, item, False, 0, (last,))


def _named_statements(question: str) -> set[str]:
    named = set()
    for pattern, kind in (
        (r"cash[\s-]*flows?\s+statements?|statements?\s+of\s+cash\s+flows?", "cash_flows"),
        (r"balance\s+sheets?|statements?\s+of\s+financial\s+(?:position|condition)", "balance_sheet"),
        (r"income\s+statements?|\bP&L\b|profit\s+and\s+loss|statements?\s+of\s+(?:operations|income|earnings)", "income"),
    ):
        if re.search(pattern, question, re.I):
            named.add(kind)
    return named


def _where(read: CellRead) -> str:
    title = next((p.strip() for p in re.split(r"[;|]", read.where) if statement_kind(p.strip())), "")
    return ", ".join(p for p in (read.row, read.column, title) if p)


def _amount(read: CellRead, digits: str, dollars: bool = False) -> str:
    scale = _SCALE_WORD.get(read.exponent)
    return f"{'$' if read.dollars or dollars else ''}{digits}{' ' + scale if scale else ''}"


def _in_asked_unit(question: str, read: CellRead, dollars: bool = False) -> str:
    """The figure again in the unit the question asks for ("Answer in USD billions"), when it differs."""
    asked = _QUESTION_SCALE.search(question)
    if not asked or not read.exponent:
        return ""
    exponent = {"thousand": 3, "million": 6, "billion": 9}[asked.group(1).casefold()]
    if exponent == read.exponent:
        return ""
    value = abs(read.value).scaleb(read.exponent - exponent)
    return f" (≈ {'$' if read.dollars or dollars else ''}{_figure(value, 1)} {asked.group(1).casefold()})"


def table_answer(
    question: str, evidence: list[Evidence], embed: Callable[[list[str]], np.ndarray] | None = None
) -> TableAnswer | None:
    """The answer read from (or computed on) the table cells among ``evidence``, or None when the
    question asks for no figure or the cells it needs are not among the sources."""
    views = table_views(evidence)
    if not views:
        return None
    wanted = plan(question, views)
    if wanted is None:
        return None
    finder = CellFinder(views, embed, _named_statements(question))
    steps = [f"Table answer: {len(views)} of the {len(evidence)} sources are table rows; wanted {wanted.name} "
             f"for {', '.join(f'FY{y}' for y in wanted.years)}" + (f" = {wanted.formula}" if wanted.formula else "") + "."]
    if wanted.formula is None:
        read = finder.find(wanted.item, wanted.years[0])
        if read is None:
            steps.append(f"No row of those tables is {wanted.item.name} with a column for {wanted.years[0]}.")
            return None
        steps.append(f"Read {read.label} row {read.row!r} (label score {read.score:.2f}), column {read.column!r}: {read.text}.")
        dollars = bool(re.search(r"\busd\b|\$|dollars", question, re.I))
        first = f"{_amount(read, read.digits, dollars)}{_in_asked_unit(question, read, dollars)} ({_where(read)}) [{read.label}]"
        row = next(r for v in views if v.label == read.label for r in v.rows if r[0] == read.row)
        quote = "| " + " | ".join(row) + " |"
        return TableAnswer("\n".join([first, f'"{quote}" [{read.label}]']), [read.label], steps)
    return _computed(question, wanted, finder, steps)


def _computed(question: str, wanted: _Plan, finder: CellFinder, steps: list[str]) -> TableAnswer | None:
    results: list[_Evaluation] = []
    inputs: list[tuple[terms.LineItem, int, CellRead]] = []  # every cell read, once, in the order read
    for year in wanted.years:
        formula = _Formula(finder, year)
        source = re.sub(r"(\w+)@(\d{4})", lambda m: f"{m.group(1)}_AT_{m.group(2)}", wanted.formula)
        try:
            tree = ast.parse(source, mode="eval").body
            tree = _resolve_fixed_years(tree)
            result = formula.evaluate(tree, year)
        except (ValueError, SyntaxError, ArithmeticError):
            result = None
        if result is None:
            missing = ", ".join(f"{item.name} FY{y}" for item, y in formula.missing) or "a cell"
            steps.append(f"Not computed: {missing} is not among the sources' table rows.")
            return None
        results.append(result)
        inputs += [e for e in formula.inputs if not any(e[0].key == i[0].key and e[1] == i[1] for i in inputs)]
    steps += [f"Read {read.label} row {read.row!r} (label score {read.score:.2f}), column {read.column!r}: {read.text}."
              for _, _, read in inputs]
    if wanted.difference:
        return _difference(wanted, results, inputs, steps)
    if len(results) == 1:
        value, shown = results[0].value, results[0].shown
    else:
        value = sum((r.value for r in results), Decimal(0)) / len(results)
        shown = "(" + " + ".join(f"({r.shown})" for r in results) + f") / {len(results)}"
    decrease = False
    if value < 0:
        if wanted.name.startswith("change in") and len(results) == 1:
            value, shown, decrease = -value, _flip(shown), True
        else:
            steps.append("Not computed: the result is negative and a formula line cannot show it checkably.")
            return None
    if wanted.percent:
        value = value * 100
    units = {read.exponent for _, _, read in inputs}
    amount_unit = ""
    if not wanted.percent and wanted.formula and "/" not in wanted.formula:
        scale = _SCALE_WORD.get(next(iter(units))) if len(units) == 1 else None
        if len(units) > 1:
            steps.append("Not computed: the cells are in different units.")
            return None
        amount_unit = f" {scale}" if scale else ""
    result = _figure(value, wanted.decimals) + ("%" if wanted.percent else amount_unit)
    if decrease:
        result += " (a decrease)"
    period = f"FY{wanted.years[0]}" if len(wanted.years) == 1 else f"FY{wanted.years[0]}-FY{wanted.years[-1]}"
    labels = list(dict.fromkeys(read.label for _, _, read in inputs))
    cite = ", ".join(labels)
    lines = [f"{_capital(wanted.name)}, {period}, computed by Docket from the cited cells (not read from the filing): "
             f"{shown} = {result} [{cite}]"]
    for item, year, read in inputs:
        lines.append(f"{_capital(item.name)}, FY{year}: {_amount(read, read.digits)} ({_where(read)}) [{read.label}]")
    steps.append(f"Computed {shown} = {result} from {len(inputs)} cells.")
    return TableAnswer("\n".join(lines), labels, steps)


def _difference(wanted: _Plan, results: list[_Evaluation], inputs, steps: list[str]) -> TableAnswer | None:
    """A metric in two years and the change between them, on one computed line; the change is taken
    between the figures as shown, so the line's arithmetic is checkable as written."""
    scale = Decimal(100) if wanted.percent else Decimal(1)
    if any(r.value < 0 for r in results) or any(read.exponent != inputs[0][2].exponent for _, _, read in inputs):
        steps.append("Not computed: a negative figure or cells in different units.")
        return None
    mark = "%" if wanted.percent else ""
    shown = [_figure(r.value * scale, wanted.decimals) for r in results]
    before, after = (Decimal(x.replace(",", "")) for x in shown)
    unit = " percentage points" if wanted.percent else ""
    change = (f"an increase of {shown[1]} - {shown[0]} = {_figure(after - before, wanted.decimals)}{unit}" if after >= before
              else f"a decrease of {shown[0]} - {shown[1]} = {_figure(before - after, wanted.decimals)}{unit}")
    parts = "; ".join(f"FY{y}: {r.shown} = {v}{mark}" for y, r, v in zip(wanted.years, results, shown, strict=True))
    labels = list(dict.fromkeys(read.label for _, _, read in inputs))
    lines = [f"{_capital(wanted.name)}, FY{wanted.years[0]} to FY{wanted.years[-1]}, computed by Docket from the cited cells "
             f"(not read from the filing): {parts}; {change} [{', '.join(labels)}]"]
    lines += [f"{_capital(item.name)}, FY{year}: {_amount(read, read.digits)} ({_where(read)}) [{read.label}]"
              for item, year, read in inputs]
    steps.append(f"Computed {parts}; {change}.")
    return TableAnswer("\n".join(lines), labels, steps)


def _resolve_fixed_years(tree: ast.AST) -> ast.AST:
    """``item_AT_2019`` (written ``item@2019``): the item in that year, whatever year is evaluated."""

    class Fixed(ast.NodeTransformer):
        def visit_Name(self, node: ast.Name) -> ast.AST:
            found = re.fullmatch(r"(\w+?)_AT_(\d{4})", node.id)
            if not found:
                return node
            return ast.Call(func=ast.Name(id=f"at{found.group(2)}"), args=[ast.Name(id=found.group(1))], keywords=[])

    return Fixed().visit(tree)


def _flip(shown: str) -> str:
    """``(a - b) / b`` as ``(b - a) / b``: a decrease shown as a positive share of the earlier figure."""
    found = re.fullmatch(r"\((\S+) - (\S+)\)( / \S+)?", shown)
    if not found:
        return shown
    return f"({found.group(2)} - {found.group(1)}){found.group(3) or ''}"


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


# -- rows the search did not bring ------------------------------------------------------------------

# What a statement is called, for a search for one of its rows.
STATEMENT_NAMES = {
    "cash_flows": "Consolidated Statements of Cash Flows",
    "balance_sheet": "Consolidated Balance Sheets",
    "income": "Consolidated Statements of Operations Income",
}
MAX_EXTRA_SOURCES = 4  # rows added for one question at most
EXTRA_SEARCH_K = 12  # a statement's first rows may rank below its later ones and the notes


def needed_cells(question: str, views: list[TableView]) -> list[tuple[terms.LineItem, int]] | None:
    """The (item, year) cells the question needs that no table among ``views`` holds; None when the
    question asks for no figure. Label words only (no encoder): it decides what to search for."""
    wanted = plan(question, list(views))
    if wanted is None:
        return None
    finder = CellFinder(views, None, _named_statements(question))
    if wanted.formula is None:
        return [] if finder.find(wanted.item, wanted.years[0]) else [(wanted.item, wanted.years[0])]
    missing: list[tuple[terms.LineItem, int]] = []
    for year in wanted.years:
        formula = _Formula(finder, year)
        source = re.sub(r"(\w+)@(\d{4})", lambda m: f"{m.group(1)}_AT_{m.group(2)}", wanted.formula)
        try:
            _evaluate_all(formula, _resolve_fixed_years(ast.parse(source, mode="eval").body), year)
        except (ValueError, SyntaxError, ArithmeticError):
            return None
        missing += [m for m in formula.missing if m not in missing]
    return missing


def _evaluate_all(formula: _Formula, node: ast.AST, year: int) -> None:
    """Visit every leaf of the formula (not stopping at the first missing cell), so every missing one is known."""
    if isinstance(node, ast.Name):
        formula.cell(node.id, year)
    elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        fixed = re.fullmatch(r"at(\d{4})", node.func.id)
        years = [int(fixed.group(1))] if fixed else [year - 1] if node.func.id == "prev" else [year, year - 1]
        for y in years:
            _evaluate_all(formula, node.args[0], y)
    elif isinstance(node, ast.BinOp):
        _evaluate_all(formula, node.left, year)
        _evaluate_all(formula, node.right, year)


def rows_to_add(question: str, evidence: list[Evidence], search: Callable[[str, int], list[Evidence]]) -> list[Evidence]:
    """Table chunks holding the cells the question's figure needs and the retrieved ``evidence`` lacks
    (the revenue of a margin, the prior year's inventories of a turnover), each found by a search for
    the item's usual label in its statement; to be shown after the retrieved sources. Empty when the
    question asks for no figure or nothing is missing."""
    views = table_views(evidence)  # none at all: the question may still name a year and a figure to search for
    missing = needed_cells(question, views)
    if not missing:
        return []
    seen = {e.chunk_id for e in evidence}
    added: list[Evidence] = []
    for item, year in missing:
        if len(added) >= MAX_EXTRA_SOURCES:
            break
        if added and CellFinder(table_views(added), None, set()).find(item, year):
            continue  # a row added for another item holds this one too
        # The item's usual label first, then its other labels together (a filing calls it one of them).
        for query in (f"{STATEMENT_NAMES[item.statement]} {item.labels[0]} {year}",
                      f"{STATEMENT_NAMES[item.statement]} {'; '.join(item.labels[1:4])} {year}"):
            # Of the hits holding the cell, the one whose row is the item's best (a statement's over a note's).
            found = [(read.score, -rank, h) for rank, h in enumerate(search(query, EXTRA_SEARCH_K)) if h.chunk_id not in seen
                     for read in [CellFinder(table_views([h]), None, set()).find(item, year)] if read]
            hit = max(found, key=lambda f: f[:2])[2] if found else None
            if hit is not None:
                added.append(hit)
                seen.add(hit.chunk_id)
                break
    return added
