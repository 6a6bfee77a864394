"""Table detection on the FinanceBench filings: Docket's word-layout detector beside PyMuPDF's find_tables.

    python -m bench.table_detection_bench                 # the 68 gold evidence pages of the 65 questions
    python -m bench.table_detection_bench --all-pages --only docket   # every page of the 19 filings

Per detector: pages where it finds a table with at least 3 rows carrying figures ("statement-like"),
how many of the rows it returns have a label and a figure, how many cells are cut inside a word (a cell
ending in a letter, the next cell of the row starting with a lower-case letter: "3M Company and Subsi" |
"diaries"), and CPU milliseconds a page (process time, so a shared machine's load counts less than in
wall time). PyMuPDF's detector is run with its "lines" strategy (ruled tables) and its "text" strategy
(unruled statements), as issue 18 asks.
"""

from __future__ import annotations

import argparse
import json
import re
import time
from pathlib import Path

EVAL = Path(__file__).resolve().parents[1].parent / "shared" / "eval" / "financebench"
FIGURE = re.compile(r"\d[\d,]*(?:\.\d+)?")


def gold_pages() -> list[tuple[str, int]]:
    questions = [json.loads(line) for line in (EVAL / "questions.jsonl").read_text().splitlines() if line.strip()]
    return sorted({(e["doc_id"], e["page_1based"]) for q in questions for e in q["evidence"]})


def _rows_docket(page) -> list[list[str]]:
    import pymupdf

    from ingest.tables import Word, detect_tables

    words = [Word(*w[:5]) for w in page.get_text("words", flags=pymupdf.TEXTFLAGS_TEXT)]
    out = []
    for table in detect_tables(words, page.number + 1):
        width = len(table.columns)
        for row in table.rows:
            cells = [""] * width
            for cell in row.cells:
                cells[cell.column] = cell.text
            out.append(cells)
        out.append([])  # table boundary
    return out


def _rows_pymupdf(page, strategy: str) -> list[list[str]]:
    out = []
    for table in page.find_tables(strategy=strategy).tables:
        out += [[c or "" for c in row] for row in table.extract()]
        out.append([])
    return out


def _measure(rows: list[list[str]]) -> tuple[bool, int, int, int]:
    """(statement-like table found, rows, rows with a label and a figure, cells cut inside a word)."""
    tables, current = [], []
    for row in rows:
        if row:
            current.append(row)
        else:
            tables.append(current)
            current = []
    if current:
        tables.append(current)
    figure_rows = lambda t: [r for r in t if any(FIGURE.fullmatch(c.strip("$()% ").replace(" ", "")) for c in r[1:])]
    statement = any(len(figure_rows(t)) >= 3 for t in tables)
    total = sum(len(t) for t in tables)
    labelled = sum(1 for t in tables for r in figure_rows(t) if r and re.search(r"[A-Za-z]{3}", r[0]))
    cut = 0
    for t in tables:
        for r in t:
            texts = [c.strip() for c in r if c and c.strip()]
            cut += sum(1 for a, b in zip(texts, texts[1:]) if a[-1:].isalpha() and b[:1].islower())
    return statement, total, labelled, cut


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.table_detection_bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--all-pages", action="store_true", help="every page of the 19 filings, not only the gold pages")
    parser.add_argument("--only", choices=("docket", "lines", "text"), action="append", help="detectors to run (repeatable)")
    args = parser.parse_args()
    import pymupdf

    detectors = args.only or ["docket", "lines", "text"]
    if args.all_pages:
        pages = [(p.stem, n + 1) for p in sorted((EVAL / "pdfs").glob("*.pdf")) for n in range(pymupdf.open(p).page_count)]
    else:
        pages = gold_pages()
    docs: dict[str, pymupdf.Document] = {}
    results = {d: [0, 0, 0, 0, 0.0] for d in detectors}  # statement pages, rows, labelled rows, cut cells, cpu s
    for doc_id, number in pages:
        doc = docs.setdefault(doc_id, pymupdf.open(EVAL / "pdfs" / f"{doc_id}.pdf"))
        for name in detectors:
            page = doc[number - 1]  # a fresh page object: no detector reuses another's text page
            started = time.process_time()
            rows = _rows_docket(page) if name == "docket" else _rows_pymupdf(page, name)
            results[name][4] += time.process_time() - started
            statement, total, labelled, cut = _measure(rows)
            results[name][0] += statement
            results[name][1] += total
            results[name][2] += labelled
            results[name][3] += cut
    label = {"docket": "Docket (words' layout)", "lines": 'find_tables(strategy="lines")', "text": 'find_tables(strategy="text")'}
    print(f"{len(pages)} pages of {len({d for d, _ in pages})} filings")
    print("| detector | pages with a statement-like table | rows | rows with label and figure | cells cut inside a word | CPU ms/page |")
    print("|---|---|---|---|---|---|")
    for name in detectors:
        s, total, labelled, cut, cpu = results[name]
        print(f"| {label[name]} | {s} | {total} | {labelled} | {cut} | {1000 * cpu / len(pages):.0f} |")


if __name__ == "__main__":
    main()
