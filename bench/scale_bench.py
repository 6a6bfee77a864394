"""Scale-out benchmark: ingest pages/s and review cells/s on the local engine and on Ray, on this machine,
and the per-item costs docs/scale.md extrapolates from (the driver's commit, the encoder, FAISS, Ray's
per-task overhead).

    python -m bench.scale_bench [--files samples/contracts] [--scans samples/scans/consulting_agreement_scan.pdf]
                                [--ocr-dpi 150] [--cpus 2] [--address HOST:PORT] [--postgres] [--skip-review]

On a machine of two cores this measures what Ray costs, not what it gains: both engines have the same
two cores, and Ray adds its processes, the object store and a round trip per task. The figures are
per task and per item so that they can be read apart from the machine's size. With no ``--address`` a
private local Ray of ``--cpus`` CPUs is started and stopped. The machine's load average is printed
beside the figures: on a shared machine every rate swings with it.

With ``--postgres`` it also measures the shared audit log's appends/s with 1 and 8 concurrent writer
processes (``bench.audit_bench``'s append run: each append its own durable commit and signed head), in a
fresh PostgreSQL schema: what every driver of a cluster shares.
"""

from __future__ import annotations

import argparse
import os
import resource
import secrets
import tempfile
import time
from pathlib import Path

import numpy as np

from pipeline.app import Docket
from pipeline.settings import load_settings

REPO = Path(__file__).resolve().parents[1]
DEFAULT_FILES = [REPO / "samples" / "contracts", REPO / "samples" / "scans" / "consulting_agreement_scan.pdf"]
CHECKLIST = """\
name: scale-bench
title: Scale bench checks
items:
  - id: governing-law
    title: Governing law
    question: Which state's law governs the agreement?
    requirement: The agreement is governed by California law.
  - id: termination
    title: Termination notice
    question: How much notice is needed to terminate the agreement?
    requirement: Termination needs at least 30 days' notice.
  - id: assignment
    title: Assignment
    question: Can a party assign the agreement without consent?
    requirement: Assignment needs the other party's consent.
"""


