"""Audit log benchmark: durable append rate (1 and 8 writers, SQLite and PostgreSQL) and verify rate.

    python -m bench.audit_bench                      # the full run (100k-entry verify)
    python -m bench.audit_bench --entries 20000 --skip-postgres
    python -m bench.audit_bench --entries 20000 --sign-rounds 5     # appends with and without signed heads

Appends sign their tree head (one Ed25519 signature per transaction); `--sign-rounds` alternates
appends with and without that signature in fresh logs (the second only for this comparison) and
times the signature call alone; `--interleaved` appends to a signed and an unsigned log in turn, one
entry each, in one process, and compares their CPU per append (what the load moves least); the
second goal is that signing costs under 10% of the append rate.

Prints a Markdown table and the goal check: verification runs at >= 1/3 of raw SHA-256 speed over
the same bytes, where "raw" hashes exactly the messages verification must hash (each payload with
its salt, each leaf), held in memory, in one thread. On a machine shared with other jobs the
speeds swing from one second to the next, so verify (as called by default, in one process, and with
`--workers` processes) and raw SHA-256 are timed alternately, `--rounds` times, and each round gives its own ratio; the
load average is printed beside them. CPU seconds (this process plus its workers) are printed too:
their ratio is what verification costs per byte, whatever the load.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url

from audit import AuditLog, NewEvent
from audit.keys import KeyStore
from audit.log import PG_VERIFY_SETTINGS, range_query, stream_row_batches
from audit.schema import entries, payloads
from audit.verification.formats import CHECKPOINT_FORMAT
from audit.verification.entries import checkpoint_message, leaf_bytes

PG_URL = os.environ.get("DOCKET_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
GOAL_FRACTION = 1 / 3
SIGNING_BUDGET = 0.10  # signing each transaction's head may cost at most this share of the append rate


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


def _writer(url: str, count: int, payload_bytes: int, start: Any, results: Any, keys: Path | None, sign: bool) -> None:
    log = AuditLog.open(url, keys, sign_heads=sign)
    backend_pid = None
    if log.engine.dialect.name == "postgresql":  # the pooled connection every append of this writer reuses
        with log.engine.connect() as conn:
            backend_pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()
    start.wait()  # every writer connected: time appends only, not interpreter start-up
    backend_before = _backend_cpu(backend_pid) if backend_pid else None
    began, cpu_before = time.perf_counter(), time.process_time()
    for i in range(count):
        log.append("answer", answer_payload(i, payload_bytes), actor=f"bench-{os.getpid()}", request_id=f"{os.getpid()}-{i}")
    ended, cpu = time.perf_counter(), time.process_time() - cpu_before
    backend_after = _backend_cpu(backend_pid) if backend_pid else None
    backend = backend_after - backend_before if backend_before is not None and backend_after is not None else None
    results.put((began, ended, cpu, backend))
    log.close()


def append_rate(url: str, writers: int, per_writer: int, payload_bytes: int, keys: Path | None = None, sign: bool = True) -> float:
    """Seconds for `writers` processes to each append `per_writer` entries, one durable commit each."""
    return append_run(url, writers, per_writer, payload_bytes, keys, sign)[0]


def append_run(
    url: str, writers: int, per_writer: int, payload_bytes: int, keys: Path | None = None, sign: bool = True
) -> tuple[float, float, float | None]:
    """(wall seconds, writers' CPU seconds, their PostgreSQL backends' CPU seconds or None) of an append run.

    CPU seconds hardly move with the machine's load, where wall seconds swing: on a shared machine
    they are the steadier measure of what a head signature adds to each append.

    With `keys` every append also signs its tree head (the default since signed heads); `sign=False`
    turns that off, for the A/B comparison only. The writers share one key, made before they start.
    """
    AuditLog.open(url, keys).close()
    if keys is not None:
        KeyStore(keys).active()
    spawn = multiprocessing.get_context("spawn")
    start, results = spawn.Barrier(writers), spawn.Queue()
    procs = [
        spawn.Process(target=_writer, args=(url, per_writer, payload_bytes, start, results, keys, sign)) for _ in range(writers)
    ]
    for proc in procs:
        proc.start()
    spans = [results.get(timeout=900) for _ in procs]
    for proc in procs:
        proc.join()
    wall = max(span[1] for span in spans) - min(span[0] for span in spans)
    backends = [span[3] for span in spans]
    return wall, sum(span[2] for span in spans), None if None in backends else sum(backends)


def build_log(url: str, count: int, payload_bytes: int, keys: Path | None = None) -> AuditLog:
    """A log of `count` entries through the log's own append path, 1000 entries per transaction (a signed head each)."""
    log = AuditLog.open(url, keys)
    for start in range(0, count, 1000):
        log.append_many(
            [
                NewEvent("answer", answer_payload(i, payload_bytes), "bench", f"r{i}", (f"doc-{i % 50}",), "answered")
                for i in range(start, min(start + 1000, count))
            ]
        )
    return log


