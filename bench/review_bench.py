"""Review throughput: cells per second for DOCS x ITEMS against the fake OpenAI-compatible server
answering every call after a fixed latency, at several concurrencies.

    python -m bench.review_bench [--docs 20] [--items 10] [--latency 0.25] [--concurrency 1 4 16]

The documents are small synthetic contracts written with PyMuPDF and ingested into a temporary
workspace. For each concurrency a new review runs all cells; "model time" is what the calls alone
would take at that concurrency (cells x latency / concurrency) and "Docket overhead" is the rest:
retrieval, prompt building, grounding, two audit entries and one state row per cell.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import pymupdf

from pipeline.app import Docket
from pipeline.review import parse_checklist, run_review
from pipeline.settings import load_settings
from tests.fake_llm import FakeLLM, mistral_2509

STATES = ["California", "Delaware", "New York", "Texas", "Florida"]
TOPICS = [
    ("governing-law", "Governing law", "Which state's law governs the agreement?"),
    ("term", "Term", "How long is the initial term of the agreement?"),
    ("renewal", "Renewal", "Does the agreement renew automatically?"),
    ("termination", "Termination", "Can a party terminate without cause, and with what notice?"),
    ("assignment", "Assignment", "Can a party assign the agreement without consent?"),
    ("liability", "Liability cap", "Is each party's liability capped?"),
    ("confidentiality", "Confidentiality", "How long do confidentiality obligations last?"),
    ("payment", "Payment terms", "Within how many days must invoices be paid?"),
    ("insurance", "Insurance", "Must a party maintain insurance?"),
    ("audit", "Audit rights", "May a party audit the other's records?"),
    ("warranty", "Warranty", "How long is the warranty period?"),
    ("notices", "Notices", "How must notices be given?"),
]


class LatencyServer(FakeLLM):
    """Answers every chat request with a grounded verdict after ``latency_s`` seconds."""

    def __init__(self, latency_s: float):
        self.latency_s = latency_s
        super().__init__()

    def _next(self, path: str):
        time.sleep(self.latency_s)
        return mistral_2509("Checked the clause.", "The agreement addresses this [S1].\nVERDICT: compliant")


def write_contracts(folder: Path, count: int) -> list[Path]:
    paths = []
    for n in range(count):
        doc = pymupdf.open()
        for page_topics in (TOPICS[:6], TOPICS[6:]):
            page = doc.new_page()
            text = "\n\n".join(
                f"{i + 1}. {title}. Regarding {question.lower().rstrip('?')}: the parties agree to the terms of "
                f"schedule {n}-{i}, governed by the laws of the State of {STATES[n % len(STATES)]}, with "
                f"notice of {30 + 15 * (n % 4)} days."
                for i, (_, title, question) in enumerate(page_topics)
            )
            page.insert_textbox(pymupdf.Rect(50, 50, 545, 790), f"SERVICES AGREEMENT {n}\n\n{text}", fontsize=10)
        path = folder / f"SYNTHETIC_SERVICES_AGREEMENT_{n:02d}.pdf"
        doc.save(path)
        paths.append(path)
    return paths


def checklist_yaml(items: int) -> str:
    lines = ["name: bench", "title: Bench checklist", "items:"]
    for item_id, title, question in TOPICS[:items]:
        lines += [f"  - id: {item_id}", f"    title: {title}", f"    question: \"{question}\"",
                  "    requirement: The clause is present and follows house policy."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=20)
    parser.add_argument("--items", type=int, default=10, choices=range(1, len(TOPICS) + 1))
    parser.add_argument("--latency", type=float, default=0.25, help="seconds per model call")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16])
    args = parser.parse_args()

    server = LatencyServer(args.latency)
    server.start()
    try:
        with tempfile.TemporaryDirectory(prefix="docket-review-bench-") as tmp:
            root = Path(tmp)
            (root / "docs").mkdir()
            files = write_contracts(root / "docs", args.docs)
            llm = server.llm_settings(provider="openai-compatible", api_key=None, seed=None)
            docket = Docket(load_settings(home=root / "home", reasoner="magistral", llm=llm))
            started = time.perf_counter()
            docket.store.ingest(files, "bench")
            print(f"ingested {args.docs} synthetic contracts in {time.perf_counter() - started:.1f}s")
            checklist = parse_checklist(checklist_yaml(args.items))
            cells = args.docs * args.items
            results = []
            for workers in args.concurrency:
                started = time.perf_counter()
                outcome = run_review(docket, checklist, collection="bench", new=True, concurrency=workers)
                wall = time.perf_counter() - started
                assert outcome.ran == cells and not any(c.failed for c in outcome.review.cells.values())
                model = cells * args.latency / workers
                results.append({
                    "concurrency": workers, "cells": cells, "wall_s": round(wall, 2),
                    "cells_per_s": round(cells / wall, 2), "model_s": round(model, 2),
                    "overhead_s": round(wall - model, 2), "overhead_ms_per_cell": round((wall - model) / cells * 1000, 1),
                })
    finally:
        server.stop()

    print(f"\n{args.docs} documents x {args.items} items = {cells} cells, model latency {args.latency * 1000:.0f} ms per call")
    print(f"{'concurrency':>11} {'wall s':>8} {'cells/s':>8} {'model s':>8} {'overhead s':>10} {'ms/cell':>8}")
    for r in results:
        print(f"{r['concurrency']:>11} {r['wall_s']:>8} {r['cells_per_s']:>8} {r['model_s']:>8} "
              f"{r['overhead_s']:>10} {r['overhead_ms_per_cell']:>8}")
    print(json.dumps({"docs": args.docs, "items": args.items, "latency_s": args.latency, "results": results}))


if __name__ == "__main__":
    main()
