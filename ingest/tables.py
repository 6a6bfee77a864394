"""Tables on a page: found from the words' layout, kept as typed records, rendered as Markdown.

A financial statement is a grid: a label at the left of each row, figures right-aligned in period
columns, a header of years or dates above them, the statement's title and units ("in millions") above
that. Flattened into text, the figures lose their columns (a model reads "5,363 4,869 5,058" and guesses
which year is which) and the rows lose their headers. This module finds such grids from the words and
their boxes alone, so the same code serves a PDF's text layer (PyMuPDF words) and a scan (Tesseract's
word boxes), and keeps each as a ``TableRecord``: every cell with its box in page coordinates, the
header rows, the statement title (nearest heading above), the units, the period of each column, and
where the table's Markdown sits in the page text.

Why words and not PyMuPDF's ``find_tables``: on the 19 FinanceBench filings its "lines" strategy takes
each shaded row band for a one-row table, and its "text" strategy cuts cells inside words ("3M Company
and Subsi" | "diaries") and glues the "$" column and the closing parenthesis to the wrong cell; it also
costs about a second a page, several times what ingesting the page costs today (docs/retrieval.md,
"Tables", has the counts and the command).

How a grid is recognised (every threshold is relative to the line height, so it carries over fonts and
scan resolutions):

- words are grouped into lines by vertical overlap, and each line into *cells*: a figure ("1,577",
  "(1,577)", "$ 5,363", "12.5 %", a dash for nil) is a cell of its own; text words closer together than
  ``CELL_GAP`` line heights are one cell;
- a *value row* is a line whose cells right of its label are all figures (at least one); a run of
  lines with at least ``MIN_VALUE_ROWS`` value rows, broken by no prose line (a text cell reaching into
  the figure columns) and no gap of more than ``MAX_ROW_GAP`` line heights, is a table;
- its *columns* are the figures' right edges clustered (statements right-align figures); a table needs
  ``MIN_COLUMNS`` figure columns or, with one, a header of periods (a table of contents has one column
  of page numbers and no header, and is not a table);
- *header rows* are the lines just above the first value row with cells over the figure columns and no
  figure but years; a header cell spanning several columns ("Years ended December 31") heads each;
- the *title* is the nearest heading above the table (a primary statement's title preferred), the
  *units* the first "(in millions ...)" / "(Millions)" / "in thousands, except per share" above or in
  the header, the *periods* each column's header when it holds a year.

A table continued on the next page without its header (same figure columns, no header rows) takes its
header, title and units from the page before (``link_continuations``).
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from functools import lru_cache
from decimal import Decimal, InvalidOperation

from ingest.models import Box

# -- tunables (in line heights unless said otherwise) ----------------------------------------------
CELL_GAP = 0.9  # text words further apart than this are two cells
MAX_ROW_GAP = 2.6  # a vertical gap larger than this (between line tops) ends a table
MIN_VALUE_ROWS = 3  # a grid with fewer rows of figures is not kept as a table
MIN_COLUMNS = 2  # figure columns needed without a period header
HEADER_LINES = 4  # header lines looked for above the first value row
TITLE_LINES = 8  # lines looked at above a table for its title and units
COLUMN_TOLERANCE = 0.7  # figures' right edges this close are one column

# A figure cell: optional currency/sign/parenthesis, digits with thousands separators, decimals,
# a closing parenthesis and/or percent; or a dash standing for nil.
_FIGURE = re.compile(r"^[(\[]?[-–−]?[$€£¥]?[(\[]?\d[\d,]*(?:\.\d+)?\)?%?\)?[*†]?$|^\.\d+%?$")
_NIL = re.compile(r"^(?:[-–—−]{1,3}|n/?a|nm)$", re.IGNORECASE)
_AFFIX = re.compile(r"^(?:[$€£¥(]|\$\(|\)|%|\)%|pts?\.?|bps|x)$", re.IGNORECASE)
_YEAR = re.compile(r"(?<!\d)(?:19|20)\d\d(?!\d)")
_YEAR_CELL = re.compile(r"^(?:fy|q[1-4]\s*)?(?:19|20)\d\d[*†]?$", re.IGNORECASE)
_UNITS = re.compile(
    r"\(\s*(?:(?:dollars|amounts|\$|shares|in\s+\$|u\.s\.\s+dollars)\s+)?(?:in\s+)?(?:millions|thousands|billions)\b[^)]*\)"
    r"|\b(?:(?:dollars|amounts|\$)\s+)?in\s+(?:millions|thousands|billions)\b(?:[^.;\n]{0,60}?except[^.;\n]{0,40})?",
    re.IGNORECASE,
)


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
        wanted = _fold(label)
        rows = [r for r in self.rows if not r.is_section]
        return next((r for r in rows if _fold(r.label) == wanted), None) or next(
            (r for r in rows if _fold(r.label).startswith(wanted)), None
        )

    def column_of(self, period: str) -> int | None:
        """The figure column whose header holds ``period`` ("2018", "December 31, 2023")."""
        wanted = _fold(period)
        for i, header in enumerate(self.columns[1:], start=1):
            if wanted and wanted in _fold(header):
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


def _fold(text: str) -> str:
    return " ".join(re.sub(r"[^\w%$.,()\- ]", " ", text.casefold()).split()).strip(" :")


def _escape(text: str) -> str:
    return " ".join(text.replace("|", "/").split())


def markdown_row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(_escape(c) for c in cells) + " |"


def separator_row(width: int) -> str:
    return "| --- |" + " ---: |" * (width - 1)


def row_markdown(row: TableRow, width: int) -> str:
    texts = [""] * width
    for c in row.cells:
        texts[c.column] = f"{texts[c.column]} {c.text}".strip() if texts[c.column] else c.text
    return markdown_row(texts)


# -- lines and cells ---------------------------------------------------------------------------------


class _Cell(list):
    """The words of one cell; whether it is a figure, its text and box are worked out once."""

    def __init__(self, words: Iterable[Word]):
        super().__init__(words)
        texts = [w.text for w in self]
        self.figure = any(_is_figure(t) for t in texts) and all(_is_figure(t) or _is_affix(t) for t in texts)
        self.text = " ".join(texts)
        self.box: Box = (min(w.x0 for w in self), min(w.y0 for w in self), max(w.x1 for w in self), max(w.y1 for w in self))


class _Line:
    """Words on one line, left to right, and their cells."""

    def __init__(self, word: Word):
        self.words = [word]
        self.top, self.bottom = word.y0, word.y1
        self.cells: list[_Cell] = []

    def add(self, word: Word) -> None:
        self.words.append(word)
        self.top, self.bottom = min(self.top, word.y0), max(self.bottom, word.y1)

    def finish(self) -> None:
        self.words.sort(key=lambda w: w.x0)
        self.y0, self.y1 = self.top, self.bottom
        self.x0, self.x1 = self.words[0].x0, max(w.x1 for w in self.words)
        self.height = statistics.median(w.y1 - w.y0 for w in self.words)
        self.text = " ".join(w.text for w in self.words)
        self.cells = _cells(self)


@lru_cache(maxsize=65536)
def _is_figure(text: str) -> bool:
    return bool(_FIGURE.match(text) or _NIL.match(text))


@lru_cache(maxsize=4096)
def _is_affix(text: str) -> bool:
    return bool(_AFFIX.match(text))


def _cell_text(words: Sequence[Word]) -> str:
    return words.text if isinstance(words, _Cell) else " ".join(w.text for w in words)


def _cell_box(words: Sequence[Word]) -> Box:
    if isinstance(words, _Cell):
        return words.box
    return (min(w.x0 for w in words), min(w.y0 for w in words), max(w.x1 for w in words), max(w.y1 for w in words))


def _is_figure_cell(words: Sequence[Word]) -> bool:
    if isinstance(words, _Cell):
        return words.figure
    texts = [w.text for w in words]
    return any(_is_figure(t) for t in texts) and all(_is_figure(t) or _is_affix(t) for t in texts)


def group_lines(words: Iterable[Word]) -> list[_Line]:
    """Words into lines: a word joins the line whose vertical extent it overlaps by half its height."""
    lines: list[_Line] = []
    for word in sorted(words, key=lambda w: ((w.y0 + w.y1) / 2, w.x0)):
        height = max(word.y1 - word.y0, 0.1)
        for line in reversed(lines[-3:]):
            overlap = min(line.bottom, word.y1) - max(line.top, word.y0)
            if overlap >= 0.5 * min(height, line.bottom - line.top):
                line.add(word)
                break
        else:
            lines.append(_Line(word))
    for line in lines:
        line.finish()
    lines.sort(key=lambda l: (l.y0, l.x0))
    return lines


def _cells(line: _Line) -> list[_Cell]:
    """The line's words as cells: figures apart (with their "$", "(", ")" and "%"), text words by gaps."""
    gap = CELL_GAP * line.height
    cells: list[list[Word]] = []
    figure_cell: list[bool] = []  # whether each cell so far holds a figure
    pending: list[Word] = []  # a "$" or "(" waiting for its figure
    for word in line.words:
        text = word.text
        figure = _is_figure(text)
        previous = cells[-1] if cells else None
        close = previous is not None and word.x0 - previous[-1].x1 <= gap
        if pending and not figure and not _is_affix(text):
            cells.append(pending)  # a "$" that no figure followed is text after all
            figure_cell.append(False)
            pending = []
            previous, close = cells[-1], True
        if text in ("$", "(", "$(", "€", "£", "¥") and not pending:
            pending = [word]
            continue
        if figure:
            if pending:
                cells.append([*pending, word])
                figure_cell.append(True)
                pending = []
            elif previous is not None and close and not figure_cell[-1] and word.x0 - previous[-1].x1 <= 0.45 * line.height:
                previous.append(word)  # a number inside a label ("Note 5", "due 2027")
            else:
                cells.append([word])
                figure_cell.append(True)
            continue
        if _is_affix(text) and previous is not None and figure_cell[-1] and word.x0 - previous[-1].x1 <= gap:
            previous.append(word)  # ")" or "%" after its figure
            continue
        if previous is not None and close and not figure_cell[-1]:
            previous.append(word)
        else:
            cells.append([word])
            figure_cell.append(False)
    if pending:
        cells.append(pending)
    return [_Cell(c) for c in cells]


