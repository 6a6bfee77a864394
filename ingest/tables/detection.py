"""Tables found from the words' layout on one page, and linked across pages.

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
from dataclasses import replace
from functools import lru_cache

from ingest.models import Box
from ingest.tables.records import Cell, TableRecord, TableRow, Word, fold_label

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


# -- lines and cells ---------------------------------------------------------------------------------


class _Cell(list):
    """The words of one cell; whether it is a figure, its text and box are worked out once."""

    def __init__(self, words: Iterable[Word]):
        super().__init__(words)
        texts = [w.text for w in self]
        self.figure = any(is_figure(t) for t in texts) and all(is_figure(t) or _is_affix(t) for t in texts)
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
def is_figure(text: str) -> bool:
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
    return any(is_figure(t) for t in texts) and all(is_figure(t) or _is_affix(t) for t in texts)


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
        figure = is_figure(text)
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
    if sum(1 for w in words if is_figure(w.text)) < 2 * MIN_VALUE_ROWS:
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
        if not any(_is_figure_cell(c) for c in line.cells) and fold_label(line.text) != "table of contents"
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

