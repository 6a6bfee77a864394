"""Tables (issue 18): statements found on born-digital pages, kept as records, chunked with their headers,
shown to the model as tables, and a number of an answer matched to its cell and box.

Two kinds of input: a two-page balance sheet this test draws with PyMuPDF (so it runs without
../shared), and real filings from ../shared/eval/financebench (``shared_eval``). Every check reads
the PDF independently (PyMuPDF words in the cell's box) or goes through the real encoder, SQLite and
FAISS.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pymupdf
import pytest

from conftest import shared_eval_or_skip
from ingest.chunking import chunk_document
from ingest.config import ChunkingSettings, EmbeddingSettings, OcrSettings
from ingest.embedding import Encoder
from ingest.extract import read_document
from ingest.registry import PageRow
from ingest.store import DocumentStore
from ingest.structure import statement_kind
from ingest.tables import TableRecord, as_table, cell_value, match_number_to_cell, tables_for_sources
from pipeline.grounding import check_grounding
from pipeline.llm.prompt import render_source
from pipeline.reasoning import Evidence

UNITS = "(in millions, except per share data)"
# (label, 2023, 2022); a label alone is a section row. Page 1 ends inside the liabilities; page 2 goes on
# without the header, as statements printed over two pages do.
PAGE_ONE = [
    ("Assets", None, None),
    ("Current assets:", None, None),
    ("Cash and cash equivalents", "$ 1,234", "$ 1,100"),
    ("Accounts receivable, net", "2,310", "2,045"),
    ("Inventories", "3,456", "3,120"),
    ("Total current assets", "7,000", "6,265"),
    ("Property and equipment, net", "2,876", "2,835"),
    ("Total assets", "$ 9,876", "$ 9,100"),
    ("Liabilities and shareholders' equity", None, None),
    ("Current liabilities:", None, None),
    ("Accounts payable", "1,987", "1,754"),
    ("Accrued liabilities", "612", "588"),
]
PAGE_TWO = [
    ("Long-term debt", "3,210", "3,300"),
    ("Total liabilities", "5,809", "5,642"),
    ("Common stock and additional paid-in capital", "1,500", "1,450"),
    ("Retained earnings", "2,567", "2,008"),
    ("Total shareholders' equity", "4,067", "3,458"),
    ("Total liabilities and shareholders' equity", "$ 9,876", "$ 9,100"),
]
COLUMNS = (430.0, 530.0)  # right edges of the two figure columns


def _right(page, x1: float, y: float, text: str, size: float = 9) -> None:
    page.insert_text((x1 - pymupdf.get_text_length(text, fontsize=size), y), text, fontsize=size)


def _rows(page, rows, y: float) -> None:
    for label, current, prior in rows:
        indent = 0 if current is None else 10
        page.insert_text((50 + indent, y), label, fontsize=9)
        for x1, value in zip(COLUMNS, (current, prior)):
            if value is None:
                continue
            if value.startswith("$ "):  # the dollar sign in a column of its own, as filings set it
                page.insert_text((x1 - 70, y), "$", fontsize=9)
                value = value[2:]
            _right(page, x1, y, value)
        y += 14


@pytest.fixture(scope="module")
def statement_pdf(tmp_path_factory) -> Path:
    doc = pymupdf.open()
    first = doc.new_page(width=612, height=792)
    first.insert_text((50, 60), "Example Holdings Inc. and Subsidiaries", fontsize=11)
    first.insert_text((50, 76), "Consolidated Balance Sheets", fontsize=11)
    first.insert_text((50, 100), UNITS, fontsize=9)
    _right(first, 505, 100, "December 31,")
    _right(first, COLUMNS[0], 114, "2023")
    _right(first, COLUMNS[1], 114, "2022")
    _rows(first, PAGE_ONE, 132)
    first.insert_text((50, 760), "See the accompanying notes.", fontsize=8)
    second = doc.new_page(width=612, height=792)
    second.insert_text((50, 50), "Example Holdings Inc. and Subsidiaries", fontsize=8)
    _rows(second, PAGE_TWO, 80)
    path = tmp_path_factory.mktemp("statement") / "example_balance_sheet.pdf"
    doc.save(path)
    return path


@pytest.fixture(scope="module")
def encoder() -> Encoder:
    return Encoder(EmbeddingSettings())


def words_in(pdf: Path, page: int, box) -> list[str]:
    """The words PyMuPDF reads inside ``box`` on ``page``: what a reader sees highlighted."""
    with pymupdf.open(pdf) as doc:
        return [w[4] for w in doc[page - 1].get_text("words", clip=pymupdf.Rect(box) + (-1, -1, 1, 1))]


# -- the drawn statement ----------------------------------------------------------------------------


def test_a_balance_sheet_row_is_found_with_its_headers(statement_pdf: Path, encoder: Encoder):
    document = read_document(statement_pdf, OcrSettings(mode="never"))
    table = document.pages[0].tables[0]
    assert statement_kind(table.title) == "balance_sheet"
    assert table.units == UNITS
    assert table.columns[1:] == ("December 31, 2023", "December 31, 2022")
    row = table.find_row("Total assets")
    assert row is not None and row.section == "Current assets:"
    assert row.value(table.column_of("2023")).text == "$ 9,876"
    assert row.value(table.column_of("2022")).text == "$ 9,100"
    # The flattened text of the region is gone: the page text holds the row once, as a Markdown row.
    text = document.pages[0].text
    assert text.count("9,876") == 1 and "| Total assets | $ 9,876 | $ 9,100 |" in text
    assert text[row.start : row.end] == "| Total assets | $ 9,876 | $ 9,100 |"

    chunks = chunk_document(document, encoder.token_offsets, ChunkingSettings(), encoder.max_tokens - 2)
    chunk = next(c for c in chunks if "| Total assets |" in c.text)
    assert "Consolidated Balance Sheets" in chunk.context and UNITS in chunk.context
    # Its column headers: in its text when the block starts the table as printed, else in its context.
    header = "| (in millions, except per share data) | December 31, 2023 | December 31, 2022 |"
    assert header == table.header_markdown
    assert header in chunk.text.splitlines() or chunk.context.endswith(header)
    assert chunk.text == document.pages[0].text[chunk.char_start : chunk.char_end]
    assert encoder.count_tokens(f"{chunk.context}\n{chunk.text}") <= encoder.max_tokens - 2
    # The chunk's boxes are its cells' boxes, each around what the PDF shows there.
    assert any(words_in(statement_pdf, 1, box) == ["$", "9,876"] for box in chunk.boxes)
    # The model gets it as a small table: header row, separator, the rows; so does every block of the table.
    shown = as_table(chunk.context, chunk.text) or chunk.text
    lines = shown.splitlines()
    assert lines[lines.index(header) + 1] == "| --- | ---: | ---: |"
    assert "| Total assets | $ 9,876 | $ 9,100 |" in shown
    blocks = [c for c in chunks if c.page == 1 and c.text.count("| ") >= 3]
    for block in blocks:
        assert header in (as_table(block.context, block.text) or block.text).splitlines()
    # The statement's title above the table is in a chunk with its rows, not a chunk of its own.
    assert not [c for c in chunks if c.page == 1 and "Consolidated Balance Sheets" in c.text and "| " not in c.text]


def test_a_table_split_across_two_pages_keeps_its_headers(statement_pdf: Path, encoder: Encoder):
    document = read_document(statement_pdf, OcrSettings(mode="never"))
    first, second = document.pages[0].tables[0], document.pages[1].tables[0]
    assert not second.header_rows  # nothing of the header is printed on page 2 ...
    assert second.continued_from == 1  # ... so it comes from the table it continues
    assert (second.title, second.units, second.columns) == (first.title, first.units, first.columns)
    row = second.find_row("Total liabilities and shareholders' equity")
    assert row.value(second.column_of("2022")).text == "$ 9,100"

    chunks = chunk_document(document, encoder.token_offsets, ChunkingSettings(), encoder.max_tokens - 2)
    on_two = [c for c in chunks if c.page == 2 and "| Long-term debt |" in c.text]
    assert on_two and "Consolidated Balance Sheets" in on_two[0].context
    assert on_two[0].context.endswith(first.header_markdown)


def test_a_number_in_an_answer_is_matched_to_its_cell_and_box(statement_pdf: Path, home: Path):
    store = DocumentStore(f"sqlite:///{home / 'registry.db'}", home / "index", ocr=OcrSettings(mode="never"))
    report = store.ingest([statement_pdf])
    assert report.summary()["failed"] == 0
    with store.sessions() as session:
        stored = [TableRecord.from_dict(t) for row in session.query(PageRow).order_by(PageRow.number) for t in row.tables]
    assert [t.page for t in stored] == [1, 2] and stored[1].continued_from == 1

    hit = store.search("total assets on the balance sheet at December 31, 2023", 1)[0]
    assert "| Total assets |" in hit.text
    evidence = [Evidence("S1", 1, hit.chunk_id, hit.doc_sha256, hit.doc_name, hit.page, hit.char_start,
                         hit.char_end, hit.text, hit.score, hit.method, hit.confidence, hit.context)]
    tables = tables_for_sources(store.sessions, evidence)
    answer = "Total assets were $9,876 million at December 31, 2023 [S1]."
    grounding = check_grounding(answer, evidence, tables=tables)
    assert grounding.verdict == "grounded"
    (cell,) = grounding.cells
    assert (cell.row_label, cell.column, cell.page) == ("Total assets", "December 31, 2023", 1)
    assert words_in(statement_pdf, 1, cell.box) == ["$", "9,876"]  # the box shown is that cell on the page
    assert grounding.to_dict()["cells"][0]["box"] == [round(v, 1) for v in cell.box]
    # A figure in billions is the same cell in a table in millions; one not in the table is none.
    assert match_number_to_cell("9.876", stored, value=Decimal("9876000000")).row_label == "Total assets"
    assert match_number_to_cell("9,877", stored) is None
    # The prompt shows the source as a table under its headers.
    prompt_source = render_source(evidence[0])
    assert "| (in millions, except per share data) | December 31, 2023 | December 31, 2022 |\n| --- |" in prompt_source


# -- real filings -----------------------------------------------------------------------------------

FILINGS = "financebench/pdfs"


def _filing(name: str, pages: set[int]):
    pdf = shared_eval_or_skip() / FILINGS / name
    document = read_document(pdf, OcrSettings(mode="never"))
    return pdf, {p.number: p for p in document.pages if p.number in pages}


@pytest.mark.shared_eval
def test_a_filing_balance_sheet_row_is_found_with_its_headers():
    pdf, pages = _filing("3M_2018_10K.pdf", {58})
    (table,) = pages[58].tables
    assert statement_kind(table.title) == "balance_sheet" and "millions" in table.units
    assert table.columns[1:] == ("December 31, 2018", "December 31, 2017")
    row = table.find_row("Total assets")
    assert [row.value(i).text for i in (1, 2)] == ["$ 36,500", "$ 37,987"]
    assert words_in(pdf, 58, row.value(1).box) == ["$", "36,500"]


@pytest.mark.shared_eval
def test_a_filing_number_is_matched_to_its_cell_and_box():
    pdf, pages = _filing("3M_2018_10K.pdf", {60})
    cell = match_number_to_cell("1577.00", pages[60].tables, label_hint="capital expenditure, purchases of property")
    assert cell.row_label == "Purchases of property, plant and equipment (PP&E)" and cell.column == "2018"
    assert cell.cell_text == "(1,577)" and words_in(pdf, 60, cell.box) == ["(1,577)"]


@pytest.mark.shared_eval
def test_a_filing_statement_split_across_two_pages_keeps_its_headers():
    pdf = shared_eval_or_skip() / FILINGS / "CVSHEALTH_2022_10K.pdf"
    document = read_document(pdf, OcrSettings(mode="never"))
    before, after = document.pages[110], document.pages[111]  # pages 111 and 112
    assert statement_kind(before.tables[-1].title) == "cash_flows"
    continued = after.tables[0]
    assert continued.continued_from == 111 and not continued.header_rows
    assert continued.columns == before.tables[-1].columns and "2022" in continued.columns[1]
    assert statement_kind(continued.title) == "cash_flows"


@pytest.mark.shared_eval
def test_a_long_column_header_and_the_title_above_stay_with_the_rows(encoder: Encoder):
    """MGM's supplemental data: a header of four two-line periods, too long for a chunk's context, and
    each table's title a few words above it. Both are read with the rows, not left out or split off."""
    pdf = shared_eval_or_skip() / FILINGS / "MGMRESORTS_2022Q4_EARNINGS.pdf"
    document = read_document(pdf, OcrSettings(mode="never"))
    page = document.pages[12]  # page 13
    assert len(page.tables) == 2 and all("Twelve months ended December 31, 2022" in t.columns for t in page.tables)
    chunks = [c for c in chunk_document(document, encoder.token_offsets, ChunkingSettings(), encoder.max_tokens - 2) if c.page == 13]
    for table in page.tables:
        first = next(c for c in chunks if c.char_start <= table.rows[0].start < c.char_end)
        shown = (as_table(first.context, first.text) or first.text).splitlines()
        assert table.header_markdown in shown  # the periods, with the rows under them
        assert any(table.title in line for line in shown[: shown.index(table.header_markdown)])  # the title above
        assert encoder.count_tokens(f"{first.context}\n{first.text}") <= encoder.max_tokens - 2
    # No chunk of the page is the title alone.
    assert all("| " in c.text for c in chunks if "SUPPLEMENTAL DATA" in c.text)


