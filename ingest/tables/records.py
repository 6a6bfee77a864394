"""Tables as typed records, and their Markdown: what the rest of Docket reads of a table.

A ``TableRecord`` is one table found on one page (``ingest.tables.detection``): every cell with its box in
page coordinates, the header rows, the statement title, the units, the period of each column, and where
the table's Markdown sits in the page text (``ingest.tables.layout``). Records are stored as JSON on the
page row (``to_dict`` / ``from_dict``). A table chunk is shown to a reader as the small Markdown table it
is (``as_table``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from ingest.models import Box


@dataclass(frozen=True)
class Word:
    """A word and its box in page coordinates (PDF points, origin top-left)."""

    x0: float
    y0: float
    x1: float
    y1: float
    text: str


@dataclass(frozen=True)
class Cell:
    text: str
    box: Box
    column: int  # 0 = the row label; 1.. = the figure columns, left to right
    # Offsets of the cell's text in the page text, [start, end); -1 until the page text is laid out.
    start: int = -1
    end: int = -1


@dataclass(frozen=True)
class TableRow:
    """One row of a table's body: its label, its cells by column, the section row in force above it."""

    label: str
    cells: tuple[Cell, ...]  # the label cell (if any) and the figures, in column order
    box: Box
    section: str = ""  # the last label-only row above ("Current assets:", "Cash Flows from Investing Activities")
    start: int = -1  # the row's line in the page text, [start, end)
    end: int = -1

    @property
    def is_section(self) -> bool:
        return all(c.column == 0 for c in self.cells)

    def value(self, column: int) -> Cell | None:
        return next((c for c in self.cells if c.column == column), None)


@dataclass(frozen=True)
class TableRecord:
    """A table as found on one page. ``columns[0]`` heads the labels ("(Millions)"), ``columns[i]``
    figure column i; ``periods[i]`` is column i's header when it names a period (holds a year)."""

    page: int
    index: int  # its order on the page
    box: Box
    title: str
    units: str
    columns: tuple[str, ...]
    periods: tuple[str, ...]
    header_rows: tuple[tuple[Cell, ...], ...]
    rows: tuple[TableRow, ...]
    source: str  # how the words were read: "pymupdf" (text layer) or "tesseract" (word boxes of a scan)
    continued_from: int | None = None  # the page whose table this one continues (header taken from there)
    # Where the table's Markdown sits in the page text: [start, end), and where its body rows begin.
    start: int = -1
    end: int = -1
    body_start: int = -1
    column_edges: tuple[float, ...] = ()  # right edge of each figure column (matching continuations)

    @property
    def header_markdown(self) -> str:
        """The column headers as one Markdown header row (``| (Millions) | 2018 | 2017 |``)."""
        return markdown_row(self.columns)

    def rows_markdown(self, rows: Sequence[TableRow] | None = None) -> str:
        return "\n".join(row_markdown(r, len(self.columns)) for r in (self.rows if rows is None else rows))

    def markdown(self, rows: Sequence[TableRow] | None = None) -> str:
        """A small Markdown table: header, separator, the given rows (all by default)."""
        return "\n".join([self.header_markdown, separator_row(len(self.columns)), self.rows_markdown(rows)])

    def find_row(self, label: str) -> TableRow | None:
        """The first row whose label is ``label`` (case and spacing ignored), else one that starts with it."""
        wanted = fold_label(label)
        rows = [r for r in self.rows if not r.is_section]
        return next((r for r in rows if fold_label(r.label) == wanted), None) or next(
            (r for r in rows if fold_label(r.label).startswith(wanted)), None
        )

    def column_of(self, period: str) -> int | None:
        """The figure column whose header holds ``period`` ("2018", "December 31, 2023")."""
        wanted = fold_label(period)
        for i, header in enumerate(self.columns[1:], start=1):
            if wanted and wanted in fold_label(header):
                return i
        return None

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> TableRecord:
        def cell(c: dict) -> Cell:
            return Cell(c["text"], tuple(c["box"]), c["column"], c.get("start", -1), c.get("end", -1))

        rows = tuple(
            TableRow(r["label"], tuple(cell(c) for c in r["cells"]), tuple(r["box"]), r.get("section", ""),
                     r.get("start", -1), r.get("end", -1))
            for r in data["rows"]
        )
        return cls(
            page=data["page"], index=data["index"], box=tuple(data["box"]), title=data["title"], units=data["units"],
            columns=tuple(data["columns"]), periods=tuple(data["periods"]),
            header_rows=tuple(tuple(cell(c) for c in hr) for hr in data["header_rows"]), rows=rows,
            source=data["source"], continued_from=data.get("continued_from"), start=data.get("start", -1),
            end=data.get("end", -1), body_start=data.get("body_start", -1),
            column_edges=tuple(data.get("column_edges", ())),
        )



def fold_label(text: str) -> str:
    """A label or header folded for comparison: case, punctuation but ``%$.,()-`` and spacing ignored."""
    return " ".join(re.sub(r"[^\w%$.,()\- ]", " ", text.casefold()).split()).strip(" :")


def escape_cell(text: str) -> str:
    """A cell's text on one Markdown line: a "|" would end the cell, whitespace runs are one space."""
    return " ".join(text.replace("|", "/").split())


def markdown_row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(escape_cell(c) for c in cells) + " |"


def separator_row(width: int) -> str:
    return "| --- |" + " ---: |" * (width - 1)


def row_markdown(row: TableRow, width: int) -> str:
    texts = [""] * width
    for c in row.cells:
        texts[c.column] = f"{texts[c.column]} {c.text}".strip() if texts[c.column] else c.text
    return markdown_row(texts)

# -- tables for a reader -----------------------------------------------------------------------------


def split_context(context: str) -> tuple[str, str]:
    """A chunk's context as (where it is, the Markdown header row of its table or "")."""
    where, _, header = context.partition("\n")
    return (where, header) if header.startswith("| ") else (context, "")


def as_table(context: str, text: str) -> str | None:
    """A table chunk as the small Markdown table it is (header row, separator, its rows); None for a
    chunk of text, and for a block that holds its table's header rows itself (the table as printed).
    Its context says where it is; ``text`` is its rows exactly as the page text has them, after any
    lines above the table the chunk took in (the table's title), which stay above the header."""
    _, header = split_context(context)
    if not header:
        return None
    lines = text.split("\n")
    first = next((i for i, line in enumerate(lines) if line.startswith("| ")), None)
    if first is None:
        return None
    width = header.count(" | ") + 1
    return "\n".join([*lines[:first], header, separator_row(width), *lines[first:]])