@dataclass
class Timed:
    wall: float
    cpu: float  # user + system seconds of this process and of the workers it waited for


def timed(work: Callable[[], Any]) -> tuple[Any, Timed]:
    before, began = os.times(), time.perf_counter()
    result = work()
    wall, after = time.perf_counter() - began, os.times()
    cpu = sum(getattr(after, name) - getattr(before, name) for name in ("user", "system", "children_user", "children_system"))
    return result, Timed(wall, cpu)


def raw_sha256(url: str) -> tuple[Timed, int]:
    """Hash, in memory and in one thread, exactly the messages verify hashes; times the hashing alone."""
    engine = create_engine(url)
    spent, total = Timed(0.0, 0.0), 0
    query = select(entries, payloads.c.salt, payloads.c.payload).join(payloads, payloads.c.seq == entries.c.seq).order_by(entries.c.seq)
    with engine.connect() as conn:
        result = conn.execution_options(yield_per=5000).execute(query)
        for chunk in result.partitions():
            messages: list[bytes] = []
            for row in chunk:
                fields = dict(row._mapping, subjects=json.loads(row.subjects))
                messages.append(bytes.fromhex(row.salt) + row.payload.encode())
                messages.append(b"\x00" + leaf_bytes(fields))
            _, hashing = timed(lambda: [hashlib.sha256(message).digest() for message in messages])
            spent = Timed(spent.wall + hashing.wall, spent.cpu + hashing.cpu)
            total += sum(len(m) for m in messages)
    engine.dispose()
    return spent, total


@dataclass
class ReadOnly:
    spent: Timed
    server_cpu: float | None  # CPU seconds of the PostgreSQL backend that sent the rows, when it runs here


def _backend_cpu(pid: int) -> float | None:
    """CPU seconds so far of a PostgreSQL backend on this machine (Linux /proc); None when it is not one here."""
    try:
        if Path(f"/proc/{pid}/comm").read_text().strip() != "postgres":
            return None  # a server elsewhere (or in a container): the pid is not ours to read
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def read_rows_only(url: str) -> ReadOnly:
    """Read the rows verify reads, through the very function verify reads them with, and check nothing.

    It bounds what any verifier in this process could reach: reading the rows, not the hashing,
    is what PostgreSQL adds. For a local PostgreSQL the server's own CPU for sending them is measured too.
    """
    engine = create_engine(url)
    postgres = engine.dialect.name == "postgresql"
    connection = engine.raw_connection()
    try:
        driver = connection.driver_connection
        backend = driver.info.backend_pid if postgres else None
        for setting in PG_VERIFY_SETTINGS if postgres else ():
            driver.execute(setting)

        def read() -> None:
            for _ in stream_row_batches(driver, range_query(None, None, postgres), postgres):
                pass

        before = _backend_cpu(backend) if backend else None
        _, spent = timed(read)
        after = _backend_cpu(backend) if backend else None
        connection.rollback()
    finally:
        connection.close()
        engine.dispose()
    return ReadOnly(spent, after - before if before is not None and after is not None else None)


@dataclass
class Round:
    load: float  # 1-minute load average when the round started
    parallel: Timed
    single: Timed
    raw: Timed
    read_only: ReadOnly


def verify_rounds(url: str, entries_count: int, workers: int, rounds: int, keys: Path | None = None) -> tuple[list[Round], int]:
    """Verify with `workers` processes, as by default (one), and raw SHA-256, alternately, `rounds` times."""
    measured, hashed = [], 0
    with AuditLog.open(url, keys, create=False) as log:
        for _ in range(rounds):
            load = os.getloadavg()[0]
            times = []
            for count in (workers, None):  # None: verify's default, one process
                report, spent = timed(lambda count=count: log.verify(workers=count))
                assert report.ok and report.size == entries_count, report.problem
                times.append(spent)
            raw, hashed = raw_sha256(url)
            measured.append(Round(load, times[0], times[1], raw, read_rows_only(url)))
    return measured, hashed


