"""Service: warm ask latency (p50, p95) and asks/s through the HTTP API at 1 and 16 clients, with the
extractive answerer and with the fake LLM at a fixed latency per call, beside the cold CLI `docket ask`.

    python -m bench.service_bench [--asks 40] [--clients 1 16] [--latency 0.25] [--cold-runs 3]

The sample contracts (samples/contracts) are ingested into a temporary workspace; a reader granted
their collection asks through `docket serve` (a real uvicorn process, one per answerer) with a bearer
token, each ask a different question. The cold CLI runs `docket ask` as a new process on the same
workspace (extractive: imports, model and index loads included). "Where the time goes" times one warm
process's ask in parts (search, answerer, audit append), in this process, on the same workspace.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
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


def run_clients(base_url: str, token: str, clients: int, asks: int) -> dict:
    """``asks`` asks spread over ``clients`` threads, each with its own connection; latencies and rate."""
    latencies: list[float] = []
    model_ms: list[float] = []
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
                with lock:
                    latencies.append(elapsed)
                    if record["call"].get("latency_ms") is not None and record["reasoner"] == "magistral":
                        model_ms.append(record["call"]["latency_ms"])

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(client_loop, range(clients)))
    wall = time.perf_counter() - started
    return {
        "clients": clients, "asks": len(latencies), "wall_s": round(wall, 2), "asks_per_s": round(len(latencies) / wall, 1),
        "p50_ms": round(statistics.median(latencies) * 1000), "p95_ms": round(percentile(latencies, 0.95) * 1000),
        "model_p50_ms": round(statistics.median(model_ms)) if model_ms else None,
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


def serve(home: Path, env_extra: dict[str, str], log: Path):
    port = free_port()
    env = clean_env(home, DOCKET_SERVICE__RATE_LIMIT_PER_MINUTE="1000000", **env_extra)
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


def parts_of_one_ask(home: Path, repeats: int = 8) -> dict[str, float]:
    """Median ms of the parts of a warm in-process ask (extractive), timed by wrapping the store,
    reasoner and audit log of one Docket."""
    from pipeline.app import Docket
    from pipeline.ask import AskOptions, ask
    from pipeline.settings import load_settings

    docket = Docket(load_settings(home=home, actor="bench"))
    timings: dict[str, list[float]] = {"search": [], "answerer": [], "audit append": [], "whole ask": []}

    def timed(name, fn):
        def run(*a, **kw):
            t = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                timings[name].append((time.perf_counter() - t) * 1000)
        return run

    store, reasoner, audit = docket.store, docket.reasoner, docket.audit
    store.search = timed("search", store.search)
    reasoner.answer = timed("answerer", reasoner.answer)
    audit.append = timed("audit append", audit.append)
    ask(docket, QUESTIONS[0], AskOptions(collection=COLLECTION))  # warm
    for key in timings:
        timings[key].clear()
    for n in range(repeats):
        t = time.perf_counter()
        ask(docket, QUESTIONS[n % len(QUESTIONS)], AskOptions(collection=COLLECTION))
        timings["whole ask"].append((time.perf_counter() - t) * 1000)
    return {k: round(statistics.median(v), 1) for k, v in timings.items()}


def main() -> None:
    from tests.fake_llm import FakeLLM, mistral_2509

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--asks", type=int, default=40, help="asks per measurement")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--latency", type=float, default=0.25, help="seconds per fake model call")
    parser.add_argument("--cold-runs", type=int, default=3)
    args = parser.parse_args()

    class LatencyServer(FakeLLM):
        def _next(self, path: str):
            time.sleep(args.latency)
            return mistral_2509("The clause is in S1.", "The agreement addresses this in S1 [S1].")

    fake = LatencyServer()
    fake.start()
    results: dict = {"latency_s": args.latency, "asks": args.asks}
    try:
        with tempfile.TemporaryDirectory(prefix="docket-service-bench-") as tmp:
            home = Path(tmp) / "home"
            token = setup_workspace(home)
            answerers = {
                "extractive": {},
                "fake LLM": {"DOCKET_REASONER": "magistral", "DOCKET_LLM__PROVIDER": "openai-compatible",
                             "DOCKET_LLM__BASE_URL": fake.base_url, "DOCKET_LLM__MAX_RETRIES": "0"},
            }
            for label, env in answerers.items():
                process, base, ready_s = serve(home, env, Path(tmp) / f"serve-{label.replace(' ', '-')}.log")
                try:
                    print(f"{label}: server ready in {ready_s:.1f}s", flush=True)
                    run_clients(base, token, 1, 3)  # untimed: first connections, caches
                    results[label] = {"ready_s": round(ready_s, 1),
                                      "runs": [run_clients(base, token, n, args.asks) for n in args.clients]}
                finally:
                    process.terminate()
                    process.wait(timeout=30)
            cold = cold_cli(home, args.cold_runs)
            results["cold_cli_s"] = {"median": round(statistics.median(cold), 2), "min": round(min(cold), 2),
                                     "max": round(max(cold), 2)}
            results["parts_ms"] = parts_of_one_ask(home)
    finally:
        fake.stop()

    print(f"\n{args.asks} asks per row; fake LLM {args.latency * 1000:.0f} ms per call; goals: extractive p50 < "
          f"{GOALS['extractive_p50_ms']} ms, fake LLM >= {GOALS['fake_llm_asks_per_s_16']} asks/s at 16 clients")
    print(f"{'answerer':<11} {'clients':>7} {'p50 ms':>7} {'p95 ms':>7} {'asks/s':>7} {'model p50 ms':>12}")
    for label in ("extractive", "fake LLM"):
        for r in results[label]["runs"]:
            print(f"{label:<11} {r['clients']:>7} {r['p50_ms']:>7} {r['p95_ms']:>7} {r['asks_per_s']:>7} "
                  f"{r['model_p50_ms'] if r['model_p50_ms'] is not None else '-':>12}")
    c = results["cold_cli_s"]
    print(f"cold CLI `docket ask` (new process, extractive): median {c['median']} s (min {c['min']}, max {c['max']})")
    print("one warm ask in parts (extractive, in-process, median ms): "
          + ", ".join(f"{k} {v}" for k, v in results["parts_ms"].items()))
    print(json.dumps(results))


if __name__ == "__main__":
    main()
