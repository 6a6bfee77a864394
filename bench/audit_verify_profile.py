"""Where one `verify` pass spends its CPU, per entry (a companion to bench.audit_bench, which times the goal).

    python -m bench.audit_verify_profile --entries 20000
    python -m bench.audit_verify_profile --entries 20000 --pg-socket-dir /var/run/postgresql

It builds a log per backend (as the benchmark does), then measures, alternately and `--rounds` times,
the CPU seconds of this process (user + system) per entry for:

* reading the rows through verify's own reading function, as verify reads them (SQLite through its
  memory map; PostgreSQL through the widened libpq buffer): every column, the payload column alone,
  and the entry columns alone (for PostgreSQL over TCP, and through a Unix socket when asked);
* the checks on rows already in memory (the first `--in-memory` rows): `RangeChecker` as verify runs
  it, and its parts on their own (the leaf text, the leaf text hashed, the payload commitment, the
  Merkle tree grown a batch at a time), beside raw SHA-256 over the same messages (the yardstick).

It prints the median and range of each, with the load average, as a Markdown table.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import resource
import statistics
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine
from sqlalchemy.engine import make_url

from audit.log import PG_VERIFY_SETTINGS, SQLITE_READ_MMAP, range_query, stream_row_batches
from audit.verification.formats import GENESIS_HASH
from audit.verification.tree import Frontier
from audit.verification.entries import HASHED_LEAF_TEMPLATE, quote_json_string, stored_subjects_as_json
from audit.verification.chain import RangeChecker
from bench.audit_bench import backend, build_log, pg_reachable


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def read_all(connect: Callable[[], Any], sql: str, postgres: bool) -> None:
    """Read every row of `sql` through verify's reading function, keeping none (memory stays flat)."""
    connection = connect()
    try:
        for setting in PG_VERIFY_SETTINGS if postgres else (SQLITE_READ_MMAP,):
            connection.execute(setting)
        for _ in stream_row_batches(connection, sql, postgres):
            pass
    finally:
        connection.close()


def reading_queries(postgres: bool) -> dict[str, str]:
    payload = "payload" if postgres else "CAST(payload AS BLOB)"
    return {
        "read every column (verify's query)": range_query(None, None, postgres),
        "read the payload column alone": f"SELECT {payload} FROM audit_payloads ORDER BY seq",
        "read the entry columns alone": "SELECT * FROM audit_entries ORDER BY seq",
    }


def driver_connector(url: str, socket_dir: str | None = None) -> Callable[[], Any]:
    """A DB-API connection to the log, as verify's workers open one (no SQLAlchemy rows)."""
    parsed = make_url(url)
    if socket_dir is not None:
        parsed = parsed.set(host=None).update_query_dict({"host": socket_dir})
    engine = create_engine(parsed)
    args, kwargs = engine.dialect.create_connect_args(engine.url)
    dbapi = engine.dialect.loaded_dbapi
    engine.dispose()
    return lambda: dbapi.connect(*args, **kwargs)


def rows_in_memory(connect: Callable[[], Any], postgres: bool, limit: int) -> list[list[tuple[Any, ...]]]:
    connection = connect()
    try:
        for setting in PG_VERIFY_SETTINGS if postgres else (SQLITE_READ_MMAP,):
            connection.execute(setting)
        batches = list(stream_row_batches(connection, range_query(None, limit, postgres), postgres))
    finally:
        connection.close()
    return batches