# -- tables ------------------------------------------------------------------------------------------


def _label_and_figures(line: _Line) -> tuple[list[list[Word]], list[list[Word]]]:
    """The line's leading text cells (its label) and the rest."""
    cells = line.cells
    i = 0
    while i < len(cells) and not _is_figure_cell(cells[i]):
        i += 1
    return cells[:i], cells[i:]


def _value_row(line: _Line) -> bool:
    label, rest = _label_and_figures(line)
    return bool(rest) and all(_is_figure_cell(c) for c in rest) and not all(
        _YEAR_CELL.match(_cell_text(c)) for c in rest
    )


def _candidates(lines: list[_Line]) -> list[tuple[int, int]]:
    """(first, last + 1) line ranges that hold runs of value rows."""
    runs: list[tuple[int, int]] = []
    i = 0
    while i < len(lines):
        if not _value_row(lines[i]):
            i += 1
            continue
        start = end = i
        figures_left = min(c[0].x0 for c in _label_and_figures(lines[i])[1])
        j = i + 1
        while j < len(lines):
            line, previous = lines[j], lines[j - 1]
            height = max(line.height, previous.height)
            if line.y0 - previous.y0 > MAX_ROW_GAP * height + height:
                break
            if _value_row(line):
                label, figures = _label_and_figures(line)
                if label and _cell_box(label[-1])[2] > figures_left + height:
                    break  # a sentence ending in a number ("... part of this statement. 58")
                figures_left = min(figures_left, min(c[0].x0 for c in figures))
                end = j
            elif _prose(line, figures_left):
                break
            j += 1
        runs.append((start, end + 1))
        i = end + 1
    return runs


