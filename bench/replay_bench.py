"""How long a replay takes at scale: an answer replayed on its frozen index of 100k chunks.

    python -m bench.replay_bench [--chunks 100000] [--documents 1000] [--repeat 3]

The corpus is SYNTHETIC and written straight into a registry (no 100k-chunk real corpus is available
offline, and ingesting 100k chunks of PDFs would time the ingest, not the replay): ``--documents``
documents of equal share, each one version, its chunks' texts and vectors drawn as in
``bench.retrieval_bench.synthetic_corpus`` (120 words of a Zipf vocabulary; vectors around 2,000
centroids). The question is embedded by the real encoder, the answer is Docket's extractive answerer's,
and everything else is the code ``docket audit replay`` runs, audit entries included.

Timed, each ``--repeat`` times (median shown):

- ``ask``: the recorded answer (its first ask also writes the settings and corpus entries);
- ``frozen, live``: a frozen replay while the corpus is still today's (the store's own FAISS and BM25);
- ``frozen, rebuilt``: after a new version of one document, the frozen index built from the registry
  (FAISS from the stored vectors, BM25 from the texts) — the first run only, since it then keeps BM25;
- ``frozen, cached``: the same replay with BM25 from the replay cache (FAISS still from the vectors);
- ``current``: the same question on today's corpus (``--against current``);
- ``corpus snapshot``: what an ask pays when the generation has changed (the live versions and their
  chunk counts read again).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

QUESTION = "Which state's law governs the agreement?"


def build_registry(docket, chunks: int, documents: int, seed: int = 7) -> None:
    """``documents`` documents of ``chunks // documents`` chunks each, straight into the registry."""
    from sqlalchemy import insert, update

    from bench.retrieval_bench import synthetic_corpus
    from ingest.registry import ChunkRow, Document, DocumentVersion, IndexState

    store = docket.store
    vectors, texts, _ = synthetic_corpus(chunks, store.encoder.dimension, seed)
    per = chunks // documents
    with store.sessions.begin() as session:
        for d in range(documents):
            sha = hashlib.sha256(f"synthetic document {d}".encode()).hexdigest()
            document = Document(collection="bench", source_key=f"/synthetic/{d}.pdf", name=f"synthetic-{d:05d}.pdf")
            session.add(document)
            session.flush()
            version = DocumentVersion(document_id=document.id, sha256=sha, version=1, size_bytes=1, media_type="application/pdf",
                                      title=None, page_count=per // 4 + 1)
            session.add(version)
            session.flush()
            rows = []
            for i in range(d * per, (d + 1) * per):
                text = texts[i]
                rows.append({
                    "version_id": version.id, "doc_sha256": sha, "page": (i - d * per) // 4 + 1, "char_start": 0,
                    "char_end": len(text), "text": text, "text_sha256": hashlib.sha256(text.encode()).hexdigest(),
                    "token_count": 120, "method": "pymupdf", "confidence": None, "boxes": [], "context": "",
                    "embedding_model": store.encoder.model_id, "embedding": vectors[i].tobytes(),
                })
            session.execute(insert(ChunkRow), rows)
        session.execute(update(IndexState).where(IndexState.id == 1).values(generation=IndexState.generation + 1))


def new_version(docket, document_index: int = 0) -> None:
    """One document gets a second version (the same chunks' texts reversed), as a re-ingest would leave it."""
    from sqlalchemy import select, update

    from ingest.registry import ChunkRow, Document, DocumentVersion, IndexState

    store = docket.store
    with store.sessions.begin() as session:
        document = session.execute(select(Document).where(Document.name == f"synthetic-{document_index:05d}.pdf")).scalar_one()
        old = session.execute(select(DocumentVersion).where(DocumentVersion.document_id == document.id,
                                                            DocumentVersion.status == "current")).scalar_one()
        old.status = "superseded"
        sha = hashlib.sha256(f"synthetic document {document_index} v2".encode()).hexdigest()
        version = DocumentVersion(document_id=document.id, sha256=sha, version=2, size_bytes=1,
                                  media_type="application/pdf", title=None, page_count=old.page_count)
        session.add(version)
        session.flush()
        for chunk in session.execute(select(ChunkRow).where(ChunkRow.version_id == old.id)).scalars().all():
            text = " ".join(reversed(chunk.text.split()))
            session.add(ChunkRow(version_id=version.id, doc_sha256=sha, page=chunk.page, char_start=0,
                                 char_end=len(text), text=text, text_sha256=hashlib.sha256(text.encode()).hexdigest(),
                                 token_count=chunk.token_count, method=chunk.method, confidence=None, boxes=[],
                                 context="", embedding_model=chunk.embedding_model, embedding=chunk.embedding))
        session.execute(update(IndexState).where(IndexState.id == 1).values(generation=IndexState.generation + 1))


def timed(run, repeat: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--documents", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    from pipeline.app import Docket
    from pipeline.ask import AskOptions, ask
    from pipeline.replay import snapshots
    from pipeline.replay.runner import replay_entry
    from pipeline.settings import load_settings

    with tempfile.TemporaryDirectory(prefix="docket-replay-bench-") as tmp:
        docket = Docket(load_settings(home=Path(tmp) / "home"))
        started = time.perf_counter()
        build_registry(docket, args.chunks, args.documents)
        print(f"registry: {args.chunks} synthetic chunks in {args.documents} documents, written in "
              f"{time.perf_counter() - started:.1f} s")
        started = time.perf_counter()
        docket.store.vectors(), docket.store.lexical()  # the live indexes, as a warm service holds them
        print(f"live FAISS and BM25 built in {time.perf_counter() - started:.1f} s (not part of any figure below)")
        ask(docket, QUESTION, AskOptions(collection="bench"))  # warm: the encoder, the first settings entry
        rows = []
        t, record = timed(lambda: ask(docket, QUESTION, AskOptions(collection="bench")), args.repeat)
        rows.append(("ask", t))
        seq = record.audit_seq
        t, report = timed(lambda: replay_entry(docket, seq), args.repeat)
        assert report.outcome == "identical", report.to_dict()
        rows.append(("frozen, live", t))
        new_version(docket)
        t, report = timed(lambda: replay_entry(docket, seq), 1)
        assert report.outcome == "identical" and report.index_source.startswith("rebuilt:"), report.to_dict()
        rows.append(("frozen, rebuilt", t))
        t, report = timed(lambda: replay_entry(docket, seq), args.repeat)
        assert report.outcome == "identical" and "replay cache" in report.index_source, report.to_dict()
        rows.append(("frozen, cached", t))
        docket.store.vectors(), docket.store.lexical()  # today's indexes, warm
        t, report = timed(lambda: replay_entry(docket, seq, "current"), args.repeat)
        rows.append(("current", t))

        def fresh_snapshot():
            snapshots._corpus_cache.pop(docket.store, None)
            return snapshots.corpus_snapshot(docket.store)

        t, _ = timed(fresh_snapshot, args.repeat)
        rows.append(("corpus snapshot", t))
    print(f"{'step':<18} {'seconds':>8}  (median of {args.repeat}; 'frozen, rebuilt' once)")
    for name, seconds in rows:
        print(f"{name:<18} {seconds:>8.3f}")


if __name__ == "__main__":
    main()
