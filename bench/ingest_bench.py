"""Ingest speed and memory: Docket beside LlamaIndex, same model, same reader, same filings, one run.

    python -m bench.ingest_bench                       # 3 FinanceBench filings, 2 rounds, then memory
    python -m bench.ingest_bench --filings AMAZON_2017_10K.pdf --rounds 3 --skip-memory
    python -m bench.ingest_bench --tables-cost --filings Pfizer_2023Q2_10Q.pdf --rounds 3   # what tables cost

Systems (run alternately, each round in the opposite order, so load drift on a shared machine hits
all of them alike; every one on the same number of CPU threads):

- ``docket-torch`` / ``docket-onnx-int8``: the real ``DocumentStore.ingest`` into a fresh workspace
  (PyMuPDF text, token-sized chunks, MiniLM vectors, SQLite registry, FAISS index on disk).
- ``llamaindex-defaults``: LlamaIndex as its documentation shows it: one Document per page read with
  PyMuPDF (what its PyMuPDFReader does), ``VectorStoreIndex.from_documents`` (SentenceSplitter 1024/20
  tiktoken tokens), ``HuggingFaceEmbedding`` of the same local MiniLM. Its chunks are longer than the
  model reads, so the model silently drops the tail of most of them; the table counts those.
- ``llamaindex-matched``: the same, but the splitter cuts chunks of Docket's size in MiniLM's own tokens,
  so both embed all of the text.

Then the quality cost of int8: cosine of int8 to fp32 vectors of the same chunks, and how many of the
top-10 chunks for the FinanceBench questions on these filings stay the same. Then peak memory (RSS growth
over the loaded model, in a fresh process per system) ingesting one ~500-page filing.

``--tables-cost`` measures instead what table detection and table chunks cost Docket's own ingest: the
real ``DocumentStore.ingest`` (default embedding settings) of each filing into a fresh workspace, with
tables and without (``ingest.tables.page_tables`` answering "no table", so pages are laid out as before
tables existed), alternately, in CPU seconds of this process (every thread, the encoder's included; OCR
off, so no worker process), which a loaded machine inflates far less than wall time; and apart, the CPU
of reading and chunking alone, the chunks and the word pieces embedded.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

EVAL_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "eval" / "financebench"
DEFAULT_FILINGS = ("AMAZON_2017_10K.pdf", "BESTBUY_2023_10K.pdf", "Pfizer_2023Q2_10Q.pdf")
MEMORY_FILING = "PEPSICO_2022_10K.pdf"  # 503 pages
SYSTEMS = ("docket-torch", "docket-onnx-int8", "llamaindex-defaults", "llamaindex-matched")


@dataclass
class Run:
    system: str
    round: int
    seconds: float
    pages: int
    chunks: int
    truncated_chunks: int  # chunks longer than the model reads: their tail was never embedded
    embedded_tokens: int  # word pieces the model actually read (padding and truncated tails excluded)
    dropped_tokens: int  # word pieces of chunk text beyond the model's length: never embedded

    @property
    def pages_per_second(self) -> float:
        return self.pages / self.seconds


# -- Docket -----------------------------------------------------------------------------------------
def docket_settings(system: str, threads: int):
    from ingest.config import ChunkingSettings, EmbeddingSettings, OcrSettings

    backend = "onnx-int8" if system == "docket-onnx-int8" else "torch"
    # OCR off: both systems read the same PyMuPDF text layer (these filings are born-digital).
    return EmbeddingSettings(backend=backend, threads=threads), ChunkingSettings(), OcrSettings(mode="never")


def docket_store(system: str, threads: int, workspace: Path):
    from ingest.store import DocumentStore

    embedding, chunking, ocr = docket_settings(system, threads)
    store = DocumentStore(f"sqlite:///{workspace / 'registry.db'}", workspace / "index", embedding, chunking, ocr)
    store.encoder.encode(["warm up: load the model (and the int8 export) before the clock starts"])
    return store


def run_docket(system: str, files: list[Path], threads: int, workspace: Path) -> tuple[float, int, int, int, int, int]:
    from sqlalchemy import select

    from ingest.registry import ChunkRow

    store = docket_store(system, threads, workspace)
    start = time.perf_counter()
    report = store.ingest(files)
    seconds = time.perf_counter() - start
    if report.failed:
        raise SystemExit(f"{system}: {report.failed[0].path}: {report.failed[0].error}")
    summary = report.summary()
    with store.sessions() as session:
        rows = session.execute(select(ChunkRow.context, ChunkRow.text)).all()
    texts = [f"{context}\n{text}" if context else text for context, text in rows]  # what the store embeds
    lengths = [store.encoder.count_tokens(text) for text in texts]
    limit = store.encoder.max_tokens - 2
    return seconds, summary["pages"], summary["chunks"], *truncation(lengths, limit)


def token_lengths(tokenizer, texts: list[str]) -> list[int]:
    return [len(ids) for ids in tokenizer(texts, add_special_tokens=False, verbose=False)["input_ids"]]


def truncation(lengths: list[int], limit: int) -> tuple[int, int, int]:
    """(chunks longer than ``limit``, tokens read, tokens cut off)."""
    return (
        sum(n > limit for n in lengths),
        sum(min(n, limit) for n in lengths),
        sum(max(n - limit, 0) for n in lengths),
    )


# -- LlamaIndex ---------------------------------------------------------------------------------------
def llamaindex_embedding(threads: int):
    from llama_index.embeddings.huggingface import HuggingFaceEmbedding

    from ingest.embedding import resolve_model_path
    from ingest.config import PACKAGED_EMBEDDING_MODEL

    import torch

    torch.set_num_threads(threads)
    model = HuggingFaceEmbedding(model_name=str(resolve_model_path(PACKAGED_EMBEDDING_MODEL)), device="cpu")
    model.get_text_embedding("warm up")
    return model


def pymupdf_documents(files: list[Path]):
    """One Document per page with PyMuPDFReader's text and metadata (that reader lives in another package)."""
    import pymupdf
    from llama_index.core import Document

    documents = []
    for file in files:
        with pymupdf.open(file) as pdf:
            for page in pdf:
                metadata = {"total_pages": pdf.page_count, "file_path": str(file), "source": f"{page.number + 1}"}
                documents.append(Document(text=page.get_text(), metadata=metadata))
    return documents