def _aligned(line: _Line, columns: list[tuple[float, float, float]]) -> bool:
    """Every figure of a value row lies in one of the table's columns."""
    figures = _label_and_figures(line)[1]
    return bool(figures) and all(
        any(min(right, _cell_box(c)[2]) - max(left, _cell_box(c)[0]) > 0 for left, right, _ in columns) for c in figures
    )


def _section_line(line: _Line, label_right: float) -> bool:
    """A short label-only line left of the figure columns: a section row ("Current assets:")."""
    return not _label_and_figures(line)[1] and line.x1 <= label_right and len(line.words) <= 10 and not _UNITS.search(
        line.text
    )


def _prose(line: _Line, figures_left: float) -> bool:
    """A text line that reaches into the figure columns: a paragraph, not a label or a section row."""
    label, rest = _label_and_figures(line)
    if rest:
        return not all(_is_figure_cell(c) for c in rest)
    return line.x1 > figures_left + line.height and len(line.words) > 6


def _columns(value_lines: list[_Line], height: float) -> list[tuple[float, float, float]]:
    """Figure columns as (left, right, right-edge centre), clustered on the figures' right edges."""
    edges: list[tuple[float, float]] = []  # (x1, x0) of each figure cell
    for line in value_lines:
        for cell in _label_and_figures(line)[1]:
            edges.append((cell[-1].x1, cell[0].x0))
    edges.sort()
    tolerance = COLUMN_TOLERANCE * height
    clusters: list[list[tuple[float, float]]] = []
    for edge in edges:
        if clusters and edge[0] - clusters[-1][-1][0] <= tolerance:
            clusters[-1].append(edge)
        else:
            clusters.append([edge])
    columns = [(min(e[1] for e in c), max(e[0] for e in c), statistics.median(e[0] for e in c)) for c in clusters]
    # Overlapping clusters (figures centred, not right-aligned) are one column.
    merged: list[tuple[float, float, float]] = []
    for col in columns:
        if merged and col[0] < merged[-1][1] - 0.5 * height:
            left, right, _ = merged[-1]
            merged[-1] = (min(left, col[0]), max(right, col[1]), max(right, col[1]))
        else:
            merged.append(col)
    # A column of stray marks (a footnote number on two rows of twenty) is not a column.
    minimum = max(1, round(0.15 * len(value_lines)))
    counts = [sum(1 for line in value_lines for cell in _label_and_figures(line)[1] if left - 1 <= cell[-1].x1 <= right + 1)
              for left, right, _ in merged]
    return [col for col, n in zip(merged, counts) if n >= minimum] or merged