# -- a scanned statement ----------------------------------------------------------------------------


def _scan(pdf: Path, out: Path, dpi: int = 200) -> Path:
    """``pdf`` as an image-only PDF (each page a picture of itself): no text layer, OCR must read it."""
    with pymupdf.open(pdf) as doc, pymupdf.open() as scan:
        for page in doc:
            pixmap = page.get_pixmap(dpi=dpi)
            scan.new_page(width=page.rect.width, height=page.rect.height).insert_image(page.rect, pixmap=pixmap)
        scan.save(out)
    return out


@pytest.mark.slow
def test_a_scanned_statement_gets_its_cells_from_the_ocr_word_boxes(statement_pdf: Path, tmp_path: Path):
    scanned = _scan(statement_pdf, tmp_path / "scanned_balance_sheet.pdf")
    document = read_document(scanned, OcrSettings(mode="auto"))
    page = document.pages[0]
    assert page.method == "tesseract"
    (table,) = page.tables
    assert table.source == "tesseract" and statement_kind(table.title) == "balance_sheet"
    row = table.find_row("Total assets")
    assert row is not None
    cell = row.value(table.column_of("2023"))
    assert cell_value(cell.text) == 9876 and words_in(statement_pdf, 1, cell.box)[-1] == "9,876"
    assert page.text[cell.start : cell.end] == cell.text
    # The second page's rows continue the first page's table, headers and all.
    assert document.pages[1].tables[0].columns == table.columns


@pytest.mark.slow
def test_a_scanned_page_with_figures_but_no_grid_stays_text_and_says_so(tmp_path: Path):
    doc = pymupdf.open()
    page = doc.new_page(width=612, height=792)
    prose = (
        "Revenue rose 12% to $1,234 million in 2023 from $1,100 million in 2022, while costs grew 8% to "
        "$456 million; 3,210 shares were bought back at $45.50 and 2,310 employees joined in 14 offices."
    )
    page.insert_textbox(pymupdf.Rect(60, 80, 540, 300), prose, fontsize=11)
    pdf = tmp_path / "prose.pdf"
    doc.save(pdf)
    document = read_document(_scan(pdf, tmp_path / "prose_scan.pdf"), OcrSettings(mode="auto"))
    (scanned,) = document.pages
    assert scanned.method == "tesseract" and not scanned.tables
    assert any(note.startswith("tables: figures found, but no grid") for note in scanned.notes)