def run_llamaindex(system: str, files: list[Path], embed_model) -> tuple[float, int, int, int, int, int]:
    from llama_index.core import VectorStoreIndex
    from llama_index.core.node_parser import SentenceSplitter
    from llama_index.core.schema import MetadataMode

    tokenizer = embed_model._model.tokenizer
    transformations = None  # LlamaIndex's default: SentenceSplitter() on tiktoken tokens
    if system == "llamaindex-matched":
        from ingest.config import ChunkingSettings

        chunking = ChunkingSettings()
        transformations = [
            SentenceSplitter(
                chunk_size=chunking.max_tokens,
                chunk_overlap=chunking.overlap_tokens,
                tokenizer=lambda text: tokenizer.tokenize(text),
            )
        ]
    start = time.perf_counter()
    documents = pymupdf_documents(files)
    index = VectorStoreIndex.from_documents(documents, embed_model=embed_model, transformations=transformations)
    seconds = time.perf_counter() - start
    nodes = list(index.docstore.docs.values())
    limit = embed_model._model.max_seq_length - 2
    lengths = token_lengths(tokenizer, [node.get_content(metadata_mode=MetadataMode.EMBED) for node in nodes])
    pages = len({(d.metadata["file_path"], d.metadata["source"]) for d in documents})
    return seconds, pages, len(nodes), *truncation(lengths, limit)


# -- speed ---------------------------------------------------------------------------------------------
def speed(files: list[Path], systems: list[str], rounds: int, threads: int, keep: Path) -> list[Run]:
    runs: list[Run] = []
    embed_model = llamaindex_embedding(threads) if any(s.startswith("llamaindex") for s in systems) else None
    for round_ in range(rounds):
        order = systems if round_ % 2 == 0 else list(reversed(systems))
        for system in order:
            gc.collect()
            if system.startswith("docket"):
                workspace = keep / f"{system}-{round_}"
                result = run_docket(system, files, threads, workspace)
            else:
                result = run_llamaindex(system, files, embed_model)
            run = Run(system, round_, *result)
            runs.append(run)
            print(
                f"  round {round_ + 1} {system:20} {run.seconds:7.1f} s  {run.pages_per_second:6.2f} pages/s  "
                f"{run.chunks} chunks  load {os.getloadavg()[0]:.1f}",
                flush=True,
            )
    return runs