def _column_of(box: Box, columns: list[tuple[float, float, float]]) -> int:
    """1-based figure column whose span the box overlaps most (nearest by right edge otherwise)."""
    best, best_overlap = 0, 0.0
    for i, (left, right, _) in enumerate(columns, start=1):
        overlap = min(right, box[2]) - max(left, box[0])
        if overlap > best_overlap:
            best, best_overlap = i, overlap
    if best:
        return best
    return min(range(len(columns)), key=lambda i: abs(columns[i][2] - box[2])) + 1


def _is_header_line(line: _Line, label_right: float, height: float) -> bool:
    if any(_is_figure_cell(c) and not _YEAR_CELL.match(_cell_text(c)) for c in line.cells):
        return False  # figures other than years: a value row, not a header
    over = [c for c in line.cells if _cell_box(c)[2] > label_right]
    if not over:
        return bool(_UNITS.search(line.text)) and len(line.words) <= 12
    if any(_cell_box(c)[0] < label_right - 2 * height for c in over):
        return False  # text running from the labels into the columns: a centred title, a sentence
    return all(len(c) <= 8 for c in over)


def _heads(line: _Line, columns: list[tuple[float, float, float]], label_right: float, height: float) -> list[tuple[list[Word], list[int]]]:
    """The header cells of one line, each with the figure columns it heads (label-side cells head column 0).

    A cell over a column heads it. A line with one cell, centred over the columns ("Year Ended
    December 31,"), heads them all; wide cells ("Three Months Ended" | "Six Months Ended") also head
    the columns beside them that no cell of the line is over."""
    # Units ("(dollars in millions)") head the labels wherever they are set.
    units = [c for c in line.cells if _UNITS.fullmatch(_cell_text(c).strip())]
    over = [c for c in line.cells if _cell_box(c)[2] > label_right and c not in units]
    out: list[tuple[list[Word], list[int]]] = [(c, [0]) for c in line.cells if _cell_box(c)[2] <= label_right or c in units]
    if not over:
        return out
    targets: dict[int, list[int]] = {i: [] for i in range(len(over))}
    left, right = min(c[0] for c in columns), max(c[1] for c in columns)
    if len(over) == 1 and len(columns) > 1:
        box = _cell_box(over[0])
        if abs((box[0] + box[2]) / 2 - (left + right) / 2) <= 0.2 * (right - left):
            return [*out, (over[0], list(range(1, len(columns) + 1)))]
    unassigned = []
    for j, (c_left, c_right, _) in enumerate(columns, start=1):
        overlaps = [(min(c_right, _cell_box(c)[2]) - max(c_left, _cell_box(c)[0]), i) for i, c in enumerate(over)]
        best = max(overlaps)
        if best[0] > 0:
            targets[best[1]].append(j)
        else:
            unassigned.append(j)
    widths = [c[1] - c[0] for c in columns]
    wide = [i for i, c in enumerate(over) if _cell_box(c)[2] - _cell_box(c)[0] >= 1.5 * statistics.median(widths)]
    if len(wide) >= 2:
        for j in unassigned:
            centre = (columns[j - 1][0] + columns[j - 1][1]) / 2
            i = min(wide, key=lambda i: abs((_cell_box(over[i])[0] + _cell_box(over[i])[2]) / 2 - centre))
            targets[i].append(j)
    return [*out, *((over[i], sorted(cols)) for i, cols in targets.items() if cols)]