def goal_check(name: str, measured: list[Round], hashed: int, workers: int, entries: int) -> list[str]:
    """One line per round and verifier: MB/s of each, their ratio, and the CPU-seconds ratio; then the medians."""
    lines = []
    for number, got in enumerate(measured, start=1):
        raw_mbps = hashed / got.raw.wall / 1e6
        for label, spent in ((f"{workers} workers", got.parallel), ("1 worker (default)", got.single)):
            ratio = got.raw.wall / spent.wall
            lines.append(
                f"- {name} round {number} (load {got.load:.1f}), verify with {label}: {hashed / spent.wall / 1e6:.1f} MB/s "
                f"vs raw SHA-256 {raw_mbps:.1f} MB/s over the same {hashed / 1e6:.0f} MB = {ratio:.2f} of raw "
                f"({'MET' if ratio >= GOAL_FRACTION else 'NOT MET'}); CPU seconds {spent.cpu:.2f} vs {got.raw.cpu:.2f} "
                f"= {got.raw.cpu / spent.cpu:.2f}"
            )
        lines.append(
            f"- {name} round {number}: reading the rows alone (no checks) takes {got.read_only.spent.wall:.2f} s "
            f"({got.read_only.spent.cpu:.2f} CPU s here"
            + (f", {got.read_only.server_cpu:.2f} CPU s in the server backend" if got.read_only.server_cpu is not None else "")
            + f"): at most {got.raw.wall / got.read_only.spent.wall:.2f} of raw for any verifier reading them"
        )
    for label, pick in ((f"{workers} workers", lambda got: got.parallel), ("1 worker (default)", lambda got: got.single)):
        ratios = sorted(got.raw.wall / pick(got).wall for got in measured)
        ratio = statistics.median(ratios)
        cpu_ratio = statistics.median(got.raw.cpu / pick(got).cpu for got in measured)
        lines.append(
            f"- **{name}, verify with {label}: median of {len(measured)} rounds {ratio:.2f} of raw "
            f"({'MET' if ratio >= GOAL_FRACTION else 'NOT MET'}; every round: "
            f"{'yes' if ratios[0] >= GOAL_FRACTION else 'no'}, {ratios[0]:.2f}-{ratios[-1]:.2f}); CPU seconds {cpu_ratio:.2f}**"
        )
    lines.append(f"- {name}, CPU µs per entry, median over the rounds (range): " + cpu_breakdown(measured, entries))
    return lines


def cpu_breakdown(measured: list[Round], entries: int) -> str:
    """Where one pass spends CPU, per entry: the yardstick, verify in one process, reading alone, the checks."""

    def per_entry(values: list[float]) -> str:
        micros = sorted(value / entries * 1e6 for value in values)
        return f"{statistics.median(micros):.1f} ({micros[0]:.1f}-{micros[-1]:.1f})"

    parts = [
        f"raw SHA-256 {per_entry([got.raw.cpu for got in measured])}",
        f"verify with 1 worker (default) {per_entry([got.single.cpu for got in measured])}",
        f"of which reading the rows {per_entry([got.read_only.spent.cpu for got in measured])}",
        f"and the checks (verify minus reading, round by round) {per_entry([got.single.cpu - got.read_only.spent.cpu for got in measured])}",
    ]
    server = [got.read_only.server_cpu for got in measured if got.read_only.server_cpu is not None]
    if len(server) == len(measured):
        parts.append(f"server backend sending the rows {per_entry(server)}")
    return "; ".join(parts)


def sign_call_seconds(count: int) -> float:
    """Seconds of `count` head signatures alone: what each append transaction adds, beside its commit."""
    _, key = KeyStore(Path(tempfile.mkdtemp(prefix="audit-bench-key-"))).active()
    head = {"format": CHECKPOINT_FORMAT, "log_id": "0" * 32, "size": 123456, "root": "ab" * 32,
            "time": "2026-01-01T00:00:00.000000Z", "key_id": "0" * 16}
    began = time.perf_counter()
    for size in range(count):
        head["size"] = size
        key.sign(checkpoint_message(head))
    return time.perf_counter() - began