def median_rate(runs: list[Run], system: str) -> float:
    return statistics.median(r.pages_per_second for r in runs if r.system == system)


# -- int8 quality ------------------------------------------------------------------------------------
def stored_vectors(workspace: Path) -> dict[str, np.ndarray]:
    import sqlalchemy as sa

    engine = sa.create_engine(f"sqlite:///{workspace / 'registry.db'}")
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT text_sha256, embedding FROM chunks")).all()
    engine.dispose()
    return {h: np.frombuffer(blob, dtype=np.float32) for h, blob in rows}


def int8_quality(keep: Path, files: list[Path], threads: int) -> dict[str, float]:
    """Cosine of int8 to fp32 vectors of the same chunks; overlap of the top-10 for real questions."""
    fp32, int8 = stored_vectors(keep / "docket-torch-0"), stored_vectors(keep / "docket-onnx-int8-0")
    shared = sorted(fp32.keys() & int8.keys())
    a = np.stack([fp32[h] for h in shared])
    b = np.stack([int8[h] for h in shared])
    cosine = (a * b).sum(axis=1)
    names = {f.stem for f in files}
    questions = [
        q["question"]
        for q in map(json.loads, (EVAL_DIR / "questions.jsonl").read_text().splitlines())
        if q.get("doc_id") in names
    ]
    overlap = []
    if questions:
        from ingest.embedding import Encoder

        torch_settings, _, _ = docket_settings("docket-torch", threads)
        int8_settings, _, _ = docket_settings("docket-onnx-int8", threads)
        qa = Encoder(torch_settings).encode(questions)
        qb = Encoder(int8_settings).encode(questions)
        for i in range(len(questions)):
            top_a = set(np.argsort(-(a @ qa[i]))[:10])
            top_b = set(np.argsort(-(b @ qb[i]))[:10])
            overlap.append(len(top_a & top_b) / 10)
    return {
        "chunks": len(shared),
        "cosine_mean": float(cosine.mean()),
        "cosine_p01": float(np.quantile(cosine, 0.01)),
        "cosine_min": float(cosine.min()),
        "questions": len(questions),
        "top10_overlap_mean": float(np.mean(overlap)) if overlap else float("nan"),
    }


# -- ONNX Runtime session options under test -------------------------------------------------------------
def apply_ort_options(options: list[str]) -> None:
    """Set ``NAME=VALUE`` attributes on the SessionOptions of every ONNX Runtime session made from now on in
    this process (``--ort-option enable_mem_pattern=false``): measures an option before ingest/embedding.py
    adopts it."""
    if not options:
        return
    import onnxruntime as ort

    parsed = []
    for option in options:
        name, _, raw = option.partition("=")
        value = {"true": True, "false": False}.get(raw.lower(), raw)
        parsed.append((name, int(value) if isinstance(value, str) and value.isdigit() else value))
    real_init = ort.InferenceSession.__init__

    def init(self, path_or_bytes, sess_options=None, *args, **kwargs):
        sess_options = sess_options or ort.SessionOptions()
        for name, value in parsed:
            if not hasattr(sess_options, name):
                raise SystemExit(f"--ort-option: onnxruntime.SessionOptions has no {name!r}")
            setattr(sess_options, name, value)
        real_init(self, path_or_bytes, sess_options, *args, **kwargs)

    ort.InferenceSession.__init__ = init


# -- memory --------------------------------------------------------------------------------------------
def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def current_rss_mib() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def record_stages(stages: list[dict]) -> None:
    """Append (stage, current RSS, peak RSS) to ``stages`` as each step of the store's ingest returns."""
    import ingest.ingestion as ingestion_module

    def after(name: str, step):
        def wrapped(*args, **kwargs):
            result = step(*args, **kwargs)
            stages.append({"stage": name, "rss_mib": current_rss_mib(), "peak_mib": peak_rss_mib()})
            return result

        return wrapped

    ingestion_module.read_document = after("extract", ingestion_module.read_document)
    for name in ("chunk", "embed", "commit"):
        method = f"_{name}"
        setattr(ingestion_module.Ingestion, method, after(name, getattr(ingestion_module.Ingestion, method)))