def detect_tables(words: Iterable[Word], page: int, source: str = "pymupdf") -> list[TableRecord]:
    """The tables of one page, from its words (PyMuPDF's or Tesseract's). Cells carry no page-text
    offsets yet (``layout_page`` gives them)."""
    words = [w for w in words if w.text.strip()]
    # Most pages are prose: without figures enough for a grid, nothing below is worth doing.
    if sum(1 for w in words if _is_figure(w.text)) < 2 * MIN_VALUE_ROWS:
        return []
    lines = group_lines(words)
    records: list[TableRecord] = []
    taken_until = -1  # lines already used by a table above
    for start, end in _candidates(lines):
        body = lines[start:end]
        value_lines = [l for l in body if _value_row(l)]
        if len(value_lines) < MIN_VALUE_ROWS:
            continue
        height = statistics.median(l.height for l in value_lines)
        columns = _columns(value_lines, height)
        label_right = min(c[0] for c in columns) - 0.2 * height
        # Value rows at either end whose figures sit in no column (a page number under the table) are not rows.
        while end > start and (not _value_row(lines[end - 1]) or not _aligned(lines[end - 1], columns)):
            end -= 1
        while start < end and not _aligned(lines[start], columns):
            start += 1
        body = lines[start:end]
        value_lines = [l for l in body if _value_row(l)]
        if len(value_lines) < MIN_VALUE_ROWS:
            continue
        # Section rows just above the first value row ("Current assets") belong to the body.
        while start - 1 > taken_until and _section_line(lines[start - 1], label_right) and lines[start].y0 - lines[start - 1].y1 <= 2.0 * height:
            start -= 1
        body = lines[start:end]
        # Header lines: just above the body, over the columns, no figures but years.
        first = start
        header_lines: list[_Line] = []
        k = start - 1
        while k > taken_until and len(header_lines) < HEADER_LINES:
            line = lines[k]
            below = header_lines[0] if header_lines else lines[first]
            if below.y0 - line.y1 > 2.0 * height or not _is_header_line(line, label_right, height):
                break
            header_lines.insert(0, line)
            k -= 1
        # Label-only lines between the header and the first value row are the body's first section rows.
        if not header_lines and len(columns) < MIN_COLUMNS:
            continue
        periods_seen = any(_YEAR.search(_cell_text(l.words)) for l in header_lines)
        if len(columns) < MIN_COLUMNS and not periods_seen:
            continue  # one column of numbers without periods: a table of contents, a list
        top = k  # lines above the table: title and units
        above = lines[max(taken_until + 1, top - TITLE_LINES + 1) : top + 1]
        record = _record(page, len(records), body, header_lines, above, columns, label_right, height, source)
        if record is not None:
            if records and continues(record, records[-1]):  # the same grid, broken by a gap or a note line
                record = _inherit(record, records[-1])
            records.append(record)
            taken_until = end - 1
    return records


def _record(
    page: int, index: int, body: list[_Line], header_lines: list[_Line], above: list[_Line],
    columns: list[tuple[float, float, float]], label_right: float, height: float, source: str,
) -> TableRecord | None:
    width = len(columns) + 1
    # Header: each header line's cells, placed on the columns they head.
    header_rows: list[tuple[Cell, ...]] = []
    heads: list[list[str]] = [[] for _ in range(width)]
    for line in header_lines:
        row: list[Cell] = []
        for words, targets in _heads(line, columns, label_right, height):
            box = _cell_box(words)
            text = _cell_text(words)
            for column in targets:
                row.append(Cell(text, box, column))
                heads[column].append(text)
        header_rows.append(tuple(row))
    names = tuple(" ".join(parts) for parts in heads)
    # Body rows; a label-only line followed by a line whose label continues it in lower case is one row.
    rows: list[TableRow] = []
    section = ""
    pending: list[_Line] = []
    for line in body:
        label_cells, figures = _label_and_figures(line)
        if not figures:
            text = line.text
            if pending and _continues(text):
                pending.append(line)
                continue
            if pending:
                rows.append(_row(pending, [], columns, section))
                section = rows[-1].label if rows[-1].is_section else section
            pending = [line]
            continue
        first_label = _cell_text(label_cells[0]) if label_cells else ""
        if pending and (_continues(first_label) or not label_cells):
            rows.append(_row([*pending, line], figures, columns, section))
        else:
            if pending:
                rows.append(_row(pending, [], columns, section))
                section = rows[-1].label if rows[-1].is_section else section
            rows.append(_row([line], figures, columns, section))
        pending = []
    if pending:
        rows.append(_row(pending, [], columns, section))
    # A trailing label-only row (a footnote, the next heading) is not part of the table.
    while rows and rows[-1].is_section:
        rows.pop()
    if sum(not r.is_section for r in rows) < MIN_VALUE_ROWS:
        return None
    title, units = _title_and_units(above, header_lines)
    periods = tuple(n if _YEAR.search(n) else "" for n in names)
    boxes = [r.box for r in rows] + [c.box for hr in header_rows for c in hr]
    box = (min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes))
    return TableRecord(
        page=page, index=index, box=box, title=title, units=units, columns=names, periods=periods,
        header_rows=tuple(header_rows), rows=tuple(rows), source=source,
        column_edges=tuple(round(c[2], 1) for c in columns),
    )


