"""Audit log benchmark: durable append rate (1 and 8 writers, SQLite and PostgreSQL) and verify rate.

    python -m bench.audit_bench                      # the full run (100k-entry verify)
    python -m bench.audit_bench --entries 20000 --skip-postgres

Prints a Markdown table and the goal check: verification runs at >= 1/3 of raw SHA-256 speed over
the same bytes, where "raw" hashes exactly the messages verification must hash (each payload with
its salt, each leaf), held in memory, measured in the same run.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import os
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url

from audit import AuditLog, NewEvent
from audit.schema import entries, payloads
from audit.verify_bundle import leaf_bytes

PG_URL = os.environ.get("DOCKET_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
GOAL_FRACTION = 1 / 3


@dataclass
class Row:
    measure: str
    backend: str
    writers: int
    count: int
    seconds: float
    unit: str

    @property
    def rate(self) -> float:
        return self.count / self.seconds


def answer_payload(i: int, payload_bytes: int) -> dict[str, Any]:
    """Shaped like an answer record: question, evidence, trace, answer; floats already rendered as strings."""
    filler = ("The Supplier shall indemnify the Customer against all losses arising from breach. " * 200)[: payload_bytes // 2]
    return {
        "question": f"What is the notice period in contract {i}?",
        "evidence": [{"chunk_id": f"c{i}-{k}", "doc_sha256": hashlib.sha256(str(k).encode()).hexdigest(), "page": k, "score": "0.8125"} for k in range(5)],
        "messages_sent": filler,
        "trace": filler[: payload_bytes // 4],
        "answer": "Ninety days' written notice [S1].",
        "usage": {"prompt_tokens": 4096, "completion_tokens": 512},
    }


def _payload_bytes_actual(payload_bytes: int) -> int:
    from audit.canonical import canonical_payload

    return len(canonical_payload(answer_payload(0, payload_bytes)).encode())


@contextmanager
def backend(name: str, workdir: Path) -> Iterator[str]:
    """A fresh database: a SQLite file, or a PostgreSQL schema dropped afterwards."""
    if name == "sqlite":
        yield f"sqlite:///{workdir / f'bench-{uuid.uuid4().hex[:8]}.db'}"
        return
    schema = f"audit_bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_URL)
    with admin.begin() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    try:
        yield make_url(PG_URL).update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        admin.dispose()


def _writer(url: str, count: int, payload_bytes: int, start: Any, results: Any) -> None:
    log = AuditLog.open(url)
    start.wait()  # every writer connected: time appends only, not interpreter start-up
    began = time.perf_counter()
    for i in range(count):
        log.append("answer", answer_payload(i, payload_bytes), actor=f"bench-{os.getpid()}", request_id=f"{os.getpid()}-{i}")
    results.put((began, time.perf_counter()))
    log.close()


def append_rate(url: str, writers: int, per_writer: int, payload_bytes: int) -> float:
    """Seconds for `writers` processes to each append `per_writer` entries, one durable commit each."""
    AuditLog.open(url).close()
    spawn = multiprocessing.get_context("spawn")
    start, results = spawn.Barrier(writers), spawn.Queue()
    procs = [spawn.Process(target=_writer, args=(url, per_writer, payload_bytes, start, results)) for _ in range(writers)]
    for proc in procs:
        proc.start()
    spans = [results.get(timeout=900) for _ in procs]
    for proc in procs:
        proc.join()
    return max(end for _, end in spans) - min(began for began, _ in spans)


def build_log(url: str, count: int, payload_bytes: int) -> AuditLog:
    """A log of `count` entries through the log's own append path, 1000 entries per transaction."""
    log = AuditLog.open(url)
    for start in range(0, count, 1000):
        log.append_many(
            [
                NewEvent("answer", answer_payload(i, payload_bytes), "bench", f"r{i}", (f"doc-{i % 50}",), "answered")
                for i in range(start, min(start + 1000, count))
            ]
        )
    return log