def memory_child(system: str, file: Path, threads: int) -> None:
    """In a fresh process: RSS peak after loading the model, then after ingesting ``file`` (and, for Docket,
    RSS after each step); print JSON."""
    stages: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        if system.startswith("docket"):
            store = docket_store(system, threads, Path(tmp))
            record_stages(stages)
            loaded = peak_rss_mib()
            stages.append({"stage": "loaded", "rss_mib": current_rss_mib(), "peak_mib": loaded})
            start = time.perf_counter()
            report = store.ingest([file])
            seconds, pages = time.perf_counter() - start, report.summary()["pages"]
        else:
            embed_model = llamaindex_embedding(threads)
            loaded = peak_rss_mib()
            seconds, pages, *_ = run_llamaindex(system, [file], embed_model)
    print(json.dumps({
        "system": system, "file": file.name, "loaded_mib": loaded, "peak_mib": peak_rss_mib(), "pages": pages,
        "seconds": seconds, "stages": stages,
    }))


def memory(file: Path, systems: list[str], threads: int, rounds: int = 1, ort_options: list[str] = ()) -> list[dict]:
    """Each system's peak in ``rounds`` fresh processes, alternating systems (one process's peak is a
    sample; the rounds show its spread)."""
    results = []
    for round_, system in ((r, s) for r in range(rounds) for s in systems):
        out = subprocess.run(
            [sys.executable, "-m", "bench.ingest_bench", "--memory-child", system, "--threads", str(threads), str(file)]
            + [f"--ort-option={option}" for option in ort_options],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).resolve().parents[1],
        )
        result = json.loads(out.stdout.strip().splitlines()[-1]) | {"round": round_}
        results.append(result)
        print(
            f"  {system:20} round {round_ + 1} peak RSS {result['peak_mib']:7.0f} MiB, {result['peak_mib'] - result['loaded_mib']:6.0f} MiB "
            f"over the loaded model; {result['pages']} pages in {result['seconds']:.0f} s",
            flush=True,
        )
        if result.get("stages"):
            print("    RSS after " + ", ".join(f"{s['stage']} {s['rss_mib']:.0f}" for s in result["stages"]) + " MiB", flush=True)
    if rounds > 1:
        for system in systems:
            peaks = sorted(r["peak_mib"] for r in results if r["system"] == system)
            print(f"  {system:20} peak RSS median {statistics.median(peaks):7.0f} MiB, range {peaks[0]:.0f}-{peaks[-1]:.0f}")
    return results


def first_pages(file: Path, pages: int, target: Path) -> Path:
    import pymupdf

    with pymupdf.open(file) as pdf, pymupdf.open() as out:
        out.insert_pdf(pdf, to_page=min(pages, pdf.page_count) - 1)
        out.save(target)
    return target


def concatenated_pdf(files: list[Path], pages: int, target: Path) -> Path:
    """A ``pages``-page PDF made of the given filings, for when no single filing is that long."""
    import pymupdf

    out = pymupdf.open()
    for file in files:
        with pymupdf.open(file) as pdf:
            take = min(pdf.page_count, pages - out.page_count)
            out.insert_pdf(pdf, to_page=take - 1)
        if out.page_count >= pages:
            break
    out.save(target)
    return target


# -- what tables cost ---------------------------------------------------------------------------------
@contextmanager
def tables_off():
    """Every text-layer page read as if it had no table (the layout before tables existed)."""
    import ingest.tables

    found = ingest.tables.page_tables
    ingest.tables.page_tables = lambda *args, **kwargs: None
    try:
        yield
    finally:
        ingest.tables.page_tables = found