def _continues(text: str) -> bool:
    return bool(text) and (text[0].islower() or text[0] in "(&")


def _row(lines: list[_Line], figures: list[list[Word]], columns, section: str) -> TableRow:
    label_words = [w for line in lines for cells in (_label_and_figures(line)[0],) for c in cells for w in c]
    cells: list[Cell] = []
    if label_words:
        cells.append(Cell(_cell_text(label_words), _cell_box(label_words), 0))
    for words in figures:
        cells.append(Cell(_cell_text(words), _cell_box(words), _column_of(_cell_box(words), columns)))
    every = [w for line in lines for w in line.words]
    return TableRow(_cell_text(label_words), tuple(cells), _cell_box(every), section)


def _title_and_units(above: list[_Line], header_lines: list[_Line]) -> tuple[str, str]:
    from ingest.structure import heading_level, statement_kind

    units = ""
    for line in [*reversed(header_lines), *reversed(above)]:
        match = _UNITS.search(line.text)
        if match:
            units = match.group(0).strip()
            break
    # Title candidates: lines without figures, not the running "Table of Contents" link of EDGAR filings.
    texts = [
        line.text for line in above
        if not any(_is_figure_cell(c) for c in line.cells) and _fold(line.text) != "table of contents"
    ]
    statement = next((t for t in reversed(texts) if statement_kind(_UNITS.sub("", t).strip(" ,;") or t)), None)
    if statement:
        return statement, units
    heading = next((t for t in reversed(texts) if heading_level(t) is not None and not _UNITS.fullmatch(t.strip())), "")
    return heading, units


# -- continuations across pages -----------------------------------------------------------------------


def continues(table: TableRecord, previous: TableRecord) -> bool:
    """``table`` (without a header of its own) carries on ``previous``: the same figure columns."""
    if table.header_rows or len(table.column_edges) != len(previous.column_edges):
        return False
    return all(abs(a - b) <= 6.0 for a, b in zip(table.column_edges, previous.column_edges))


def link_continuations(tables_by_page: Sequence[list[TableRecord]]) -> list[list[TableRecord]]:
    """Each page's tables, a header-less first table that continues the previous page's last table
    given that table's header, title and units (``continued_from`` says which page)."""
    out: list[list[TableRecord]] = []
    for index, tables in enumerate(tables_by_page):
        tables = list(tables)
        previous = out[index - 1][-1] if index and out[index - 1] else None
        if tables and previous is not None and continues(tables[0], previous):
            tables[0] = _inherit(tables[0], previous)
        out.append(tables)
    return out


def link_pages(pages: Sequence) -> None:
    """``link_continuations`` over a document's pages (``PageText``), setting each page's tables."""
    linked = link_continuations([list(page.tables) for page in pages])
    for page, tables in zip(pages, linked):
        page.tables = tables


def _inherit(table: TableRecord, previous: TableRecord) -> TableRecord:
    """``table`` with the header, title and units of the table it continues."""
    return replace(
        table, title=table.title if _statement_like(table.title) else previous.title or table.title,
        units=table.units or previous.units, columns=previous.columns, periods=previous.periods,
        continued_from=previous.continued_from or previous.page,
    )


def _statement_like(title: str) -> bool:
    from ingest.structure import statement_kind

    return bool(title) and statement_kind(title) is not None


# -- the page text ----------------------------------------------------------------------------------