def check_parts(batches: list[list[tuple[Any, ...]]]) -> dict[str, Callable[[], Any]]:
    """The checks verify runs per row, whole and in parts, over rows held in memory."""
    rows = [row for batch in batches for row in batch]
    sha256, fromhex = hashlib.sha256, bytes.fromhex

    def leaf_text(row: tuple[Any, ...]) -> str:
        seq, time, event_type, actor, request_id, subjects, status, commitment, prev_hash = row[:9]
        return HASHED_LEAF_TEMPLATE % (
            quote_json_string(actor), quote_json_string(event_type), quote_json_string(commitment), quote_json_string(prev_hash),
            "null" if request_id is None else quote_json_string(request_id), seq,
            "null" if status is None else quote_json_string(status), stored_subjects_as_json(subjects), quote_json_string(time),
        )

    leaf_messages = [leaf_text(row).encode() for row in rows]
    payload_messages = [fromhex(row[10]) + row[11] for row in rows]
    leaf_hashes = [sha256(message).digest() for message in leaf_messages]

    def whole_pass() -> None:
        checker = RangeChecker(0, GENESIS_HASH, None, lambda note: None)
        for batch in batches:
            checker.check_rows(batch)

    def tree() -> None:
        frontier = Frontier()
        for start in range(0, len(leaf_hashes), 256):
            frontier.extend(b"".join(leaf_hashes[start : start + 256]))

    def payload_commitments() -> None:
        for row in rows:
            digest = sha256(fromhex(row[10]))
            digest.update(row[11])
            digest.hexdigest()

    return {
        "checks, whole pass (RangeChecker, rows in memory)": whole_pass,
        "of which the leaf text": lambda: [leaf_text(row) for row in rows],
        "of which the leaf text, encoded and hashed": lambda: [sha256(leaf_text(row).encode()).hexdigest() for row in rows],
        "of which the payload commitment": payload_commitments,
        "of which the Merkle tree (Frontier.extend, 256 leaves a batch)": tree,
        "raw SHA-256, payloads and leaves (the yardstick)": lambda: [sha256(m).digest() for m in payload_messages + leaf_messages],
    }


def measure(work: dict[str, Callable[[], Any]], per: int, rounds: int) -> dict[str, list[float]]:
    """CPU µs per entry of each piece of work, run alternately `rounds` times."""
    spent: dict[str, list[float]] = {name: [] for name in work}
    for _ in range(rounds):
        for name, run in work.items():
            before = cpu_seconds()
            run()
            spent[name].append((cpu_seconds() - before) / per * 1e6)
    return spent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=20_000)
    parser.add_argument("--in-memory", type=int, default=20_000, help="rows held in memory for the checks")
    parser.add_argument("--payload-bytes", type=int, default=8192)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--pg-socket-dir", help="also read the PostgreSQL log through this Unix socket directory")
    parser.add_argument("--skip-postgres", action="store_true")
    args = parser.parse_args(argv)

    backends = ["sqlite"] + ([] if args.skip_postgres or not pg_reachable() else ["postgres"])
    lines = ["| backend | measure | CPU µs per entry, median (range) |", "|---|---|---|"]
    print(f"Load average at the start: {' '.join(f'{load:.1f}' for load in os.getloadavg())}")
    with tempfile.TemporaryDirectory(prefix="audit-profile-") as tmp:
        for name in backends:
            with backend(name, Path(tmp)) as url:
                build_log(url, args.entries, args.payload_bytes).close()
                postgres = name == "postgres"
                paths = {"": driver_connector(url)}
                if postgres and args.pg_socket_dir:
                    paths = {" (TCP)": paths[""], " (Unix socket)": driver_connector(url, args.pg_socket_dir)}
                reading = {
                    f"{label}{path}": (lambda connect=connect, sql=sql: read_all(connect, sql, postgres))
                    for label, sql in reading_queries(postgres).items()
                    for path, connect in paths.items()
                }
                results = measure(reading, args.entries, args.rounds)
                batches = rows_in_memory(paths[next(iter(paths))], postgres, args.in_memory)
                held = sum(map(len, batches))
                results |= measure(check_parts(batches), held, args.rounds)
                del batches
            load = os.getloadavg()[0]
            for measure_name, values in results.items():
                ordered = sorted(values)
                lines.append(
                    f"| {name} | {measure_name} | {statistics.median(ordered):.2f} ({ordered[0]:.2f}-{ordered[-1]:.2f}) |"
                )
            print(f"{name}: done, load average {load:.1f}")
    print(f"\n{args.rounds} alternating rounds, {args.entries} entries read, {args.in_memory} held for the checks; CPUs: {os.cpu_count()}\n")
    print("\n".join(lines))
    print(f"\nLoad average at the end: {' '.join(f'{load:.1f}' for load in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
