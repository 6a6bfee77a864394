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
extractive answerer goes on as it would have. Planning and evaluating that formula is
``pipeline.table_formulas``; this module reads the tables and cells it works on.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable

import numpy as np

from ingest.structure import statement_kind
from ingest.tables import cell_value, split_context, units_exponent
from pipeline import financial_terms as terms
from pipeline.reasoning import Evidence
from pipeline.table_formulas import (
    CellRead,
    Formula,
    TableAnswer,
    TableView,
    cell_amount,
    cell_where,
    computed,
    evaluate_all,
    figure,
    plan,
    resolve_fixed_years,
)

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
_STOP = frozenset("of and the in for to by from a an on at".split())
_QUESTION_SCALE = re.compile(r"\b(?:in|usd|us\$|\$)\s*(?:usd\s+)?(thousand|million|billion)s?\b", re.I)


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


def _in_asked_unit(question: str, read: CellRead, dollars: bool = False) -> str:
    """The figure again in the unit the question asks for ("Answer in USD billions"), when it differs."""
    asked = _QUESTION_SCALE.search(question)
    if not asked or not read.exponent:
        return ""
    exponent = {"thousand": 3, "million": 6, "billion": 9}[asked.group(1).casefold()]
    if exponent == read.exponent:
        return ""
    value = abs(read.value).scaleb(read.exponent - exponent)
    return f" (≈ {'$' if read.dollars or dollars else ''}{figure(value, 1)} {asked.group(1).casefold()})"


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
        first = f"{cell_amount(read, read.digits, dollars)}{_in_asked_unit(question, read, dollars)} ({cell_where(read)}) [{read.label}]"
        row = next(r for v in views if v.label == read.label for r in v.rows if r[0] == read.row)
        quote = "| " + " | ".join(row) + " |"
        return TableAnswer("\n".join([first, f'"{quote}" [{read.label}]']), [read.label], steps)
    return computed(question, wanted, finder, steps)


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
        formula = Formula(finder, year)
        source = re.sub(r"(\w+)@(\d{4})", lambda m: f"{m.group(1)}_AT_{m.group(2)}", wanted.formula)
        try:
            evaluate_all(formula, resolve_fixed_years(ast.parse(source, mode="eval").body), year)
        except (ValueError, SyntaxError, ArithmeticError):
            return None
        missing += [m for m in formula.missing if m not in missing]
    return missing


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
