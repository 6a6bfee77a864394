"""Query latency at scale, and the recall of the approximate (HNSW) index against exact search.

    python -m bench.retrieval_bench [--chunks 100000] [--queries 200]

The corpus is SYNTHETIC (no 100k-chunk real corpus is available offline): vectors are drawn around 2,000
random centroids (real embeddings cluster by topic; uniform random vectors would make any graph index
look worse than it is), texts are 120 words drawn from a Zipf vocabulary of 50,000 words plus a few
finance terms. The questions are real analyst-style questions, embedded by the real MiniLM encoder.

Measured per query, single-threaded search as in `docket ask`:

- bare FAISS: one ``index.search`` of a prepared vector (flat and HNSW);
- Docket: query analysis + embedding the question + ``ingest.retrieval.rank_chunks``, the very function
  ``DocumentStore.search`` calls between its registry reads (dense search, BM25 scores, convex
  completion, the signalled chunks joining, fusion, document signals, page pooling), over chunk facts
  laid out by ``synthetic_facts``; every question a new text (the encoder caches repeated questions).

And recall@10 of HNSW against the flat index on 500 held-out vectors drawn like the corpus.
"""

from __future__ import annotations

import argparse
import statistics
import time

import faiss
import numpy as np

from ingest.config import EmbeddingSettings
from ingest.embedding import Encoder
from ingest.lexical import LexicalIndex
from ingest.query import plan_query
from ingest.retrieval import ChunkFacts, RetrievalOptions, rank_chunks
from ingest.vector_index import HNSW_EF_SEARCH, HNSW_M, VectorIndex

QUESTIONS = [
    "What is the FY2018 capital expenditure amount (in USD millions) for 3M? Give a response to the question "
    "by relying on the details shown in the cash flow statement.",
    "Which state/country's law governs the interpretation of the contract?",
    "What drove operating margin change as of FY2022 for 3M?",
    "Can a party terminate this contract without cause (solely by giving a notice and allowing a waiting period to expire)?",
    "How much has the effective tax rate of American Express changed between FY2021 and FY2022?",
    "What is the renewal term after the initial term expires?",
    "Has Verizon increased its debt on balance sheet between 2022 and the 2021 fiscal period?",
    "Does the contract include a cap on liability upon the breach of a party's obligation?",
]
FINANCE_WORDS = "revenue income cash flows operating investing financing property plant equipment governing law term".split()


def synthetic_corpus(n: int, dimension: int, seed: int = 7) -> tuple[np.ndarray, list[str], np.ndarray]:
    rng = np.random.default_rng(seed)
    centroids = rng.standard_normal((2000, dimension)).astype(np.float32)
    assign = rng.integers(0, len(centroids), n + 500)
    vectors = centroids[assign] + 0.8 * rng.standard_normal((n + 500, dimension)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    vocabulary = np.asarray([f"w{i}" for i in range(50_000)] + FINANCE_WORDS)
    ranks = np.minimum(rng.zipf(1.2, (n, 120)) - 1, len(vocabulary) - 1)
    texts = [" ".join(vocabulary[row]) for row in ranks]
    return vectors[:n], texts, vectors[n:]


STATEMENT_TITLES = ("Consolidated Statements of Cash Flows", "Consolidated Balance Sheets", "Consolidated Statements of Income")


def synthetic_facts(n: int) -> ChunkFacts:
    """Chunk facts for ``n`` synthetic chunks: documents of 100 chunks on 20 pages, 2% on statement pages."""
    rng = np.random.default_rng(1)
    rows = [
        (i + 1, i // 100, (i % 100) // 5 + 1, (i % 5) * 800,
         STATEMENT_TITLES[rng.integers(3)] if rng.random() < 0.02 else "NOTE 5. Debt")
        for i in range(n)
    ]
    return ChunkFacts.build(rows, {v: f"COMPANY{v} 2022 10K" for v in range(n // 100 + 1)})


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[int(0.95 * (len(ordered) - 1))]


def time_it(fn, repeat: int) -> list[float]:
    out = []
    for i in range(repeat):
        started = time.perf_counter()
        fn(i)
        out.append((time.perf_counter() - started) * 1000)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args()

    encoder = Encoder(EmbeddingSettings())
    dimension = encoder.dimension
    print(f"building a synthetic corpus of {args.chunks:,} chunks (dimension {dimension}) ...", flush=True)
    vectors, texts, held_out = synthetic_corpus(args.chunks, dimension)
    ids = np.arange(1, args.chunks + 1, dtype=np.int64)
    indexes = {}
    for kind in ("flat", "hnsw"):
        started = time.perf_counter()
        index = VectorIndex(dimension, kind=kind)
        index.add(ids, vectors)
        indexes[kind] = index
        print(f"  {kind} index built in {time.perf_counter() - started:.1f} s", flush=True)
    started = time.perf_counter()
    lexical = LexicalIndex.build(list(map(int, ids)), texts)
    print(f"  BM25 index built in {time.perf_counter() - started:.1f} s", flush=True)

    faiss.omp_set_num_threads(1)  # the bare searches too: one query on one thread, as VectorIndex.search runs them
    exact = indexes["flat"]
    recall = statistics.fmean(
        len({i for i, _ in indexes["hnsw"].search(q, 10)} & {i for i, _ in exact.search(q, 10)}) / 10 for q in held_out
    )

    encoder.encode_query("warm up")
    options = RetrievalOptions()
    facts = synthetic_facts(args.chunks)

    def question(i: int) -> str:
        # A different text every time: the encoder caches the vectors of repeated questions.
        return f"{QUESTIONS[i % len(QUESTIONS)]} ({kind} {i})"

    rows = []
    for kind, index in indexes.items():
        bare = time_it(lambda i: index.index.search(held_out[i % len(held_out)][None, :], 50), args.queries)

        def docket_query(i: int, index=index) -> None:
            plan = plan_query(question(i))
            rank_chunks(plan, encoder.encode_query(plan.text), index, lexical, facts, options)

        full = time_it(docket_query, args.queries)
        embed = time_it(lambda i: encoder.encode_query(plan_query(question(i + args.queries)).text), args.queries)
        rows.append((kind, *percentiles(bare), *percentiles(embed), *percentiles(full)))

    print(f"\n{args.chunks:,} synthetic chunks, {args.queries} queries, 1 search thread; milliseconds")
    print("| index | bare FAISS p50 | p95 | embed question p50 | p95 | Docket query p50 | p95 |")
    print("|---|---|---|---|---|---|---|")
    for kind, *values in rows:
        print(f"| {kind} | " + " | ".join(f"{v:.1f}" for v in values) + " |")
    print(f"\nHNSW (M={HNSW_M}, efSearch={HNSW_EF_SEARCH}) recall@10 against flat: {recall:.3f}")


if __name__ == "__main__":
    main()
