"""OCR quality on ../shared/eval/ocr: bag-of-words F1 against gold text, as a Markdown table.

    python -m bench.ocr_quality [--workers N] [--eval-dir PATH]

Rows: plain Tesseract (`tesseract IMAGE - --psm 3`, the reference figure) and Docket's default
reading (ocr_pdf_pages on the image-only PDFs and read_image_file on the PNGs), per page and mean.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
from pathlib import Path

from ingest.config import OcrSettings
from ingest.ocr import ocr_pdf_pages, read_image_file
from ingest.ocr.wordbag import bag_of_words_f1

DEFAULT_EVAL_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "eval"


def plain_tesseract(image: Path) -> str:
    done = subprocess.run(["tesseract", str(image), "-", "--psm", "3"], capture_output=True, text=True, check=True)
    return done.stdout


def funsd_rows(ocr_dir: Path, settings: OcrSettings) -> list[tuple[str, float, float, float]]:
    """(page id, plain Tesseract F1, Docket on the PDF F1, Docket on the PNG F1) per FUNSD page."""
    rows = []
    for gold_path in sorted((ocr_dir / "funsd" / "gt_text").glob("*.txt")):
        page_id, gold = gold_path.stem, gold_path.read_text()
        image = ocr_dir / "funsd" / "images" / f"{page_id}.png"
        pdf = ocr_dir / "funsd" / "scanned_pdfs" / f"{page_id}.pdf"
        from_pdf = ocr_pdf_pages(pdf, [1], settings)[0].text
        from_png = read_image_file(image, settings)[0].text
        rows.append((page_id, bag_of_words_f1(gold, plain_tesseract(image)),
                     bag_of_words_f1(gold, from_pdf), bag_of_words_f1(gold, from_png)))
    return rows


def cuad_rows(ocr_dir: Path, settings: OcrSettings) -> list[tuple[str, float]]:
    folder = ocr_dir / "synthetic_scan_cuad"
    pdf = next(folder.glob("*.pdf"))
    golds = sorted((folder / "gt_text").glob("page_*.txt"))
    pages = ocr_pdf_pages(pdf, [i + 1 for i in range(len(golds))], settings)
    return [(gold.stem, bag_of_words_f1(gold.read_text(), page.text)) for gold, page in zip(golds, pages)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--eval-dir", type=Path, default=DEFAULT_EVAL_DIR)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    ocr_dir = args.eval_dir / "ocr"
    if not ocr_dir.is_dir():
        print(f"{ocr_dir}: not found; pass --eval-dir", file=sys.stderr)
        return 2
    settings = OcrSettings(workers=args.workers)

    funsd = funsd_rows(ocr_dir, settings)
    print("## FUNSD (six ~100 dpi scanned forms), bag-of-words F1\n")
    print("| page | plain tesseract --psm 3 (PNG) | Docket default (PDF) | Docket default (PNG) |")
    print("|---|---|---|---|")
    for page_id, plain, pdf, png in funsd:
        print(f"| {page_id} | {plain:.3f} | {pdf:.3f} | {png:.3f} |")
    means = [statistics.mean(column) for column in list(zip(*funsd))[1:]]
    print("| **mean** | " + " | ".join(f"**{m:.3f}**" for m in means) + " |\n")

    cuad = cuad_rows(ocr_dir, settings)
    print("## Synthetic scan of a CUAD contract (8 pages), bag-of-words F1\n")
    print("| page | Docket default (PDF) |")
    print("|---|---|")
    for page_id, f1 in cuad:
        print(f"| {page_id} | {f1:.3f} |")
    print(f"| **mean** | **{statistics.mean(f for _, f in cuad):.3f}** |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
