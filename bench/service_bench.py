"""Service: warm ask latency (p50, p95) and asks/s through the HTTP API at 1 and 16 clients, with the
extractive answerer and with the fake LLM at a fixed latency per call, beside the cold CLI `docket ask`.

    python -m bench.service_bench [--asks 40] [--asks-per-client 10] [--clients 1 16] [--latency 0.25] [--cold-runs 3]

The sample contracts (samples/contracts) are ingested into a temporary workspace; a reader granted
their collection asks through `docket serve` (a real uvicorn process, one per answerer) with a bearer
token, cycling through eight questions. A row of N clients runs at least --asks, and --asks-per-client x N,
asks after N untimed ones at the same concurrency (threads and connections started). The fake LLM
server runs in a process of its own, so its threads do not share a GIL with the clients'. The cold CLI
runs `docket ask` as a new process on the same workspace (extractive: imports, model and index loads
included).

Where the time goes, three ways: each row's median of the server's own stages (the Server-Timing header
of POST /ask: auth, prepare, retrieval, answerer, grounding, audit, serialize, total; "http" is the
client's latency less the server's total); the server process's CPU per ask (/proc, user + system,
all its threads); the audit entries per commit (the service commits what is queued together: entries
over signed heads added in the row); and the CPU of each stage of one warm ask in this process
(``time.process_time``). On
a machine shared with other work, wall times wait for a core: the load average is printed beside them.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "samples" / "contracts"
COLLECTION = "samples"
QUESTIONS = [
    "Which state's law governs the agreement?",
    "How much notice ends the agreement?",
    "Who are the parties to the agreement?",
    "What is the term of the agreement?",
    "How is the consultant paid?",
    "Can a party assign the agreement?",
    "What are the confidentiality obligations?",
    "Is there a limitation of liability?",
]
GOALS = {"extractive_p50_ms": 300, "fake_llm_asks_per_s_16": 40}
STAGES = ["auth", "prepare", "retrieval", "answerer", "grounding", "audit", "serialize", "total", "http"]
ASKS_PER_CLIENT = 10  # a row of N clients runs at least this many asks per client: ramp-up is not the rate


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def setup_workspace(home: Path) -> str:
    """Ingest the samples and make a reader granted them; the reader's token."""
    from pipeline.app import Docket
    from pipeline.documents import ingest_documents
    from pipeline.identity.actors import os_identity
    from pipeline.identity.models import identity_sessions
    from pipeline.identity.tokens import issue_token, parse_duration
    from pipeline.identity.users import add_user, grant
    from pipeline.settings import load_settings

    docket = Docket(load_settings(home=home, actor=os_identity().actor))
    started = time.perf_counter()
    report = ingest_documents(docket, sorted(SAMPLES.glob("*.pdf")), COLLECTION)
    print(f"ingested {report.count('added')} sample contracts in {time.perf_counter() - started:.1f}s", flush=True)
    me = os_identity()
    with identity_sessions(docket).begin() as session:
        add_user(session, docket.audit, me, "bench-reader", "reader", None)
        grant(session, docket.audit, me, "bench-reader", COLLECTION)
        token = issue_token(session, docket.audit, me, "bench-reader", parse_duration("1d")).token
    docket.audit.close()
    return token