def raw_sha256_seconds(url: str) -> tuple[float, int]:
    """Hash, in memory, exactly the messages verify hashes; returns (seconds spent hashing, bytes)."""
    engine = create_engine(url)
    seconds, total = 0.0, 0
    query = select(entries, payloads.c.salt, payloads.c.payload).join(payloads, payloads.c.seq == entries.c.seq).order_by(entries.c.seq)
    with engine.connect() as conn:
        result = conn.execution_options(yield_per=5000).execute(query)
        for chunk in result.partitions():
            messages: list[bytes] = []
            for row in chunk:
                fields = dict(row._mapping, subjects=json.loads(row.subjects))
                messages.append(bytes.fromhex(row.salt) + row.payload.encode())
                messages.append(b"\x00" + leaf_bytes(fields))
            began = time.perf_counter()
            for message in messages:
                hashlib.sha256(message).digest()
            seconds += time.perf_counter() - began
            total += sum(len(m) for m in messages)
    engine.dispose()
    return seconds, total


def pg_reachable() -> bool:
    engine = create_engine(PG_URL)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return True
    except Exception:  # unreachable for any reason: the bench says so and skips PostgreSQL
        return False
    finally:
        engine.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=100_000, help="size of the log to verify")
    parser.add_argument("--appends", type=int, default=400, help="appends per measurement (split across writers)")
    parser.add_argument("--payload-bytes", type=int, default=8192, help="approximate payload size per entry")
    parser.add_argument("--skip-postgres", action="store_true")
    args = parser.parse_args(argv)

    backends = ["sqlite"]
    if not args.skip_postgres:
        if pg_reachable():
            backends.append("postgres")
        else:
            print(f"PostgreSQL at {PG_URL} is unreachable: measuring SQLite only")
    rows: list[Row] = []
    goal_lines: list[str] = []
    with tempfile.TemporaryDirectory(prefix="audit-bench-") as tmp:
        workdir = Path(tmp)
        for name in backends:
            for writers in (1, 8):
                with backend(name, workdir) as url:
                    per_writer = args.appends // writers
                    seconds = append_rate(url, writers, per_writer, args.payload_bytes)
                    rows.append(Row("append (durable commit each)", name, writers, per_writer * writers, seconds, "entries/s"))
            with backend(name, workdir) as url:
                log = build_log(url, args.entries, args.payload_bytes)
                began = time.perf_counter()
                report = log.verify()
                verify_seconds = time.perf_counter() - began
                log.close()
                assert report.ok and report.size == args.entries, report.problem
                raw_seconds, hashed = raw_sha256_seconds(url)
            rows.append(Row(f"verify {args.entries} entries", name, 1, args.entries, verify_seconds, "entries/s"))
            verify_mbps, raw_mbps = hashed / verify_seconds / 1e6, hashed / raw_seconds / 1e6
            rows.append(Row("raw SHA-256, same bytes", name, 1, args.entries, raw_seconds, "entries/s"))
            ratio = verify_mbps / raw_mbps
            goal_lines.append(
                f"- {name}: verify {verify_mbps:.1f} MB/s vs raw SHA-256 {raw_mbps:.1f} MB/s over the same "
                f"{hashed / 1e6:.0f} MB = {ratio:.2f} of raw; goal >= {GOAL_FRACTION:.2f}: "
                f"{'MET' if ratio >= GOAL_FRACTION else 'NOT MET'}"
            )

    print(f"\nPayload ~{_payload_bytes_actual(args.payload_bytes)} bytes of canonical JSON per entry; CPUs: {os.cpu_count()}\n")
    print("| measure | backend | writers | entries | seconds | rate |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row.measure} | {row.backend} | {row.writers} | {row.count} | {row.seconds:.2f} | {row.rate:,.0f} {row.unit} |")
    print("\nGoal check (verify >= 1/3 of raw SHA-256 speed over the same bytes):")
    print("\n".join(goal_lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
