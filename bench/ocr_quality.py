"""OCR quality on ../shared/eval/ocr: bag-of-words F1 against gold text, as a Markdown table.

    python -m bench.ocr_quality [--set funsd|funsd_train|synthetic ...] [--limit N] [--half 1|2 | --part K/N]
                                [--inputs plain,png,pdf] [--per-page] [--workers N] [--eval-dir PATH]

Columns: plain Tesseract (`tesseract IMAGE - --psm 3`, the reference figure) and Docket's default
reading (read_image_file on the PNGs and ocr_pdf_pages on the image-only PDFs), per page and mean.
``--half`` splits funsd_train into two interleaved halves: tune on one, check on the other.
Each FUNSD-layout table ends with the mean CPU seconds per page of each column (the worker process
and the Tesseract processes it ran), which the other jobs on a shared machine disturb less than
wall time.
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
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


def _cpu_seconds() -> float:
    """CPU time of this process and of its waited-for children (the Tesseract runs)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _score(job: tuple[str, Path, str, OcrSettings]) -> tuple[float, float]:
    """(F1, CPU seconds) of one page read one way."""
    kind, source, gold, settings = job
    start = _cpu_seconds()
    if kind == "plain":
        text = plain_tesseract(source)
    elif kind == "png":
        text = _read_png(source, settings)
    else:
        text = _read_pdf(source, settings)
    return bag_of_words_f1(gold, text), _cpu_seconds() - start


def form_pages(ocr_dir: Path, name: str, limit: int | None = None, part: tuple[int, int] | None = None) -> list[str]:
    """Page ids of a FUNSD-layout set, sorted; ``part`` (K, N) takes every N-th page from the K-th, so
    the N parts split the same set deterministically (part (1, 2) and (2, 2) are ``--half 1`` and
    ``--half 2``: a tuning split and a check split)."""
    ids = sorted(path.stem for path in (ocr_dir / name / "gt_text").glob("*.txt"))
    if part:
        ids = ids[part[0] - 1 :: part[1]]
    return ids[:limit] if limit else ids


def parse_part(text: str) -> tuple[int, int]:
    """'K/N' -> (K, N) with 1 <= K <= N."""
    try:
        k, n = (int(value) for value in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--part {text}: expected K/N, e.g. 1/2 or 3/4") from None
    if not 1 <= k <= n:
        raise argparse.ArgumentTypeError(f"--part {text}: K must be between 1 and N")
    return k, n


def form_rows(
    ocr_dir: Path, name: str, settings: OcrSettings, kinds: list[str], workers: int,
    limit: int | None = None, part: tuple[int, int] | None = None,
) -> list[tuple[str, list[tuple[float, float]]]]:
    """(page id, (F1, CPU seconds) per kind) per page of a FUNSD-layout set; kinds: plain (tesseract IMG - --psm 3 on
    the PNG), png (Docket on the PNG), pdf (Docket on the image-only PDF). Pages run in ``workers``
    processes, each reading its page with one worker."""
    folder = ocr_dir / name
    ids = form_pages(ocr_dir, name, limit, part)
    one = settings.model_copy(update={"workers": 1})
    jobs = []
    for page_id in ids:
        gold = (folder / "gt_text" / f"{page_id}.txt").read_text()
        for kind in kinds:
            source = folder / ("scanned_pdfs" if kind == "pdf" else "images") / f"{page_id}.{'pdf' if kind == 'pdf' else 'png'}"
            jobs.append((kind, source, gold, one))
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("forkserver")) as pool:
        scores = []
        # Each page's figures go to stderr as it is read, so a run stopped early still leaves them.
        for (kind, source, _gold, _settings), (f1, cpu) in zip(jobs, pool.map(_score, jobs)):
            scores.append((f1, cpu))
            print(f"{source.stem} {kind} F1 {f1:.3f} CPU {cpu:.1f}s", file=sys.stderr, flush=True)
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
    parser.add_argument("--part", type=parse_part, help="only every N-th page of funsd_train from the K-th, as K/N (--half 2 is --part 2/2)")
    parser.add_argument("--inputs", default="plain,png,pdf",
                        help="columns of the FUNSD-layout sets, comma-separated: plain (tesseract on the PNG), png, pdf")
    parser.add_argument("--per-page", action="store_true", help="print every page of funsd_train, not only the means")
    args = parser.parse_args(argv)
    ocr_dir = args.eval_dir / "ocr"
    if not ocr_dir.is_dir():
        print(f"{ocr_dir}: not found; pass --eval-dir", file=sys.stderr)
        return 2
    if args.half and args.part:
        parser.error("--half and --part: pass one of them")
    part = args.part or ((args.half, 2) if args.half else None)
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
        subset = part if name == "funsd_train" else None
        rows = form_rows(ocr_dir, name, settings, kinds, args.workers, args.limit, subset)
        label = f", part {subset[0]}/{subset[1]}" if subset else ""
        print(f"## {name} ({len(rows)} scanned forms{label}), bag-of-words F1\n")
        print("| page | " + " | ".join(_KIND_HEADINGS[k] for k in kinds) + " |")
        print("|---" * (len(kinds) + 1) + "|")
        if name == "funsd" or args.per_page:
            for page_id, scores in rows:
                print(f"| {page_id} | " + " | ".join(f"{f1:.3f}" for f1, _ in scores) + " |")
        columns = list(zip(*(scores for _, scores in rows)))
        print("| **mean** | " + " | ".join(f"**{statistics.mean(f1 for f1, _ in c):.3f}**" for c in columns) + " |")
        print("| CPU s/page | " + " | ".join(f"{statistics.mean(cpu for _, cpu in c):.1f}" for c in columns) + " |\n",
              flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
