"""What the document signals and page pooling add to a query at 100k chunks, measured beside the same
query without them (alternating, same run).

    python -m bench.retrieval_signals_bench [--chunks 100000] [--queries 400]

The corpus is the SYNTHETIC one of ``bench.retrieval_bench`` (clustered vectors, Zipf-word texts), laid
out as documents of 100 chunks on 20 pages with 2% of the chunks on statement pages (a 10-K has 3-6
statement pages of 100-250). Each query runs what ``DocumentStore.search`` does between the registry
reads, without embedding the question (a held-out vector stands in for it, so the figures compare the
steps, not the encoder): FAISS flat top 50, BM25 top 50, convex completion, fusion; then, "on", the
signalled chunks (best 50 by BM25) joining the candidates, ``document_signals`` and ``pool_pages``.
Also the time to build ``ChunkFacts`` once per index generation.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import faiss
import numpy as np

from bench.retrieval_bench import QUESTIONS, synthetic_corpus
from ingest.lexical import LexicalIndex
from ingest.query import plan_query
from ingest.retrieval import ChunkFacts, RetrievalOptions, document_signals, fuse, pool_pages
from ingest.vector_index import VectorIndex

STATEMENT_TITLES = ("Consolidated Statements of Cash Flows", "Consolidated Balance Sheets", "Consolidated Statements of Income")


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
    rng = np.random.default_rng(1)
    rows = [
        (i + 1, i // 100, (i % 100) // 5 + 1, (i % 5) * 800,
         STATEMENT_TITLES[rng.integers(3)] if rng.random() < 0.02 else "NOTE 5. Debt")
        for i in range(n)
    ]
    names = {v: f"COMPANY{v} 2022 10K" for v in range(n // 100 + 1)}
    started = time.perf_counter()
    facts = ChunkFacts.build(rows, names)
    build_s = time.perf_counter() - started
    faiss.omp_set_num_threads(1)
    options = RetrievalOptions()

    def query(i: int, signals: bool) -> None:
        plan = plan_query(f"{QUESTIONS[i % len(QUESTIONS)]} COMPANY{i % len(names)}")
        vector = held_out[i % len(held_out)]
        dense = index.search(vector, options.candidates)
        bm25 = lexical.scores(plan.terms)
        found = lexical.top(bm25, options.candidates)
        in_dense, in_lexical = {c for c, _ in dense}, {c for c, _ in found}
        only_lexical = [c for c, _ in found if c not in in_dense]
        if signals and (plan.statements or plan.opening):
            signalled = lexical.score_of(bm25, facts.with_signal(plan).tolist())
            extra = [c for c, _ in sorted(signalled, key=lambda item: -item[1])[: options.candidates]]
            only_lexical += [c for c in extra if c not in in_dense and c not in in_lexical]
        read = index.vectors(only_lexical)
        dense = dense + [(c, float(read[c] @ vector)) for c in only_lexical]
        found = found + lexical.score_of(bm25, [c for c, _ in dense if c not in in_lexical])
        scored = fuse(dense, found, options)
        if signals:
            scored = pool_pages(document_signals(scored, facts, plan, options), facts, options.page_pooling)

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