def _inside(box: Box, table_box: Box) -> bool:
    x, y = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    return table_box[0] - 1 <= x <= table_box[2] + 1 and table_box[1] - 1 <= y <= table_box[3] + 1


def _render(table: TableRecord, offset: int) -> tuple[str, TableRecord, list[tuple[int, int, Box]]]:
    """The table as Markdown starting at page-text ``offset``: the header row and separator (only when
    the header is on this page), then one line per body row. Returns the text, the record with every
    offset set, and (start, end, box) of each cell, the spans the page keeps."""
    width = len(table.columns)
    lines: list[str] = []
    spans: list[tuple[int, int, Box]] = []
    cursor = offset

    def line_of(texts: list[str], boxes: list[Box | None]) -> tuple[str, list[tuple[int, int]]]:
        parts, where, pos = [], [], 2
        for i, text in enumerate(texts):
            text = _escape(text)
            where.append((pos, pos + len(text)))
            parts.append(text)
            pos += len(text) + 3
        return "| " + " | ".join(parts) + " |", where

    header_rows = table.header_rows
    if header_rows:
        boxes: list[list[Box]] = [[] for _ in range(width)]
        for row in header_rows:
            for cell in row:
                boxes[cell.column].append(cell.box)
        text, where = line_of(list(table.columns), [])
        for (s0, e0), bs in zip(where, boxes):
            if bs and e0 > s0:
                spans.append((cursor + s0, cursor + e0, _union(bs)))
        lines += [text, separator_row(width)]
        cursor += len(text) + 1 + len(lines[-1]) + 1
    body_start = cursor
    rows: list[TableRow] = []
    for row in table.rows:
        texts = [""] * width
        members: list[list[Cell]] = [[] for _ in range(width)]
        for cell in row.cells:
            texts[cell.column] = f"{texts[cell.column]} {cell.text}".strip()
            members[cell.column].append(cell)
        text, where = line_of(texts, [])
        cells: list[Cell] = []
        for (s0, e0), group in zip(where, members):
            if group:
                box = _union([c.box for c in group])
                cells.append(Cell(_escape(" ".join(c.text for c in group)), box, group[0].column, cursor + s0, cursor + e0))
                spans.append((cursor + s0, cursor + e0, box))
        rows.append(replace(row, cells=tuple(cells), start=cursor, end=cursor + len(text)))
        lines.append(text)
        cursor += len(text) + 1
    rendered = "\n".join(lines)
    record = replace(table, rows=tuple(rows), start=offset, end=offset + len(rendered), body_start=body_start)
    return rendered, record, spans


def _union(boxes: Sequence[Box]) -> Box:
    return (min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes))


def layout_page(
    blocks: Sequence[tuple], words: Sequence[tuple], tables: Sequence[TableRecord]
) -> tuple[str, list[tuple[int, int, Box]], list[TableRecord]]:
    """The page text with each table's region as its Markdown, instead of its words flattened.

    ``blocks`` and ``words`` are PyMuPDF's ("blocks" sorted, "words"), ``tables`` what ``detect_tables``
    found on them. Blocks outside every table are kept as they are, one span each; a block partly in a
    table keeps its lines outside it; each table is written where its first block was. Returns the
    text, the (start, end, box) spans (a block, or a table cell) and the tables with their offsets."""
    lines_of: dict[int, dict[int, list[tuple]]] = {}
    for w in words:
        lines_of.setdefault(w[5], {}).setdefault(w[6], []).append(w)
    pieces: list[tuple[str, object]] = []  # ("text", (text, box)) or ("table", index)
    placed: set[int] = set()
    for block in blocks:
        x0, y0, x1, y1, text, number, kind = block[:7]
        if kind != 0:
            continue
        box = (x0, y0, x1, y1)
        touching = [i for i, t in enumerate(tables) if _overlaps(box, t.box)]
        if not touching:
            text = "\n".join(line.strip() for line in text.strip().splitlines() if line.strip())
            if text:
                pieces.append(("text", (text, box)))
            continue
        kept: list[tuple[str, Box]] = []
        for line_words in lines_of.get(number, {}).values():
            line_box = (min(w[0] for w in line_words), min(w[1] for w in line_words),
                        max(w[2] for w in line_words), max(w[3] for w in line_words))
            inside = next((i for i in touching if _inside(line_box, tables[i].box)), None)
            if inside is None:
                kept.append((" ".join(w[4] for w in line_words), line_box))
            elif inside not in placed:
                if kept:
                    pieces.append(("text", ("\n".join(t for t, _ in kept), _union([b for _, b in kept]))))
                    kept = []
                pieces.append(("table", inside))
                placed.add(inside)
        if kept:
            pieces.append(("text", ("\n".join(t for t, _ in kept), _union([b for _, b in kept]))))
    for i in range(len(tables)):  # a table none of whose lines was found in a block: at the end
        if i not in placed:
            pieces.append(("table", i))
    parts: list[str] = []
    spans: list[tuple[int, int, Box]] = []
    records: list[TableRecord] = list(tables)
    cursor = 0
    for kind, value in pieces:
        if parts:
            cursor += 2  # the "\n\n" between paragraphs
        if kind == "text":
            text, box = value
            spans.append((cursor, cursor + len(text), box))
        else:
            text, records[value], cell_spans = _render(tables[value], cursor)
            spans += cell_spans
        parts.append(text)
        cursor += len(text)
    return "\n\n".join(parts), spans, records