class PostgresSchemas:
    """A fresh schema per engine in the test server's database, dropped at the end."""

    def __init__(self):
        from sqlalchemy import create_engine

        self.base = os.environ.get("DOCKET_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
        self.admin = create_engine(self.base)
        self.names: dict[str, str] = {}

    def url(self, engine: str) -> str:
        from sqlalchemy.engine import make_url

        if engine not in self.names:
            self.names[engine] = f"scale_bench_{engine}_{secrets.token_hex(4)}"
            with self.admin.begin() as conn:
                conn.exec_driver_sql(f"CREATE SCHEMA {self.names[engine]}")
        url = make_url(self.base).update_query_dict({"options": f"-csearch_path={self.names[engine]}"})
        return url.render_as_string(hide_password=False)

    def drop(self) -> None:
        with self.admin.begin() as conn:
            for name in self.names.values():
                conn.exec_driver_sql(f"DROP SCHEMA {name} CASCADE")
        self.admin.dispose()


def load() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


class CommitTimer:
    """Seconds the driver spends in DocumentStore.commit_version (the registry transaction and FAISS update)."""

    def __init__(self, store):
        self.seconds, self.calls, self.chunks = 0.0, 0, 0
        real = store.commit_version

        def timed(path, collection, extracted, chunks, vectors, tags):
            started = time.perf_counter()
            try:
                return real(path, collection, extracted, chunks, vectors, tags)
            finally:
                self.seconds += time.perf_counter() - started
                self.calls += 1
                self.chunks += len(chunks)

        store.commit_version = timed


def cpu_seconds() -> float:
    """CPU time of this process and of its children that have ended (Tesseract runs as one)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def ingest(docket: Docket, files: list[Path]) -> dict:
    from pipeline.documents import ingest_documents

    timer = CommitTimer(docket.store)
    started, cpu = time.perf_counter(), cpu_seconds()
    report = ingest_documents(docket, files, "bench")  # on Ray when compute.engine says so
    seconds, cpu = time.perf_counter() - started, cpu_seconds() - cpu
    summary = report.summary()
    assert summary["failed"] == 0, [r.error for r in report.failed]
    # Locally (ocr.workers 1) every step runs in this process or its Tesseract children: its CPU is the work's.
    return {**summary, "seconds": seconds, "cpu_seconds": cpu, "commit_seconds": timer.seconds, "commits": timer.calls}


def review(docket: Docket) -> dict:
    from pipeline.review import parse_checklist, run_review

    started, cpu = time.perf_counter(), cpu_seconds()
    outcome = run_review(docket, parse_checklist(CHECKLIST), collection="bench", new=True)
    seconds, cpu = time.perf_counter() - started, cpu_seconds() - cpu
    # Locally every cell runs in this process: its CPU is the cells'. On Ray it is the driver's share.
    return {"cells": outcome.ran, "seconds": seconds, "cpu_seconds": cpu}


def ray_task_overhead(count: int = 200) -> dict:
    """Milliseconds per empty task and per empty actor call, round trip through the cluster."""
    import ray

    @ray.remote
    def nothing(x):
        return x

    @ray.remote
    class Echo:
        def echo(self, x):
            return x

    ray.get([nothing.remote(i) for i in range(10)])
    started = time.perf_counter()
    ray.get([nothing.remote(i) for i in range(count)])
    task_ms = (time.perf_counter() - started) * 1000 / count
    echo = Echo.remote()
    ray.get(echo.echo.remote(0))
    started = time.perf_counter()
    for i in range(count):  # one at a time: the latency of a call, as a driver waiting on it sees it
        ray.get(echo.echo.remote(i))
    call_ms = (time.perf_counter() - started) * 1000 / count
    ray.kill(echo)
    return {"task_ms": task_ms, "actor_call_ms": call_ms}


def actor_start_up(docket: Docket, count: int) -> dict:
    """Seconds until ``count`` encoder actors (ingest) and ``count`` Docket workers (reviews, questions) are
    ready: what a Ray run pays once, before its first item, on top of the per-task overhead."""
    import ray

    from pipeline.compute.ingest_tasks import remote_functions
    from pipeline.compute.review import ready
    from pipeline.compute.workers import start_workers

    s = docket.settings
    started = time.perf_counter()
    encoders = [remote_functions().EncoderWorker.options(scheduling_strategy="SPREAD").remote(s.embedding) for _ in range(count)]
    ray.get([e.node.remote() for e in encoders])
    encoders_s = time.perf_counter() - started
    started = time.perf_counter()
    workers = start_workers(s, count, 1, None, 0)
    ready(workers)
    workers_s = time.perf_counter() - started
    for actor in [*encoders, *workers]:
        ray.kill(actor)
    return {"encoders_s": encoders_s, "workers_s": workers_s, "count": count}


def encoder_rate(docket: Docket) -> dict:
    """Chunks/s of one encoder process over the bench's own chunks (the model loaded before timing)."""
    from sqlalchemy import select

    from ingest.registry import ChunkRow
    from ingest.store import encode_texts

    store = docket.store
    with store.sessions() as session:
        rows = session.execute(select(ChunkRow.context, ChunkRow.text)).all()
    texts = [f"{c}\n{t}" if c else t for c, t in rows]
    store.encoder.encode(["warm up"])
    started, cpu = time.perf_counter(), cpu_seconds()
    encode_texts(store.encoder, texts)
    return {"chunks": len(texts), "chunks_per_s": len(texts) / (time.perf_counter() - started),
            "cpu_ms_per_chunk": 1000 * (cpu_seconds() - cpu) / len(texts)}


def index_rates(flat_vectors: int, hnsw_vectors: int, dimension: int = 384) -> dict:
    """FAISS add and save rates on random unit vectors: flat (up to ingest.vector_index.FLAT_LIMIT) and HNSW
    (beyond). An ingest saves the whole index after each document, so a save's cost grows with the index."""
    from ingest.vector_index import VectorIndex

    rng = np.random.default_rng(7)
    out = {}
    for kind, count in (("flat", flat_vectors), ("hnsw", hnsw_vectors)):
        vectors = rng.standard_normal((count, dimension)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        index = VectorIndex(dimension, kind=kind)
        started = time.perf_counter()
        index.add(np.arange(1, count + 1, dtype=np.int64), vectors)
        add_s = time.perf_counter() - started
        with tempfile.TemporaryDirectory(prefix="docket-scale-index-") as folder:
            started = time.perf_counter()
            index.save(Path(folder), "bench", 1)
            save_s = time.perf_counter() - started
            saved = sum(f.stat().st_size for f in Path(folder).iterdir())
        out[kind] = {"count": count, "add_per_s": count / add_s, "save_s": save_s, "save_mb_per_s": saved / save_s / 1e6}
    return out


def audit_appends(appends: int, payload_bytes: int) -> list[dict]:
    """Appends/s and CPU ms an append (the writers' and their PostgreSQL backends') with 1 and 8 writers."""
    from bench.audit_bench import append_run, backend

    rows = []
    with tempfile.TemporaryDirectory(prefix="docket-scale-audit-") as tmp:
        for writers in (1, 8):
            with backend("postgres", Path(tmp)) as url:
                per_writer = appends // writers
                wall, cpu, backend_cpu = append_run(url, writers, per_writer, payload_bytes, Path(tmp) / "keys")
            count = per_writer * writers
            rows.append({"writers": writers, "appends": count, "per_s": count / wall, "writer_cpu_ms": 1000 * cpu / count,
                         "backend_cpu_ms": None if backend_cpu is None else 1000 * backend_cpu / count})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", nargs="+", type=Path, default=DEFAULT_FILES[:1], help="PDFs with a text layer")
    parser.add_argument("--scans", nargs="*", type=Path, default=DEFAULT_FILES[1:], help="PDFs whose pages need OCR")
    parser.add_argument("--flat-vectors", type=int, default=50_000)
    parser.add_argument("--hnsw-vectors", type=int, default=20_000)
    parser.add_argument("--ocr-dpi", type=int, default=150)
    parser.add_argument("--cpus", type=int, default=2, help="CPUs of the private local Ray (no --address)")
    parser.add_argument("--address", help="an existing Ray cluster (host:port); default: a private local one")
    parser.add_argument("--skip-review", action="store_true")
    parser.add_argument("--postgres", action="store_true",
                        help="registry and audit log of both engines in fresh schemas of DOCKET_TEST_PG_URL (dropped after); "
                             "and the audit log's appends/s with 1 and 8 writers")
    parser.add_argument("--audit-appends", type=int, default=400, help="with --postgres: appends per writer count")
    args = parser.parse_args(argv)

    if not args.address:
        # The private Ray gets a token of its own (Ray reads these when imported), instead of writing one to
        # ~/.ray/auth_token, which later `ray start`s on this machine would pick up.
        os.environ.setdefault("RAY_AUTH_MODE", "token")
        os.environ.setdefault("RAY_AUTH_TOKEN", secrets.token_hex(32))
    import ray

    if args.address:
        ray.init(address=args.address, log_to_driver=False, logging_level="warning")
    else:
        ray.init(address="local", num_cpus=args.cpus, include_dashboard=False, object_store_memory=200_000_000,
                 log_to_driver=False, logging_level="warning")
    print(f"# Ray {ray.__version__}, {len([n for n in ray.nodes() if n['Alive']])} node(s), "
          f"{ray.cluster_resources().get('CPU', 0):g} CPUs; registry and audit log in "
          f"{'PostgreSQL' if args.postgres else 'SQLite'}; {load()}", flush=True)
    schemas = PostgresSchemas() if args.postgres else None
    try:
        with tempfile.TemporaryDirectory(prefix="docket-scale-") as tmp:
            results = {}
            for engine in ("local", "ray"):
                # One OCR process locally, as each Ray task has: the engines then differ in where work runs only.
                urls = {"registry_url": schemas.url(engine), "audit_url": schemas.url(engine)} if schemas else {}
                docket = Docket(load_settings(home=Path(tmp) / engine, ocr={"dpi": args.ocr_dpi, "workers": 1},
                                              compute={"engine": engine}, migrations={"auto_upgrade": True}, **urls))
                if engine == "local":
                    docket.store.encoder.encode(["warm up"])  # the model's load is the process's, not a page's
                    text, scans = ingest(docket, args.files), ingest(docket, args.scans)
                    results["local-text"], results["local-scans"] = text, scans
                    results["local"] = {k: text[k] + scans[k] for k in ("pages", "ocr_pages", "chunks", "seconds", "cpu_seconds")}
                else:
                    results["ray"] = ingest(docket, [*args.files, *args.scans])
                print(f"ingest {engine}: {results[engine]}; {load()}", flush=True)
                if not args.skip_review:
                    results[f"review-{engine}"] = review(docket)
                    print(f"review {engine}: {results[f'review-{engine}']}; {load()}", flush=True)
            overhead = ray_task_overhead()
            start_up = actor_start_up(docket, max(1, len([n for n in ray.nodes() if n["Alive"]])) * int(args.cpus))
            encoder = encoder_rate(docket)
    finally:
        ray.shutdown()
        if schemas:
            schemas.drop()
    index = index_rates(args.flat_vectors, args.hnsw_vectors)
    appends = audit_appends(args.audit_appends, 8192) if args.postgres else []

    print()
    print("| measure | local | Ray | Ray / local |")
    print("|---|---|---|---|")
    for name in ("local", "ray"):
        r = results[name]
        r["pages_per_s"] = r["pages"] / r["seconds"]
    ratio = results["ray"]["pages_per_s"] / results["local"]["pages_per_s"]
    print(f"| ingest pages/s ({results['local']['pages']} pages, {results['local']['ocr_pages']} by OCR) | "
          f"{results['local']['pages_per_s']:.2f} | {results['ray']['pages_per_s']:.2f} | {ratio:.2f} |")
    if not args.skip_review:
        local, on_ray = results["review-local"], results["review-ray"]
        cells_l, cells_r = local["cells"] / local["seconds"], on_ray["cells"] / on_ray["seconds"]
        print(f"| review cells/s ({local['cells']} cells, extractive) | {cells_l:.2f} | {cells_r:.2f} | {cells_r / cells_l:.2f} |")
    ray_r, text_r, scans_r = results["ray"], results["local-text"], results["local-scans"]
    cell_rows = []
    if not args.skip_review:
        cell_rows = [
            f"| local engine, CPU s per review cell (extractive; {local['cells']} cells) | {local['cpu_seconds'] / local['cells']:.3f} |",
            f"| Ray driver, CPU s per review cell (submit, record finding and state row) | {on_ray['cpu_seconds'] / on_ray['cells']:.4f} |",
        ]
    print()
    print("| per item | value |")
    print("|---|---|")
    print(f"| local engine, CPU s per text-layer page (read, chunk, encode; {text_r['pages']} pages) | {text_r['cpu_seconds'] / text_r['pages']:.3f} |")
    if scans_r["pages"]:
        print(f"| local engine, CPU s per OCR page (dpi {args.ocr_dpi}, Tesseract included; {scans_r['pages']} pages) | {scans_r['cpu_seconds'] / scans_r['pages']:.3f} |")
    print(f"| Ray driver, CPU s per page (hash, plan, commit, audit event) | {ray_r['cpu_seconds'] / ray_r['pages']:.4f} |")
    print(f"| Ray driver commit (registry + FAISS), s per document | {ray_r['commit_seconds'] / max(ray_r['commits'], 1):.3f} |")
    print(f"| Ray driver commit, ms per chunk | {1000 * ray_r['commit_seconds'] / max(ray_r['chunks'], 1):.2f} |")
    for row in cell_rows:
        print(row)
    print(f"| empty Ray task, ms (200 at once) | {overhead['task_ms']:.2f} |")
    print(f"| empty actor call, ms (one at a time) | {overhead['actor_call_ms']:.2f} |")
    print(f"| {start_up['count']} encoder actors ready (once a run), s | {start_up['encoders_s']:.1f} |")
    print(f"| {start_up['count']} Docket workers ready (once a run), s | {start_up['workers_s']:.1f} |")
    print(f"| encoder, chunks/s in one process ({encoder['chunks']} chunks) | {encoder['chunks_per_s']:.1f} |")
    print(f"| encoder, CPU ms per chunk | {encoder['cpu_ms_per_chunk']:.0f} |")
    for kind, r in index.items():
        print(f"| FAISS {kind} add, vectors/s ({r['count']} vectors) | {r['add_per_s']:.0f} |")
        print(f"| FAISS {kind} save of {r['count']} vectors, s (MB/s) | {r['save_s']:.2f} ({r['save_mb_per_s']:.0f}) |")
    if appends:
        print()
        print("| PostgreSQL audit log, 8 KB payloads | appends/s | writers' CPU ms an append | PostgreSQL's CPU ms an append |")
        print("|---|---|---|---|")
        for row in appends:
            server = "n/a" if row["backend_cpu_ms"] is None else f"{row['backend_cpu_ms']:.2f}"
            print(f"| {row['writers']} writer(s), {row['appends']} appends | {row['per_s']:.0f} | {row['writer_cpu_ms']:.2f} | {server} |")
    print(f"\n{load()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
