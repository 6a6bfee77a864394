"""What the document signals and page pooling add to a query at 100k chunks, measured beside the same
query without them (alternating, same run).

    python -m bench.retrieval_signals_bench [--chunks 100000] [--queries 400]

The corpus is the SYNTHETIC one of ``bench.retrieval_bench`` (clustered vectors, Zipf-word texts), laid
out as documents of 100 chunks on 20 pages with 2% of the chunks on statement pages (a 10-K has 3-6
statement pages of 100-250). Each query runs ``ingest.retrieval.rank_chunks``, which
``DocumentStore.search`` calls between its registry reads, without embedding the question (a held-out vector stands in for it, so the figures compare the
steps, not the encoder): FAISS flat top 50, BM25 top 50, convex completion, fusion; then, "on", the
signalled chunks (best 50 by BM25) joining the candidates, ``document_signals`` and ``pool_pages``
("off" sets the three boosts and pooling to 0).
Also the time to build ``ChunkFacts`` once per index generation.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from dataclasses import replace

import faiss
import numpy as np

from bench.retrieval_bench import QUESTIONS, synthetic_corpus, synthetic_facts
from ingest.lexical import LexicalIndex
from ingest.query import plan_query
from ingest.retrieval import RetrievalOptions, rank_chunks
from ingest.vector_index import VectorIndex

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=400)
    args = parser.parse_args()
    n, dimension = args.chunks, 384
    vectors, texts, held_out = synthetic_corpus(n, dimension)
    ids = np.arange(1, n + 1, dtype=np.int64)
    index = VectorIndex(dimension, kind="flat")
    index.add(ids, vectors)
    lexical = LexicalIndex.build(list(map(int, ids)), texts)
    documents = n // 100 + 1
    started = time.perf_counter()
    facts = synthetic_facts(n)
    build_s = time.perf_counter() - started
    faiss.omp_set_num_threads(1)
    with_signals = RetrievalOptions()
    without = replace(with_signals, statement_boost=0.0, opening_boost=0.0, name_boost=0.0, page_pooling=0.0)

    def query(i: int, signals: bool) -> None:
        plan = plan_query(f"{QUESTIONS[i % len(QUESTIONS)]} COMPANY{i % documents}")
        rank_chunks(plan, held_out[i % len(held_out)], index, lexical, facts, with_signals if signals else without)

    times: dict[bool, list[float]] = {True: [], False: []}
    for i in range(args.queries):
        for signals in (True, False) if i % 2 else (False, True):
            started = time.perf_counter()
            query(i, signals)
            times[signals].append((time.perf_counter() - started) * 1000)
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"{n:,} synthetic chunks, {args.queries} queries each way, alternating; load average {load}")
    print(f"ChunkFacts.build (once per index generation): {build_s:.2f} s")
    print("| query steps (no question embedding) | p50 ms | p95 ms |")
    print("|---|---|---|")
    for signals, label in ((False, "without signals and pooling"), (True, "with them (defaults)")):
        ordered = sorted(times[signals])
        print(f"| {label} | {statistics.median(ordered):.2f} | {ordered[int(0.95 * (len(ordered) - 1))]:.2f} |")


if __name__ == "__main__":
    main()
