"""`python -m bench [NAME ...]` (or `make bench BENCH_ARGS="audit ocr_quality"`): run benchmarks by name.

Each benchmark is also a module of its own with its own flags (`python -m bench.audit_bench --help`).
With no names, this lists them. Figures in docs/ are quoted with the exact command that printed them.
"""

from __future__ import annotations

import importlib
import sys

BENCHES = {
    "ingest": ("bench.ingest_bench", "Docket vs LlamaIndex ingest pages/s, int8 quality, peak memory"),
    "audit": ("bench.audit_bench", "audit append rate (1 and 8 writers) and verify rate vs raw SHA-256"),
    "ocr": ("bench.ocr_bench", "OCR pages/s with 1 and 2 worker processes"),
    "ocr_quality": ("bench.ocr_quality", "bag-of-words F1 on the FUNSD and synthetic CUAD scans"),
    "encoder": ("bench.encoder_bench", "encoder word pieces/s: torch beside the fp32 and int8 ONNX exports"),
    "smoothing": ("bench.smoothing_sim", "int8 error of each down-projection, smoothed or not (numpy simulation)"),
    "retrieval": ("bench.retrieval_bench", "query latency at 100k chunks vs a bare FAISS search"),
    "review": ("bench.review_bench", "review cells/s at concurrency 1, 4, 16 against a fixed-latency fake model"),
    "startup": ("bench.startup_bench", "whole-process wall time and peak RSS of docket --help, ask, audit verify"),
    "service": ("bench.service_bench", "warm ask p50/p95 and asks/s through the HTTP API at 1 and 16 clients, beside the cold CLI"),
    "scale": ("bench.scale_bench", "ingest pages/s and review cells/s, local vs a private Ray, with Ray's per-task costs"),
}


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: python -m bench NAME [NAME ...]\n")
        for name, (_module, what) in BENCHES.items():
            print(f"  {name:<12} {what}")
        return 0
    unknown = [name for name in argv if name not in BENCHES]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; choose from {', '.join(BENCHES)}", file=sys.stderr)
        return 2
    for name in argv:
        print(f"\n## {name}  (python -m {BENCHES[name][0]})\n", flush=True)
        module = importlib.import_module(BENCHES[name][0])
        sys.argv = [BENCHES[name][0]]  # each bench parses its own flags; run it with its defaults
        module.main()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