def signing_ab(name: str, workdir: Path, appends: int, payload_bytes: int, rounds: int) -> tuple[list[Row], list[str]]:
    """Appends with and without signing their heads, one writer, alternately in fresh logs, `rounds` times."""
    rows, ratios = [], []
    cpu: dict[bool, list[float]] = {True: [], False: []}  # CPU µs per append, writer plus its server backend
    for number in range(1, rounds + 1):
        rates = {}
        for sign in (True, False):
            with backend(name, workdir) as url:
                seconds, writer_cpu, backend_cpu = append_run(
                    url, 1, appends, payload_bytes, workdir / f"keys-{uuid.uuid4().hex[:8]}", sign
                )
            label = "append, head signed (default)" if sign else "append, head not signed (A/B only)"
            rows.append(Row(f"{label} (round {number})", name, 1, appends, seconds, "entries/s"))
            rates[sign] = appends / seconds
            cpu[sign].append((writer_cpu + (backend_cpu or 0.0)) / appends * 1e6)
        ratios.append(rates[True] / rates[False])
    sign_seconds = sign_call_seconds(appends)
    median = statistics.median(ratios)
    signed_cpu, unsigned_cpu = statistics.median(cpu[True]), statistics.median(cpu[False])
    who = "the writer and its PostgreSQL backend" if name == "postgres" else "the writer (SQLite runs in it)"
    lines = [
        f"- {name}, append with its head signed vs not, one writer: rounds "
        + ", ".join(f"{r:.2f}" for r in ratios)
        + f"; **median {median:.2f} of the unsigned rate, signing costs {1 - median:.1%} "
        + f"({'MET' if median >= 1 - SIGNING_BUDGET else 'NOT MET'}: under {SIGNING_BUDGET:.0%})**",
        f"- {name}, CPU per append ({who}), median over the rounds: signed {signed_cpu:.0f} µs, "
        + f"unsigned {unsigned_cpu:.0f} µs: signing costs {signed_cpu / unsigned_cpu - 1:.1%} of the CPU",
        f"- {name}, the signature alone: {sign_seconds / appends * 1e6:.0f} µs per head ({appends} signed in {sign_seconds:.2f} s)",
    ]
    return rows, lines


def interleaved_cpu(name: str, workdir: Path, appends: int, payload_bytes: int) -> list[str]:
    """CPU per append with and without a signed head, two logs in this process appended to in turn.

    Alternating append by append instead of run by run puts both under the same load from one
    moment to the next: on a shared machine the load moves both alike, where between runs it
    does not. CPU seconds of this process per append (SQLite runs in it), plus, for a PostgreSQL
    backend on this machine, the CPU its backend spent over the run, divided by the appends.
    """
    cpu: dict[bool, list[float]] = {True: [], False: []}
    backend_cpu: dict[bool, float | None] = {}
    with backend(name, workdir) as signed_url, backend(name, workdir) as unsigned_url:
        logs = {
            sign: AuditLog.open(url, workdir / f"keys-{uuid.uuid4().hex[:8]}", sign_heads=sign)
            for sign, url in ((True, signed_url), (False, unsigned_url))
        }
        try:
            pids: dict[bool, int | None] = {}
            for sign, log in logs.items():
                log.append("answer", answer_payload(0, payload_bytes), actor="bench")  # key made, statements warm
                pids[sign] = None
                if log.engine.dialect.name == "postgresql":
                    with log.engine.connect() as conn:  # the pooled connection every append reuses
                        pids[sign] = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()
            payloads_in = [answer_payload(i, payload_bytes) for i in range(appends)]
            before = {sign: _backend_cpu(pid) if pid else None for sign, pid in pids.items()}
            for i in range(appends):
                for sign in (True, False) if i % 2 else (False, True):  # each goes first half the time
                    began = time.process_time()
                    logs[sign].append("answer", payloads_in[i], actor="bench", request_id=f"r{i}")
                    cpu[sign].append(time.process_time() - began)
            for sign, pid in pids.items():
                after = _backend_cpu(pid) if pid else None
                backend_cpu[sign] = after - before[sign] if after is not None and before[sign] is not None else None
        finally:
            for log in logs.values():
                log.close()
    per_append = {sign: statistics.mean(cpu[sign]) * 1e6 for sign in cpu}
    median = {sign: statistics.median(cpu[sign]) * 1e6 for sign in cpu}
    line = (
        f"- {name}, CPU per append, signed and unsigned logs appended to in turn ({appends} each, one process): "
        f"signed {per_append[True]:.0f} µs (median {median[True]:.0f}), unsigned {per_append[False]:.0f} µs "
        f"(median {median[False]:.0f}): **signing costs {per_append[True] / per_append[False] - 1:.1%} of the writer's CPU**"
    )
    if backend_cpu.get(True) is not None and backend_cpu.get(False) is not None:
        total = {sign: per_append[sign] + backend_cpu[sign] / appends * 1e6 for sign in cpu}  # type: ignore[operator]
        line += (
            f"; with its PostgreSQL backend {total[True]:.0f} vs {total[False]:.0f} µs: "
            f"**{total[True] / total[False] - 1:.1%}** ({'MET' if total[True] / total[False] <= 1 + SIGNING_BUDGET else 'NOT MET'})"
        )
    else:
        line += f" ({'MET' if per_append[True] / per_append[False] <= 1 + SIGNING_BUDGET else 'NOT MET'})"
    return [line]


