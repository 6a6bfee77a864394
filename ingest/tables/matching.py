"""Numbers of an answer matched to the table cells that hold them, and the tables of the sources shown.

Grounding (``pipeline.grounding``) checks a number against a cited source; where that source is a table,
the cell holding the number (its row, column header, period and box on the page) is the evidence to show.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from decimal import Decimal, InvalidOperation

from ingest.models import Box
from ingest.tables.records import TableRecord


@dataclass(frozen=True)
class CellMatch:
    """Where a number of an answer sits in a table: the cell, its row and column, its box on the page."""

    number: str
    page: int
    table_title: str
    units: str
    row_label: str
    column: str  # the column's header ("2018", "December 31, 2023")
    period: str
    cell_text: str
    box: Box

    def to_dict(self) -> dict:
        return {**asdict(self), "box": [round(v, 1) for v in self.box]}


_CELL_NUMBER = re.compile(r"\d[\d,]*(?:\.\d+)?|\.\d+")


def cell_value(text: str) -> Decimal | None:
    """A cell's figure as a number: "$ 5,363" -> 5363, "(1,577)" -> -1577, "12.5 %" -> 12.5; None if none."""
    match = _CELL_NUMBER.search(text)
    if not match:
        return None
    try:
        value = Decimal(match.group(0).replace(",", ""))
    except InvalidOperation:
        return None
    negative = "(" in text[: match.start()] or text[: match.start()].strip().endswith(("-", "−", "–"))
    return -value if negative else value


_UNIT_SCALE = (("billion", 9), ("million", 6), ("thousand", 3))


def units_exponent(units: str) -> int:
    """The power of ten a table's figures are in: "(in millions)" -> 6, "(In thousands)" -> 3, else 0."""
    folded = units.casefold()
    return next((exp for word, exp in _UNIT_SCALE if word in folded), 0)


def match_number_to_cell(
    number: str | Decimal, tables: Sequence[TableRecord], *, value: Decimal | None = None, label_hint: str = ""
) -> CellMatch | None:
    """The table cell holding ``number``: its figure equal to the number as written (sign, "$" and
    thousands separators ignored, so "1,577", "1577.00" and "(1,577)" are one figure), or, given
    ``value`` (the number with its scale word applied: "$1.577 billion" -> 1577000000), equal to it in
    the table's units. Several cells holding it: the one whose row label and section share most words
    with ``label_hint`` (the answer's sentence), else the first. None when no cell holds it."""
    try:
        wanted = abs(Decimal(str(number).replace(",", "").replace("$", "").strip("() ")))
    except InvalidOperation:
        return None
    scaled = abs(value) if value is not None else None
    hint = set(re.findall(r"[a-z]{3,}", label_hint.casefold()))
    best: tuple[int, CellMatch] | None = None
    for table in tables:
        exponent = units_exponent(table.units)
        for row in table.rows:
            for cell in row.cells:
                if cell.column == 0:
                    continue
                figure = cell_value(cell.text)
                if figure is None:
                    continue
                figure = abs(figure)
                if figure != wanted and (scaled is None or not exponent or figure.scaleb(exponent) != scaled):
                    continue
                score = len(hint & set(re.findall(r"[a-z]{3,}", f"{row.label} {row.section}".casefold())))
                match = CellMatch(
                    str(number), table.page, table.title, table.units, row.label,
                    table.columns[cell.column] if cell.column < len(table.columns) else "",
                    table.periods[cell.column] if cell.column < len(table.periods) else "", cell.text, cell.box,
                )
                if best is None or score > best[0]:
                    best = (score, match)
    return best[1] if best else None


def rows_in_span(table: TableRecord, start: int, end: int) -> TableRecord:
    """The table with only the rows whose line lies in page-text ``[start, end)`` (a chunk's span)."""
    return replace(table, rows=tuple(r for r in table.rows if r.start >= start and r.end <= end))


def tables_for_sources(sessions, sources: Sequence) -> dict[str, list[TableRecord]]:
    """For each source shown to a reasoner (``pipeline.reasoning.Evidence``: label, doc_sha256, page,
    char_start, char_end), the tables of its page cut to the rows it shows, read from the registry."""
    from sqlalchemy import select

    from ingest.registry import DocumentVersion, PageRow

    wanted = {(s.doc_sha256, s.page) for s in sources}
    if not wanted:
        return {}
    with sessions() as session:
        rows = session.execute(
            select(DocumentVersion.sha256, PageRow.number, PageRow.tables)
            .join(PageRow, PageRow.version_id == DocumentVersion.id)
            .where(DocumentVersion.sha256.in_(sorted({sha for sha, _ in wanted})), PageRow.number.in_(sorted({n for _, n in wanted})))
        ).all()
    by_page = {(sha, number): [TableRecord.from_dict(t) for t in tables or []] for sha, number, tables in rows if (sha, number) in wanted}
    out: dict[str, list[TableRecord]] = {}
    for source in sources:
        cut = [rows_in_span(t, source.char_start, source.char_end) for t in by_page.get((source.doc_sha256, source.page), [])]
        cut = [t for t in cut if t.rows]
        if cut:
            out[source.label] = cut
    return out
