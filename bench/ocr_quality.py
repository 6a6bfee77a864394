"""OCR quality on ../shared/eval/ocr: bag-of-words F1 against gold text, as a Markdown table.

    python -m bench.ocr_quality [--set funsd|funsd_train|synthetic ...] [--limit N] [--half 1|2]
                                [--inputs plain,png,pdf] [--per-page] [--workers N] [--eval-dir PATH]

Columns: plain Tesseract (`tesseract IMAGE - --psm 3`, the reference figure) and Docket's default
reading (read_image_file on the PNGs and ocr_pdf_pages on the image-only PDFs), per page and mean.
``--half`` splits funsd_train into two interleaved halves: tune on one, check on the other.
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from ingest.config import OcrSettings
from ingest.ocr import ocr_pdf_pages, read_image_file
from ingest.ocr.wordbag import bag_of_words_f1

DEFAULT_EVAL_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "eval"


def plain_tesseract(image: Path) -> str:
    done = subprocess.run(["tesseract", str(image), "-", "--psm", "3"], capture_output=True, text=True, check=True)
    return done.stdout


def _read_png(image: Path, settings: OcrSettings) -> str:
    return read_image_file(image, settings)[0].text


def _read_pdf(pdf: Path, settings: OcrSettings) -> str:
    return ocr_pdf_pages(pdf, [1], settings)[0].text


def _score(job: tuple[str, Path, str, OcrSettings]) -> float:
    kind, source, gold, settings = job
    if kind == "plain":
        text = plain_tesseract(source)
    elif kind == "png":
        text = _read_png(source, settings)
    else:
        text = _read_pdf(source, settings)
    return bag_of_words_f1(gold, text)


def form_pages(ocr_dir: Path, name: str, limit: int | None = None, half: int | None = None) -> list[str]:
    """Page ids of a FUNSD-layout set, sorted; ``half`` 1 or 2 takes every other page (1st, 3rd, ... or
    2nd, 4th, ...), so the two halves are a tuning split and a check split of the same set."""
    ids = sorted(path.stem for path in (ocr_dir / name / "gt_text").glob("*.txt"))
    if half:
        ids = ids[half - 1 :: 2]
    return ids[:limit] if limit else ids


def form_rows(
    ocr_dir: Path, name: str, settings: OcrSettings, kinds: list[str], workers: int,
    limit: int | None = None, half: int | None = None,
) -> list[tuple[str, list[float]]]:
    """(page id, F1 per kind) per page of a FUNSD-layout set; kinds: plain (tesseract IMG - --psm 3 on
    the PNG), png (Docket on the PNG), pdf (Docket on the image-only PDF). Pages run in ``workers``
    processes, each reading its page with one worker."""
    folder = ocr_dir / name
    ids = form_pages(ocr_dir, name, limit, half)
    one = settings.model_copy(update={"workers": 1})
    jobs = []
    for page_id in ids:
        gold = (folder / "gt_text" / f"{page_id}.txt").read_text()
        for kind in kinds:
            source = folder / ("scanned_pdfs" if kind == "pdf" else "images") / f"{page_id}.{'pdf' if kind == 'pdf' else 'png'}"
            jobs.append((kind, source, gold, one))
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("forkserver")) as pool:
        scores = list(pool.map(_score, jobs))
    return [(page_id, scores[i * len(kinds):(i + 1) * len(kinds)]) for i, page_id in enumerate(ids)]


def cuad_rows(ocr_dir: Path, settings: OcrSettings) -> list[tuple[str, float]]:
    folder = ocr_dir / "synthetic_scan_cuad"
    pdf = next(folder.glob("*.pdf"))
    golds = sorted((folder / "gt_text").glob("page_*.txt"))
    pages = ocr_pdf_pages(pdf, [i + 1 for i in range(len(golds))], settings)
    return [(gold.stem, bag_of_words_f1(gold.read_text(), page.text)) for gold, page in zip(golds, pages)]




_KIND_HEADINGS = {"plain": "plain tesseract --psm 3 (PNG)", "png": "Docket default (PNG)", "pdf": "Docket default (PDF)"}
SETS = ("funsd", "funsd_train", "synthetic")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--eval-dir", type=Path, default=DEFAULT_EVAL_DIR)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--set", dest="sets", action="append", choices=SETS,
                        help="a set to measure (repeatable; default: all three)")
    parser.add_argument("--limit", type=int, help="only the first N pages of each FUNSD-layout set")
    parser.add_argument("--half", type=int, choices=(1, 2), help="only every other page of funsd_train (1: 1st, 3rd, ...; 2: 2nd, 4th, ...)")
    parser.add_argument("--inputs", default="plain,png,pdf",
                        help="columns of the FUNSD-layout sets, comma-separated: plain (tesseract on the PNG), png, pdf")
    parser.add_argument("--per-page", action="store_true", help="print every page of funsd_train, not only the means")
    args = parser.parse_args(argv)
    ocr_dir = args.eval_dir / "ocr"
    if not ocr_dir.is_dir():
        print(f"{ocr_dir}: not found; pass --eval-dir", file=sys.stderr)
        return 2
    settings = OcrSettings(workers=args.workers)
    kinds = [kind.strip() for kind in args.inputs.split(",") if kind.strip()]
    unknown = [kind for kind in kinds if kind not in _KIND_HEADINGS]
    if unknown or not kinds:
        print(f"--inputs {args.inputs}: expected some of plain, png, pdf", file=sys.stderr)
        return 2

    for name in args.sets or SETS:
        if name == "synthetic":
            cuad = cuad_rows(ocr_dir, settings)
            print("## Synthetic scan of a CUAD contract (8 pages), bag-of-words F1\n")
            print("| page | Docket default (PDF) |")
            print("|---|---|")
            for page_id, f1 in cuad:
                print(f"| {page_id} | {f1:.3f} |")
            print(f"| **mean** | **{statistics.mean(f for _, f in cuad):.3f}** |\n", flush=True)
            continue
        rows = form_rows(ocr_dir, name, settings, kinds, args.workers, args.limit,
                         args.half if name == "funsd_train" else None)
        part = f", half {args.half}" if args.half and name == "funsd_train" else ""
        print(f"## {name} ({len(rows)} scanned forms{part}), bag-of-words F1\n")
        print("| page | " + " | ".join(_KIND_HEADINGS[k] for k in kinds) + " |")
        print("|---" * (len(kinds) + 1) + "|")
        if name == "funsd" or args.per_page:
            for page_id, scores in rows:
                print(f"| {page_id} | " + " | ".join(f"{s:.3f}" for s in scores) + " |")
        means = [statistics.mean(column) for column in zip(*(scores for _, scores in rows))]
        print("| **mean** | " + " | ".join(f"**{m:.3f}**" for m in means) + " |\n", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