def tables_cost(files: list[Path], rounds: int, workspace: Path) -> list[dict]:
    """Per filing, round and arm ("tables", "no tables"): ingest CPU seconds, read and chunk CPU seconds,
    chunks and word pieces embedded. Arms alternate, each round in the opposite order."""
    from ingest.config import ChunkingSettings, EmbeddingSettings, OcrSettings
    from ingest.extract import read_document
    from ingest.ingestion import chunk_for_encoder, embedding_text
    from ingest.store import DocumentStore

    ocr = OcrSettings(mode="never")
    results = []
    for file in files:
        for round_ in range(rounds):
            arms = ("tables", "no tables") if round_ % 2 == 0 else ("no tables", "tables")
            for arm in arms:
                home = workspace / f"{file.stem}-{round_}-{arm.replace(' ', '-')}"
                with tables_off() if arm == "no tables" else nullcontext():
                    store = DocumentStore(f"sqlite:///{home / 'registry.db'}", home / "index", EmbeddingSettings(), ChunkingSettings(), ocr)
                    store.encoder.encode(["warm up: load the model before the clock starts"])
                    gc.collect()
                    cpu = time.process_time()
                    report = store.ingest([file])
                    ingest_cpu = time.process_time() - cpu
                    if report.failed:
                        raise SystemExit(f"{file.name}: {report.failed[0].error}")
                    cpu = time.process_time()
                    document = read_document(file, ocr)
                    read_cpu = time.process_time() - cpu
                    cpu = time.process_time()
                    chunks = chunk_for_encoder(document, store.encoder, ChunkingSettings())
                    chunk_cpu = time.process_time() - cpu
                pieces = sum(store.encoder.count_tokens(embedding_text(c)) for c in chunks)
                row = {"filing": file.name, "round": round_, "arm": arm, "pages": len(document.pages),
                       "ingest_cpu_s": round(ingest_cpu, 2), "read_cpu_s": round(read_cpu, 2),
                       "chunk_cpu_s": round(chunk_cpu, 2), "chunks": len(chunks), "word_pieces": pieces,
                       "tables": sum(len(p.tables) for p in document.pages)}
                print(f"  {file.name} round {round_ + 1} {arm:9}: ingest {ingest_cpu:6.1f} s CPU, read {read_cpu:5.2f} s, "
                      f"chunk {chunk_cpu:5.2f} s, {len(chunks)} chunks, {pieces} word pieces, {row['tables']} tables", flush=True)
                results.append(row)
    return results


def print_tables_cost(results: list[dict]) -> dict:
    """Median over rounds of each arm, per filing, and what tables add in %."""
    summary = {}
    for filing in dict.fromkeys(r["filing"] for r in results):
        arm = {a: [r for r in results if r["filing"] == filing and r["arm"] == a] for a in ("tables", "no tables")}
        med = {a: {k: statistics.median(r[k] for r in rows) for k in ("ingest_cpu_s", "read_cpu_s", "chunk_cpu_s", "chunks", "word_pieces")}
               for a, rows in arm.items()}
        added = {k: 100.0 * (med["tables"][k] / med["no tables"][k] - 1) for k in med["tables"] if med["no tables"][k]}
        summary[filing] = {"median": med, "added_percent": added}
        print(f"\n{filing}: median of {len(arm['tables'])} rounds | with tables | without | added")
        for k in med["tables"]:
            print(f"  {k:13} {med['tables'][k]:10.2f} {med['no tables'][k]:10.2f} {added.get(k, float('nan')):+7.1f} %")
    return summary


