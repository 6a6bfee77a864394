"""Does the int8 encoder find what torch's fp32 vectors find? Retrieval with each backend on the same chunks.

    python -m bench.backend_agreement QUESTIONS.jsonl [--root DIR] [--workspace DIR] [--no-ingest] [--scope doc]

The reference is the eval workspace `docket eval QUESTIONS.jsonl` uses with the default (torch) settings,
or ``--workspace``; the questions' missing documents are ingested into it first unless ``--no-ingest``
(then only the questions whose documents it holds are scored). Its registry is copied (SQLite's backup,
so a workspace another process is still filling gives a consistent snapshot) into a scratch folder
three times, and each copy searched with ``pipeline.evaluation.evaluate_retrieval``, as `docket eval`
does:

- ``torch``: the stored torch vectors, questions by the fp32 ONNX export (the default configuration);
- ``onnx-int8``: every chunk re-encoded with the int8 backend in ingest's order and batches
  (``ingest.store.encode_texts`` per document version, vectors already stored for the same text and
  context reused, as ``DocumentStore._embed`` does), questions by int8: what a workspace ingested with
  ``embedding.backend: onnx-int8`` holds, on exactly the same chunks (chunking and extraction cannot
  differ between the two);
- ``mixed``: the torch vectors with int8 questions: an existing workspace after the default switched.

Printed: per configuration and mode (dense, BM25, hybrid) page R@1, R@5, R@10, MRR@10 and span R@5;
the cosine between each chunk's torch and int8 vectors (mean, 1st percentile, minimum); and per mode
how often int8 and mixed rank the first gold page differently from torch, and the share of torch's
top-10 pages that each also returns.
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from ingest.retrieval import RetrievalOptions
from pipeline.evaluation import ModeReport, default_workspace, evaluate_retrieval, ingest_documents, load_questions

OTHER = "onnx-int8"


def docket_at(home: Path, backend: str):
    from pipeline.app import Docket
    from pipeline.settings import load_settings

    settings = load_settings()
    settings.embedding.backend = backend
    return Docket(settings.model_copy(update={"home": home}))


def copy_registry(source: Path, target: Path) -> None:
    """The registry alone (no index files: FAISS and BM25 are rebuilt from it on the first search)."""
    target.mkdir(parents=True)
    with sqlite3.connect(f"file:{source / 'registry.db'}?mode=ro", uri=True) as src, \
            sqlite3.connect(target / "registry.db") as dst:
        src.backup(dst)


def reencode(home: Path, backend: str) -> tuple[int, float]:
    """Every chunk's vector in ``home``'s registry replaced by ``backend``'s, in ingest's order and
    batches; (texts encoded, CPU seconds)."""
    from ingest.config import EmbeddingSettings
    from ingest.embedding import Encoder
    from ingest.store import embedding_text, encode_texts

    encoder = Encoder(EmbeddingSettings(backend=backend))
    db = sqlite3.connect(home / "registry.db")
    rows = db.execute("SELECT id, version_id, text, text_sha256, context FROM chunks ORDER BY version_id, id").fetchall()
    vectors: dict[tuple[str, str], bytes] = {}  # (text SHA-256, context) -> vector, as DocumentStore._embed reuses
    encoded, started = 0, time.process_time()
    by_version: dict[int, list[tuple]] = {}
    for row in rows:
        by_version.setdefault(row[1], []).append(row)
    for version_rows in by_version.values():
        todo = [r for r in version_rows if (r[3], r[4] or "") not in vectors]
        if todo:
            texts = [embedding_text(SimpleNamespace(text=r[2], context=r[4])) for r in todo]  # what ingest embeds
            fresh = encode_texts(encoder, texts)
            for r, vector in zip(todo, fresh, strict=True):
                vectors.setdefault((r[3], r[4] or ""), np.ascontiguousarray(vector, dtype=np.float32).tobytes())
            encoded += len(todo)
        db.executemany("UPDATE chunks SET embedding = ? WHERE id = ?",
                       [(vectors[(r[3], r[4] or "")], r[0]) for r in version_rows])
    db.commit()
    db.close()
    return encoded, time.process_time() - started


def chunk_vectors(home: Path) -> dict[int, np.ndarray]:
    with sqlite3.connect(f"file:{home / 'registry.db'}?mode=ro", uri=True) as db:
        return {i: np.frombuffer(blob, dtype=np.float32) for i, blob in db.execute("SELECT id, embedding FROM chunks")}


def fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("questions", type=Path)
    parser.add_argument("--root", type=Path, help="folder the pdf_path values are relative to (default: the file's parent's parent)")
    parser.add_argument("--workspace", type=Path, help="the torch eval workspace (default: the one `docket eval` uses)")
    parser.add_argument("--no-ingest", action="store_true", help="score only questions whose documents the workspace holds")
    parser.add_argument("--scope", default="doc", choices=("doc", "corpus"))
    args = parser.parse_args()

    questions = load_questions(args.questions)
    root = args.root or args.questions.resolve().parent.parent
    reference = args.workspace
    if reference is None:
        from pipeline.settings import load_settings

        reference = default_workspace(load_settings(), questions, root)
    print(f"reference workspace: {reference}", flush=True)
    doc_ids = ingest_documents(docket_at(reference, "torch").store, questions, root, ingest_missing=not args.no_ingest)
    questions = [q for q in questions if q.pdf_path in doc_ids and all(ev.pdf_path in doc_ids for ev in q.evidence)]

    scratch = Path(tempfile.mkdtemp(prefix="docket-backends-"))
    try:
        homes = {name: scratch / name for name in ("torch", OTHER, "mixed")}
        for home in homes.values():
            copy_registry(reference, home)
        encoded, cpu = reencode(homes[OTHER], OTHER)
        print(f"re-encoded {encoded} chunk texts with {OTHER} in {cpu:.0f} CPU s", flush=True)
        backends = {"torch": "torch", OTHER: OTHER, "mixed": OTHER}
        reports: dict[str, list[ModeReport]] = {}
        chunks = 0
        for name, home in homes.items():
            docket = docket_at(home, backends[name])
            options = RetrievalOptions.from_settings(docket.settings.retrieval)
            reports[name] = evaluate_retrieval(docket.store, questions, doc_ids, root, args.scope, options)
            chunks = docket.store.count_live_chunks()
        torch_vectors, int8_vectors = chunk_vectors(homes["torch"]), chunk_vectors(homes[OTHER])
        cosines = np.array([float(torch_vectors[i] @ int8_vectors[i]) for i in torch_vectors])
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    scored = reports["torch"][0].questions
    print(f"\n{args.questions}: {scored} questions with gold pages over {len(doc_ids)} documents, {chunks} chunks; "
          f"scope {args.scope}")
    print("\n| configuration | mode | R@1 | R@5 | R@10 | MRR@10 | span R@5 |")
    print("|---|---|---|---|---|---|---|")
    for name, modes in reports.items():
        for m in modes:
            print(f"| {name} | {m.mode} | {fmt(m.recall[1])} | {fmt(m.recall[5])} | {fmt(m.recall[10])} | {fmt(m.mrr)} "
                  f"| {fmt((m.span_recall or {}).get(5))} |")
    print(f"\nchunk vectors, int8 against torch: cosine mean {cosines.mean():.4f}, 1st percentile "
          f"{np.percentile(cosines, 1):.4f}, min {cosines.min():.4f} ({len(cosines)} chunks)")
    print("\n| against torch | mode | first gold rank differs | top-10 pages shared |")
    print("|---|---|---|---|")
    for name in (OTHER, "mixed"):
        for reference_mode, other_mode in zip(reports["torch"], reports[name], strict=True):
            pairs = list(zip(reference_mode.per_question, other_mode.per_question, strict=True))
            moved = sum(a.first_gold_rank != b.first_gold_rank for a, b in pairs)
            shared = statistics.fmean(len(set(a.pages) & set(b.pages)) / len(set(a.pages)) for a, b in pairs if a.pages)
            print(f"| {name} | {reference_mode.mode} | {moved} of {len(pairs)} | {shared:.3f} |")


if __name__ == "__main__":
    main()
