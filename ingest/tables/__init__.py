"""Tables on a page: found from the words' layout, kept as typed records, rendered as Markdown.

One job a module:

- ``records``: ``Word``, ``Cell``, ``TableRow``, ``TableRecord`` (stored on the page row as JSON), their
  Markdown, and a table chunk as the small table a reader is shown (``as_table``, ``split_context``);
- ``detection``: tables from the words and their boxes (PyMuPDF's or Tesseract's), ``detect_tables``;
  a header-less table continuing the one on the page before (``link_continuations``, ``link_pages``);
- ``layout``: the page text with each table's region as its Markdown (``layout_page``, ``page_tables``
  for a text layer, ``ocr_page_tables`` for a scan);
- ``matching``: a number of an answer to the cell that holds it (``match_number_to_cell``, ``CellMatch``,
  ``cell_value``, ``units_exponent``) and the tables of the sources shown (``tables_for_sources``).

The names below are importable from ``ingest.tables`` as before the split.
"""

from ingest.tables.detection import (
    CELL_GAP, COLUMN_TOLERANCE, HEADER_LINES, MAX_ROW_GAP, MIN_COLUMNS, MIN_VALUE_ROWS, TITLE_LINES,
    continues, detect_tables, group_lines, is_figure, link_continuations, link_pages,
)
from ingest.tables.layout import layout_page, ocr_page_tables, page_tables
from ingest.tables.matching import CellMatch, cell_value, match_number_to_cell, rows_in_span, tables_for_sources, units_exponent
from ingest.tables.records import (
    Cell, TableRecord, TableRow, Word, as_table, escape_cell, fold_label, markdown_row, row_markdown, separator_row,
    split_context,
)

__all__ = [
    "CELL_GAP", "COLUMN_TOLERANCE", "HEADER_LINES", "MAX_ROW_GAP", "MIN_COLUMNS", "MIN_VALUE_ROWS", "TITLE_LINES",
    "Cell", "CellMatch", "TableRecord", "TableRow", "Word", "as_table", "cell_value", "continues", "detect_tables",
    "escape_cell", "fold_label", "group_lines", "is_figure", "layout_page", "link_continuations", "link_pages",
    "markdown_row", "match_number_to_cell", "ocr_page_tables", "page_tables", "row_markdown", "rows_in_span",
    "separator_row", "split_context", "tables_for_sources", "units_exponent",
]