def page_tables(page, textpage, blocks: Sequence[tuple], number: int) -> tuple[str, list[tuple[int, int, Box]], list[TableRecord]] | None:
    """A PyMuPDF page's text laid out with its tables (``layout_page``), or None when it has none (the
    caller then builds the page text as before)."""
    words = page.get_text("words", textpage=textpage)
    tables = detect_tables((Word(*w[:5]) for w in words), number, source="pymupdf")
    if not tables:
        return None
    return layout_page(blocks, words, tables)


def ocr_page_tables(page):
    """A page read by OCR (``PageText`` with one span a word) with its tables found from Tesseract's word
    boxes and its text laid out like a text layer's: the table's words give way to its Markdown, written
    where its first word was. Where the words carry figures but no grid (a skewed or sparse scan), the
    page stays text and its notes say so."""
    spans = [s for s in page.spans if s.method is None and s.end > s.start]
    words = [Word(*s.box, page.text[s.start : s.end]) for s in spans]
    tables = detect_tables(words, page.number, source="tesseract")
    if not tables:
        if sum(1 for w in words if _is_figure(w.text)) >= 2 * MIN_VALUE_ROWS:
            page.notes.append("tables: figures found, but no grid in the OCR word boxes; the page stays text")
        return page
    owner = [next((i for i, t in enumerate(tables) if _inside(s.box, t.box)), None) for s in spans]
    confidences = {i: [s.confidence for s, o in zip(spans, owner) if o == i and s.confidence is not None] for i in range(len(tables))}
    parts: list[str] = []
    new_spans: list = []
    records = list(tables)
    cursor, previous_end, placed, after_table = 0, 0, set(), False
    from ingest.models import TextSpan

    for span, index in zip(spans, owner):
        if index is None:
            separator = "\n\n" if after_table else page.text[previous_end : span.start] if parts else ""
            parts.append(separator)
            cursor += len(separator)
            word = page.text[span.start : span.end]
            new_spans.append(replace(span, start=cursor, end=cursor + len(word)))
            parts.append(word)
            cursor += len(word)
            after_table = False
        elif index not in placed:
            separator = "\n\n" if parts else ""
            parts.append(separator)
            cursor += len(separator)
            text, records[index], cell_spans = _render(tables[index], cursor)
            values = confidences[index]
            confidence = round(sum(values) / len(values), 4) if values else None
            new_spans += [TextSpan(s0, e0, box, confidence) for s0, e0, box in cell_spans]
            parts.append(text)
            cursor += len(text)
            placed.add(index)
            after_table = True
        previous_end = span.end
    return replace(page, text="".join(parts), spans=new_spans, tables=records)


def _overlaps(a: Box, b: Box) -> bool:
    return min(a[2], b[2]) > max(a[0], b[0]) and min(a[3], b[3]) > max(a[1], b[1])


# -- numbers to cells ----------------------------------------------------------------------------------


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


# -- tables for a reader -----------------------------------------------------------------------------


def split_context(context: str) -> tuple[str, str]:
    """A chunk's context as (where it is, the Markdown header row of its table or "")."""
    where, _, header = context.partition("\n")
    return (where, header) if header.startswith("| ") else (context, "")


def as_table(context: str, text: str) -> str | None:
    """A table chunk as the small Markdown table it is (header row, separator, its rows); None for a
    chunk of text. Its context says where it is; ``text`` is its rows exactly as the page text has them."""
    _, header = split_context(context)
    if not header or not text.lstrip().startswith("| "):
        return None
    width = header.count(" | ") + 1
    return "\n".join([header, separator_row(width), text])
