"""Arithmetic over cited table cells: what a question asks to read or compute, and the formula's value.

``plan`` reads a question as one line item to read, or a ``pipeline.financial_terms`` formula to compute
(a change, a growth rate, a margin, a ratio, an average) for its years; ``Formula`` evaluates that
formula on the cells a finder reads, keeping each cell's figure as printed so the answer shows the
expression with its inputs; ``computed`` writes the labelled, cited computed answer.

It is apart from ``pipeline.table_answers`` (which reads tables and cells out of the evidence) because
planning and evaluating a formula need only the plain cell types below, the financial terms and the
question's kind, not the reading of tables: the dependency goes one way, ``table_answers`` imports
this module and never the reverse. The finder is any object with ``find(item, year)``,
``table_answers.CellFinder`` in use.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Protocol

from ingest.structure import statement_kind
from pipeline import financial_terms as terms
from pipeline.answer_kinds import kind_rule, question_core

# Kinds of question the tables may answer (a yes/no question or a list is the quoting answerer's).
NUMERIC_KINDS = frozenset({"amount", "percentage", "unspecified"})
_SCALE_WORD = {3: "thousand", 6: "million", 9: "billion"}
# Questions that name a figure but ask for its reasons, a comparison in words or which one it is ("What
# drove operating margin change?", "How does the tax rate compare?", "Which region had the biggest
# drop in revenue?"): the quoting answerer's, not one figure's.
_REASONS = re.compile(r"^(?:what|which)\s+(?:\w+\s+)?(?:drove|drives|driven|caused|causes|explains?)\b|^why\b|(?:^|,\s*)(?:which|who)\b|"
                      r"^how\s+(?:did|does|do|has|have)\b(?!.*\bhow\s+much\b)", re.I)


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


class Finder(Protocol):
    """Reads an item's cell for a year (``pipeline.table_answers.CellFinder``)."""

    def find(self, item: terms.LineItem, year: int) -> CellRead | None: ...


def latest_year(views: list[TableView]) -> int | None:
    years = [int(y) for v in views for h in v.columns[1:] for y in re.findall(r"(?<!\d)((?:19|20)\d{2})(?!\d)", h)]
    return max(years) if years else None


# -- formulas over cells -----------------------------------------------------------------------------


@dataclass
class _Evaluation:
    value: Decimal
    shown: str  # the expression with the cells' figures


class Formula:
    """Evaluates a ``financial_terms`` formula for year ``year``, reading each item's cell once."""

    def __init__(self, finder: Finder, year: int):
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


def figure(value: Decimal, decimals: int) -> str:
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


def cell_where(read: CellRead) -> str:
    title = next((p.strip() for p in re.split(r"[;|]", read.where) if statement_kind(p.strip())), "")
    return ", ".join(p for p in (read.row, read.column, title) if p)


def cell_amount(read: CellRead, digits: str, dollars: bool = False) -> str:
    scale = _SCALE_WORD.get(read.exponent)
    return f"{'$' if read.dollars or dollars else ''}{digits}{' ' + scale if scale else ''}"


def computed(question: str, wanted: _Plan, finder: Finder, steps: list[str]) -> TableAnswer | None:
    results: list[_Evaluation] = []
    inputs: list[tuple[terms.LineItem, int, CellRead]] = []  # every cell read, once, in the order read
    for year in wanted.years:
        formula = Formula(finder, year)
        source = re.sub(r"(\w+)@(\d{4})", lambda m: f"{m.group(1)}_AT_{m.group(2)}", wanted.formula)
        try:
            tree = ast.parse(source, mode="eval").body
            tree = resolve_fixed_years(tree)
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
    result = figure(value, wanted.decimals) + ("%" if wanted.percent else amount_unit)
    if decrease:
        result += " (a decrease)"
    period = f"FY{wanted.years[0]}" if len(wanted.years) == 1 else f"FY{wanted.years[0]}-FY{wanted.years[-1]}"
    labels = list(dict.fromkeys(read.label for _, _, read in inputs))
    cite = ", ".join(labels)
    lines = [f"{_capital(wanted.name)}, {period}, computed by Docket from the cited cells (not read from the filing): "
             f"{shown} = {result} [{cite}]"]
    for item, year, read in inputs:
        lines.append(f"{_capital(item.name)}, FY{year}: {cell_amount(read, read.digits)} ({cell_where(read)}) [{read.label}]")
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
    shown = [figure(r.value * scale, wanted.decimals) for r in results]
    before, after = (Decimal(x.replace(",", "")) for x in shown)
    unit = " percentage points" if wanted.percent else ""
    change = (f"an increase of {shown[1]} - {shown[0]} = {figure(after - before, wanted.decimals)}{unit}" if after >= before
              else f"a decrease of {shown[0]} - {shown[1]} = {figure(before - after, wanted.decimals)}{unit}")
    parts = "; ".join(f"FY{y}: {r.shown} = {v}{mark}" for y, r, v in zip(wanted.years, results, shown, strict=True))
    labels = list(dict.fromkeys(read.label for _, _, read in inputs))
    lines = [f"{_capital(wanted.name)}, FY{wanted.years[0]} to FY{wanted.years[-1]}, computed by Docket from the cited cells "
             f"(not read from the filing): {parts}; {change} [{', '.join(labels)}]"]
    lines += [f"{_capital(item.name)}, FY{year}: {cell_amount(read, read.digits)} ({cell_where(read)}) [{read.label}]"
              for item, year, read in inputs]
    steps.append(f"Computed {parts}; {change}.")
    return TableAnswer("\n".join(lines), labels, steps)


def resolve_fixed_years(tree: ast.AST) -> ast.AST:
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


def evaluate_all(formula: Formula, node: ast.AST, year: int) -> None:
    """Visit every leaf of the formula (not stopping at the first missing cell), so every missing one is known."""
    if isinstance(node, ast.Name):
        formula.cell(node.id, year)
    elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        fixed = re.fullmatch(r"at(\d{4})", node.func.id)
        years = [int(fixed.group(1))] if fixed else [year - 1] if node.func.id == "prev" else [year, year - 1]
        for y in years:
            evaluate_all(formula, node.args[0], y)
    elif isinstance(node, ast.BinOp):
        evaluate_all(formula, node.left, year)
        evaluate_all(formula, node.right, year)