def server_timing(header: str | None) -> dict[str, float]:
    """The stages of a Server-Timing header (``name;dur=ms, ...``), in ms."""
    stages = {}
    for metric in (header or "").split(","):
        name, _, rest = metric.strip().partition(";")
        if rest.startswith("dur="):
            stages[name] = float(rest.removeprefix("dur="))
    return stages


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` and all its threads so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def audit_counts(home: Path) -> tuple[int, int]:
    """(entries, signed heads) of the workspace's audit log: each committed write transaction signs one head."""
    with closing(sqlite3.connect(f"file:{home / 'audit.db'}?mode=ro", uri=True)) as db:
        return (db.execute("SELECT size FROM audit_head").fetchone()[0],
                db.execute("SELECT count(*) FROM audit_signed_heads").fetchone()[0])


def run_clients(base_url: str, token: str, clients: int, asks: int, pid: int | None = None,
                home: Path | None = None) -> dict:
    """``asks`` asks spread over ``clients`` threads, each with its own connection: latencies, rate, the
    median of each server stage, (given the server's ``pid``) the server's CPU per ask, and (given the
    workspace) the audit entries per commit."""
    latencies: list[float] = []
    model_ms: list[float] = []
    stages: dict[str, list[float]] = {}
    lock = threading.Lock()
    counter = iter(range(asks))

    def client_loop(_n: int) -> None:
        with httpx.Client(base_url=base_url + "/api/v1", headers={"Authorization": f"Bearer {token}"}, timeout=300) as c:
            for i in counter:
                started = time.perf_counter()
                response = c.post("/ask", json={"question": QUESTIONS[i % len(QUESTIONS)], "collection": COLLECTION})
                elapsed = time.perf_counter() - started
                response.raise_for_status()
                record = response.json()
                timing = server_timing(response.headers.get("server-timing"))
                if "total" in timing:
                    timing["http"] = elapsed * 1000 - timing["total"]
                with lock:
                    latencies.append(elapsed)
                    for name, ms in timing.items():
                        stages.setdefault(name, []).append(ms)
                    if record["call"].get("latency_ms") is not None and record["reasoner"] == "magistral":
                        model_ms.append(record["call"]["latency_ms"])

    cpu_before = process_cpu_s(pid) if pid else None
    counts_before = audit_counts(home) if home else None
    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(client_loop, range(clients)))
    wall = time.perf_counter() - started
    per_commit = None
    if counts_before:
        entries, commits = (after - before for after, before in zip(audit_counts(home), counts_before))
        per_commit = round(entries / commits, 2) if commits else None
    return {
        "clients": clients, "asks": len(latencies), "wall_s": round(wall, 2), "asks_per_s": round(len(latencies) / wall, 1),
        "p50_ms": round(statistics.median(latencies) * 1000), "p95_ms": round(percentile(latencies, 0.95) * 1000),
        "model_p50_ms": round(statistics.median(model_ms)) if model_ms else None,
        "server_cpu_ms_per_ask": round((process_cpu_s(pid) - cpu_before) * 1000 / len(latencies), 1) if pid else None,
        "stages_p50_ms": {k: round(statistics.median(v), 1) for k, v in stages.items()},
        "entries_per_commit": per_commit,
        "load_1min": round(os.getloadavg()[0], 1),
    }


def docket_command() -> list[str]:
    installed = Path(sys.executable).with_name("docket")
    return [str(installed)] if installed.is_file() else [sys.executable, "-m", "pipeline.cli"]


def clean_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKET_") and k != "MISTRAL_API_KEY"}
    return {**env, "DOCKET_HOME": str(home), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", **extra}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(home: Path, env_extra: dict[str, str], log: Path, pythonpath: str | None = None):
    """`docket serve` on the workspace; ``pythonpath``: source trees to run it from instead of this one
    (another commit's, to compare two versions on the same machine at the same time)."""
    port = free_port()
    env = clean_env(home, DOCKET_SERVICE__RATE_LIMIT_PER_MINUTE="1000000", **env_extra)
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    process = subprocess.Popen([*docket_command(), "serve", "--port", str(port)], env=env,
                               stdout=log.open("wb"), stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    started = time.perf_counter()
    while time.perf_counter() - started < 300:
        if process.poll() is not None:
            raise SystemExit(f"docket serve exited:\n{log.read_text()}")
        try:
            if httpx.get(base + "/api/v1/health", timeout=2).status_code == 200:
                return process, base, time.perf_counter() - started
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    process.kill()
    raise SystemExit("docket serve did not become ready in 300 s")


def cold_cli(home: Path, runs: int) -> list[float]:
    times = []
    for n in range(runs):
        started = time.perf_counter()
        proc = subprocess.run([*docket_command(), "ask", QUESTIONS[n % len(QUESTIONS)], "-c", COLLECTION, "--json"],
                              env=clean_env(home), capture_output=True, text=True)
        times.append(time.perf_counter() - started)
        if proc.returncode not in (0, 1):
            raise SystemExit(f"docket ask failed ({proc.returncode}): {proc.stderr}")
    return times


def parts_of_one_ask(home: Path, env: dict[str, str], repeats: int = 8) -> dict[str, float]:
    """Median CPU ms (``time.process_time``: every thread of this process) of the stages of a warm
    in-process ask, by wrapping one Docket's search, reasoner, record (grounding) and audit append.
    ``env``: the answerer's settings, as the server had them."""
    import pipeline.ask as asking
    from pipeline.app import Docket
    from pipeline.ask import AskOptions
    from pipeline.settings import load_settings

    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    make_record = asking._record
    try:
        docket = Docket(load_settings(home=home, actor="bench"))
        timings: dict[str, list[float]] = {"retrieval": [], "answerer": [], "grounding": [], "audit": [], "whole ask": []}

        def timed(name, fn):
            def run(*a, **kw):
                t = time.process_time()
                try:
                    return fn(*a, **kw)
                finally:
                    timings[name].append((time.process_time() - t) * 1000)
            return run

        store, reasoner, audit = docket.store, docket.reasoner, docket.audit
        store.search = timed("retrieval", store.search)
        reasoner.answer = timed("answerer", reasoner.answer)
        audit.append = timed("audit", audit.append)
        asking._record = timed("grounding", make_record)
        for question in QUESTIONS:  # warm: imports, sessions, and the sentences the timed asks meet again
            asking.ask(docket, question, AskOptions(collection=COLLECTION))
        for key in timings:
            timings[key].clear()
        for n in range(repeats):
            t = time.process_time()
            asking.ask(docket, QUESTIONS[n % len(QUESTIONS)], AskOptions(collection=COLLECTION))
            timings["whole ask"].append((time.process_time() - t) * 1000)
        docket.audit.close()
    finally:
        asking._record = make_record
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return {k: round(statistics.median(v), 1) for k, v in timings.items()}


def serve_fake_llm(latency: float) -> None:
    """The fake LLM server of the tests, answering every call after ``latency`` s: prints its base URL,
    serves until its standard input closes (``--fake-llm-server``: the bench runs it as a child process)."""
    from tests.fake_llm import FakeLLM, mistral_2509

    class LatencyServer(FakeLLM):
        def _next(self, path: str):
            time.sleep(latency)
            return mistral_2509("The clause is in S1.", "The agreement addresses this in S1 [S1].")

    fake = LatencyServer()
    fake.start()
    print(fake.base_url, flush=True)
    sys.stdin.read()
    fake.stop()


def start_fake_llm(latency: float) -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen([sys.executable, "-m", "bench.service_bench", "--fake-llm-server", "--latency", str(latency)],
                               cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    base_url = process.stdout.readline().strip()
    if not base_url.startswith("http"):
        process.kill()
        raise SystemExit(f"the fake LLM server did not start (it printed {base_url!r})")
    return process, base_url


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--asks", type=int, default=40, help="asks per measurement, at least")
    parser.add_argument("--asks-per-client", type=int, default=ASKS_PER_CLIENT, help="asks per client in a row, at least")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--latency", type=float, default=0.25, help="seconds per fake model call")
    parser.add_argument("--cold-runs", type=int, default=3)
    parser.add_argument("--server-pythonpath", help="run `docket serve` from these source trees (PYTHONPATH), "
                        "e.g. an older commit's `git archive` unpacked, to compare it with this one")
    parser.add_argument("--rows-only", action="store_true", help="the servers' rows only: no cold CLI, no in-process parts")
    parser.add_argument("--fake-llm-server", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.fake_llm_server:
        serve_fake_llm(args.latency)
        return

    fake, fake_url = start_fake_llm(args.latency)
    results: dict = {"latency_s": args.latency, "asks": args.asks, "load_1min_start": round(os.getloadavg()[0], 1)}
    try:
        with tempfile.TemporaryDirectory(prefix="docket-service-bench-") as tmp:
            home = Path(tmp) / "home"
            token = setup_workspace(home)
            answerers = {
                "extractive": {},
                "fake LLM": {"DOCKET_REASONER": "magistral", "DOCKET_LLM__PROVIDER": "openai-compatible",
                             "DOCKET_LLM__BASE_URL": fake_url, "DOCKET_LLM__MAX_RETRIES": "0"},
            }
            for label, env in answerers.items():
                log = Path(tmp) / f"serve-{label.replace(' ', '-')}.log"
                process, base, ready_s = serve(home, env, log, args.server_pythonpath)
                try:
                    print(f"{label}: server ready in {ready_s:.1f}s", flush=True)
                    # Each question once, first thing: what an ask costs before the server has met its
                    # evidence (the extractive answerer keeps the sentence vectors it computed).
                    first = run_clients(base, token, 1, len(QUESTIONS), process.pid, home)
                    runs = []
                    for n in args.clients:
                        run_clients(base, token, n, n)  # untimed: the row's threads and connections
                        runs.append(run_clients(base, token, n, max(args.asks, args.asks_per_client * n), process.pid, home))
                        print(f"{label}, {n} clients: {runs[-1]}", flush=True)
                    results[label] = {"ready_s": round(ready_s, 1), "first_asks": first, "runs": runs}
                except httpx.HTTPStatusError:
                    print(f"the server answered an error; the end of its log:\n{log.read_text(errors='replace')[-4000:]}")
                    raise
                finally:
                    process.terminate()
                    process.wait(timeout=30)
            if not args.rows_only:
                cold = cold_cli(home, args.cold_runs)
                results["cold_cli_s"] = {"median": round(statistics.median(cold), 2), "min": round(min(cold), 2),
                                         "max": round(max(cold), 2)}
                results["parts_cpu_ms"] = {label: parts_of_one_ask(home, env) for label, env in answerers.items()}
    finally:
        fake.stdin.close()
        fake.wait(timeout=30)
    results["load_1min_end"] = round(os.getloadavg()[0], 1)
    report(results, args)


def report(results: dict, args) -> None:
    print(f"\nfake LLM {args.latency * 1000:.0f} ms per call; goals: extractive p50 < {GOALS['extractive_p50_ms']} ms, "
          f"fake LLM >= {GOALS['fake_llm_asks_per_s_16']} asks/s at 16 clients; 1-minute load average "
          f"{results['load_1min_start']} at the start, {results['load_1min_end']} at the end, on {os.cpu_count()} cores")
    print(f"{'answerer':<11} {'row':<11} {'asks':>5} {'p50 ms':>7} {'p95 ms':>7} {'asks/s':>7} {'model p50':>9} "
          f"{'server CPU ms/ask':>17} {'entries/commit':>14} {'load':>5}")
    rows = []
    for label in ("extractive", "fake LLM"):
        data = results[label]
        rows += [(label, "first asks", data["first_asks"])] + [(label, f"{r['clients']} clients", r) for r in data["runs"]]
    for label, row, r in rows:
        model = r["model_p50_ms"] if r["model_p50_ms"] is not None else "-"
        print(f"{label:<11} {row:<11} {r['asks']:>5} {r['p50_ms']:>7} {r['p95_ms']:>7} {r['asks_per_s']:>7} {model:>9} "
              f"{r['server_cpu_ms_per_ask']:>17} {r.get('entries_per_commit') or '-':>14} {r['load_1min']:>5}")
    print("\nwhere the time goes, in the server (median ms of each stage of its Server-Timing; http = latency - total):")
    print(f"{'answerer':<11} {'row':<11} " + " ".join(f"{s:>9}" for s in STAGES))
    for label, row, r in rows:
        stages = r["stages_p50_ms"]
        print(f"{label:<11} {row:<11} " + " ".join(f"{stages.get(s, '-'):>9}" for s in STAGES))
    c = results.get("cold_cli_s")
    if c:
        print(f"\ncold CLI `docket ask` (new process, extractive): median {c['median']} s (min {c['min']}, max {c['max']})")
    for label, parts in results.get("parts_cpu_ms", {}).items():
        print(f"one warm ask in parts ({label}, in-process, median CPU ms): " + ", ".join(f"{k} {v}" for k, v in parts.items()))
    busiest = results["fake LLM"]["runs"][-1]
    if busiest["server_cpu_ms_per_ask"]:
        print(f"fake LLM at {busiest['clients']} clients: {busiest['server_cpu_ms_per_ask']} ms of server CPU per ask, so "
              f"one core serves at most {1000 / busiest['server_cpu_ms_per_ask']:.0f} asks/s and {os.cpu_count()} cores "
              f"{os.cpu_count() * 1000 / busiest['server_cpu_ms_per_ask']:.0f} (the GIL keeps most of it on one)")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
