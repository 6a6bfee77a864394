"""A page's text with each table's region written as its Markdown, instead of its words flattened.

The header row and separator (when the header is printed on this page), then one line per body row, one
span per cell with the cell's box; the text outside the tables is kept as the reader gave it. The
flattened words of a table's region are gone, so its numbers are indexed once. Serves PyMuPDF's text
layer (``page_tables``, from its blocks and words) and a page read by OCR (``ocr_page_tables``, from
Tesseract's word boxes).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from ingest.models import Box
from ingest.tables.detection import MIN_VALUE_ROWS, detect_tables, is_figure
from ingest.tables.records import Cell, TableRecord, TableRow, Word, escape_cell, separator_row


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
            text = escape_cell(text)
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
                cells.append(Cell(escape_cell(" ".join(c.text for c in group)), box, group[0].column, cursor + s0, cursor + e0))
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
    # Most pages are prose: too few figures for a grid, so no Word is built (detect_tables would say none).
    if sum(1 for w in words if is_figure(w[4])) < 2 * MIN_VALUE_ROWS:
        return None
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
        if sum(1 for w in words if is_figure(w.text)) >= 2 * MIN_VALUE_ROWS:
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