# -- main ----------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.ingest_bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--filings", default=",".join(DEFAULT_FILINGS), help="comma-separated names in the pdfs folder")
    parser.add_argument("--systems", default=",".join(SYSTEMS), help=f"comma-separated, of {', '.join(SYSTEMS)}")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="CPU threads for every system")
    parser.add_argument("--memory-filing", default=MEMORY_FILING, help="a ~500-page filing for the memory test")
    parser.add_argument("--memory-systems", default="docket-onnx-int8,docket-torch,llamaindex-defaults")
    parser.add_argument("--memory-short-pages", type=int, default=100, help="the short run's pages, cut from the same filing")
    parser.add_argument("--memory-rounds", type=int, default=1, help="fresh processes per system and filing (the peak varies)")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--ort-option", action="append", default=[], metavar="NAME=VALUE", help="set an onnxruntime SessionOptions attribute (repeatable)")
    parser.add_argument("--tables-cost", action="store_true", help="only measure what tables add to Docket's ingest (CPU time, chunks, word pieces)")
    parser.add_argument("--json", type=Path, help="also write every figure to this file")
    parser.add_argument("--memory-child", help=argparse.SUPPRESS)
    parser.add_argument("file", nargs="?", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    apply_ort_options(args.ort_option)
    if args.memory_child:
        memory_child(args.memory_child, args.file, args.threads)
        return
    pdfs = EVAL_DIR / "pdfs"
    if not pdfs.is_dir():
        raise SystemExit(f"{pdfs}: FinanceBench filings not found; this bench reads ../shared/eval beside the repo")
    files = [pdfs / name for name in args.filings.split(",")]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise SystemExit(f"{missing[0]}: no such filing; pick names from {pdfs}")
    if args.tables_cost:
        print(f"tables cost: {len(files)} filings, {args.rounds} rounds, load {os.getloadavg()}", flush=True)
        with tempfile.TemporaryDirectory() as tmp:
            results = tables_cost(files, args.rounds, Path(tmp))
        figures = {"tables_cost": results, "summary": print_tables_cost(results), "load_after": os.getloadavg()}
        print(f"\nload average after: {figures['load_after']}")
        if args.json:
            args.json.write_text(json.dumps(figures, indent=2))
        return
    systems = args.systems.split(",")
    unknown = set(systems) - set(SYSTEMS)
    if unknown:
        raise SystemExit(f"--systems: unknown {sorted(unknown)}; choose from {', '.join(SYSTEMS)}")

    print(f"ingest bench: {len(files)} filings, {args.threads} threads, {args.rounds} rounds, load {os.getloadavg()}"
          + (f", ONNX Runtime options {args.ort_option}" if args.ort_option else ""))
    figures: dict = {"filings": [f.name for f in files], "threads": args.threads, "load_before": os.getloadavg(), "ort_options": args.ort_option}
    if not args.skip_speed:
        with tempfile.TemporaryDirectory() as tmp:
            runs = speed(files, systems, args.rounds, args.threads, Path(tmp))
            figures["runs"] = [asdict(r) | {"pages_per_second": r.pages_per_second} for r in runs]
            print("\nmedian pages/s; chunks; word pieces embedded, and cut off by the model's length limit:")
            rates = {}
            for system in systems:
                last = [r for r in runs if r.system == system][-1]
                rates[system] = median_rate(runs, system)
                print(
                    f"  {system:20} {rates[system]:6.2f}   {last.chunks:5} chunks ({last.truncated_chunks} truncated)  "
                    f"{last.embedded_tokens:7} embedded  {last.dropped_tokens:7} cut off"
                )
            figures["median_pages_per_second"] = rates
            ratios = {
                f"{d} / {l}": rates[d] / rates[l]
                for d in systems
                if d.startswith("docket")
                for l in systems
                if l.startswith("llamaindex")
            }
            figures["ratios"] = ratios
            print("\nratios (Docket pages/s over LlamaIndex pages/s):")
            for name, ratio in ratios.items():
                print(f"  {name:45} {ratio:5.2f}x")
            if {"docket-torch", "docket-onnx-int8"} <= set(systems):
                quality = int8_quality(Path(tmp), files, args.threads)
                figures["int8_quality"] = quality
                print(
                    f"\nint8 vs fp32 on {quality['chunks']} chunks: cosine mean {quality['cosine_mean']:.4f}, "
                    f"1st percentile {quality['cosine_p01']:.4f}, min {quality['cosine_min']:.4f}; top-10 overlap on "
                    f"{quality['questions']} FinanceBench questions {quality['top10_overlap_mean']:.2f}"
                )

    if not args.skip_memory:
        memory_file = pdfs / args.memory_filing
        with tempfile.TemporaryDirectory() as tmp:
            import pymupdf

            with pymupdf.open(memory_file) as pdf:
                long_enough = pdf.page_count >= 500
            if not long_enough:
                memory_file = concatenated_pdf(sorted(pdfs.glob("*.pdf")), 500, Path(tmp) / "concatenated-500.pdf")
            # The same filing cut to its first pages: if the peak is bounded, the long run's peak is the short one's.
            short_file = first_pages(memory_file, args.memory_short_pages, Path(tmp) / f"first-{args.memory_short_pages}.pdf")
            figures["memory"] = []
            for file in (short_file, memory_file):
                print(f"\npeak memory ingesting {file.name}:")
                figures["memory"] += memory(file, args.memory_systems.split(","), args.threads, args.memory_rounds, args.ort_option)
    figures["load_after"] = os.getloadavg()
    print(f"\nload average after: {figures['load_after']}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