def headed_verify(name: str, workdir: Path, count: int, payload_bytes: int, rounds: int) -> tuple[list[Row], list[str]]:
    """Verify a log appended one entry per transaction, so with a signed head per entry to check."""
    rows, rates = [], []
    keys = workdir / f"keys-{uuid.uuid4().hex[:8]}"
    with backend(name, workdir) as url:
        with AuditLog.open(url, keys) as log:
            for i in range(count):
                log.append("answer", answer_payload(i, payload_bytes), actor="bench", request_id=f"r{i}")
            for number in range(1, rounds + 1):
                report, spent = timed(log.verify)
                assert report.ok and report.signed_heads_verified == count, report.problem
                rows.append(Row(f"verify, a signed head per entry (round {number})", name, 1, count, spent.wall, "entries/s"))
                rates.append(count / spent.wall)
    lines = [f"- {name}, verify of a log with a signed head per entry: median {statistics.median(rates):,.0f} entries/s"]
    return rows, lines


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
    parser.add_argument("--skip-appends", action="store_true", help="measure verification only")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="verify worker processes")
    parser.add_argument("--rounds", type=int, default=5, help="alternating verify / raw SHA-256 rounds")
    parser.add_argument("--sign-rounds", type=int, default=3, help="alternating signed / unsigned append rounds (0: skip)")
    parser.add_argument("--interleaved", type=int, default=400, help="appends per log for the in-turn CPU A/B of signing (0: skip)")
    parser.add_argument("--headed-entries", type=int, default=2000, help="entries of the log verified with a signed head per entry (0: skip)")
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
            keys = workdir / f"keys-{name}"
            for writers in () if args.skip_appends else (1, 8):
                with backend(name, workdir) as url:
                    per_writer = args.appends // writers
                    seconds = append_rate(url, writers, per_writer, args.payload_bytes, keys)
                    rows.append(Row("append (durable commit and signed head each)", name, writers, per_writer * writers, seconds, "entries/s"))
            if args.sign_rounds and not args.skip_appends:
                ab_rows, ab_lines = signing_ab(name, workdir, args.appends, args.payload_bytes, args.sign_rounds)
                rows.extend(ab_rows)
                goal_lines.extend(ab_lines)
            if args.interleaved and not args.skip_appends:
                goal_lines.extend(interleaved_cpu(name, workdir, args.interleaved, args.payload_bytes))
            if args.headed_entries:
                headed_rows, headed_lines = headed_verify(name, workdir, args.headed_entries, args.payload_bytes, 3)
                rows.extend(headed_rows)
                goal_lines.extend(headed_lines)
            with backend(name, workdir) as url:
                build_log(url, args.entries, args.payload_bytes, keys).close()
                measured, hashed = verify_rounds(url, args.entries, args.workers, args.rounds, keys)
            for number, got in enumerate(measured, start=1):
                for label, spent, count in ((f"verify, {args.workers} workers", got.parallel, args.workers), ("verify, 1 worker (default)", got.single, 1)):
                    rows.append(Row(f"{label} (round {number}, load {got.load:.1f})", name, count, args.entries, spent.wall, "entries/s"))
                rows.append(Row(f"raw SHA-256, same bytes (round {number})", name, 1, args.entries, got.raw.wall, "entries/s"))
                rows.append(Row(f"read the rows only, no checks (round {number})", name, 1, args.entries, got.read_only.spent.wall, "entries/s"))
            goal_lines.extend(goal_check(name, measured, hashed, args.workers, args.entries))
    print(f"\nPayload ~{_payload_bytes_actual(args.payload_bytes)} bytes of canonical JSON per entry; CPUs: {os.cpu_count()}\n")
    print("| measure | backend | processes | entries | seconds | rate |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row.measure} | {row.backend} | {row.writers} | {row.count} | {row.seconds:.2f} | {row.rate:,.0f} {row.unit} |")
    print("\nGoal check (signing under 10% of the append rate; verify >= 1/3 of raw single-thread SHA-256 speed over the same bytes, per round):")
    print("\n".join(goal_lines))
    print(f"\nLoad average at the end: {' '.join(f'{load:.1f}' for load in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
