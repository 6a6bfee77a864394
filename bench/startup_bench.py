"""Start-up: whole-process wall time and peak RSS of `docket --help`, `docket ask` and `docket audit verify`.

    python -m bench.startup_bench [--runs 5] [--home DEMO_WORKSPACE] [--question "..."] [--checkout DIR]
    python -m bench.startup_bench --phases [--runs 5] [--home DEMO_WORKSPACE] [--checkout DIR]

Each command runs as a new process, as a user runs it, on the demo workspace (`docket demo --fresh`,
made into a temporary folder unless ``--home`` names one it made before), with the extractive answerer
(the default configuration). Each process's own peak RSS comes from ``os.wait4``. One untimed run of each
command goes first, so the figures are for a warm file cache, but every run is a cold process: imports,
model and index loads included. ``--checkout`` runs another copy of the code (e.g. an older commit's
``git archive``) with this venv, for before/after figures from one run. Reported per command: median, min and max wall seconds, CPU seconds
(user + system, all threads: less sensitive than wall time to other jobs on the machine) and peak MiB,
and the goals of issue 14 beside them (ask under 1.5 s and 400 MB, --help under 0.4 s).

``--phases`` says where a cold ask's CPU time goes instead: each run is a fresh interpreter that imports
the question path library by library, opens the workspace, loads the ONNX session and the tokenizer, then
asks (``pipeline.ask.ask``: search, the extractive answerer, grounding, the audit entry), timing each step
with ``time.process_time``; the median of the runs per step. Interpreter start-up and exit, typer's
parsing and rich's printing are outside it (the whole process's CPU time is the first table's).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

QUESTION = "Which state's law governs the distributor agreement?"
DEMO_COLLECTION = "samples"  # where `docket demo` ingests the sample contracts
# (command label, seconds goal, MiB goal); None: no goal set.
GOALS = {"--help": (0.4, None), "ask": (1.5, 400), "audit verify": (None, None)}


def docket_command(checkout: Path | None = None) -> list[str]:
    installed = Path(sys.executable).with_name("docket")
    if checkout is None and installed.is_file():
        return [str(installed)]
    return [sys.executable, "-m", "pipeline.cli"]  # run from inside --checkout, whose code it then imports


def run_once(argv: list[str], env: dict[str, str], cwd: Path | None) -> tuple[float, float, float, int, str]:
    """(wall seconds, CPU seconds, peak RSS in MiB, exit code, stdout + stderr) of one process."""
    started = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, so Popen must not wait again
        out.seek(0)
        text = out.read()
    cpu = usage.ru_utime + usage.ru_stime
    return seconds, cpu, usage.ru_maxrss / 1024, proc.returncode, text  # Linux reports ru_maxrss in KiB


def make_demo_workspace(home: Path, env: dict[str, str], checkout: Path | None) -> None:
    print(f"making the demo workspace in {home} (docket demo --fresh) ...", flush=True)
    proc = subprocess.run([*docket_command(checkout), "demo", "--fresh"], env={**env, "DOCKET_HOME": str(home)},
                          capture_output=True, text=True, cwd=checkout)
    if proc.returncode != 0:
        raise SystemExit(f"docket demo failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")


# A cold ask, step by step, in a fresh interpreter: prints one "step<TAB>CPU seconds" line per step.
PHASES = r"""
import sys, time
steps = []
def step(name, since=[time.process_time()]):
    now = time.process_time()
    steps.append((name, now - since[0]))
    since[0] = now
import typer, rich.console; step("import typer and rich")
import pipeline.cli.root; step("import the CLI (pipeline.cli.root)")
import numpy; step("import numpy")
import sqlalchemy.orm; step("import SQLAlchemy (core and ORM)")
import pydantic, pipeline.settings; step("import pydantic and pipeline.settings")
import faiss; step("import FAISS")
import onnxruntime; step("import ONNX Runtime")
import ingest.store; step("import the rest of ingest.store")
import audit.log; step("import audit.log (and cryptography)")
import pipeline.ask, pipeline.extractive; step("import the rest of pipeline.ask")
from pipeline.app import Docket
from pipeline.ask import AskOptions, ask
from pipeline.settings import load_settings
docket = Docket(load_settings(home=sys.argv[1])); docket.store; docket.audit; step("settings, open the registry and the audit log")
docket.store.encoder.query_session; step("ONNX question session")
docket.store.encoder.tokenizer; step("tokenizer")
reasoner = docket.reasoner
answer, answering = reasoner.answer, []
def timed(*args, **kwargs):
    started = time.process_time()
    try:
        return answer(*args, **kwargs)
    finally:
        answering.append(time.process_time() - started)
reasoner.answer = timed
record = ask(docket, sys.argv[2], AskOptions(collection=sys.argv[3]))
step("ask: search, answer, grounding, audit entry")
steps.append(("  of which the extractive answerer (its sentence vectors)", answering[0]))
assert record.status == "answered", record.status
for name, seconds in steps:
    print(f"{name}	{seconds}")
"""


def phases(home: Path, question: str, runs: int, env: dict[str, str], cwd: Path | None) -> None:
    per_step: dict[str, list[float]] = {}
    for _ in range(runs + 1):  # the first run untimed, as in the main table
        proc = subprocess.run([sys.executable, "-c", PHASES, str(home), question, DEMO_COLLECTION],
                              capture_output=True, text=True, env=env, cwd=cwd)
        if proc.returncode != 0:
            raise SystemExit(f"the phases run failed:\n{proc.stderr}")
        if _ == 0:
            continue
        for line in proc.stdout.splitlines():
            name, seconds = line.split("\t")
            per_step.setdefault(name, []).append(float(seconds))
    total = sum(statistics.median(v) for name, v in per_step.items() if not name.startswith(" "))
    print(f"\n{cwd or 'installed code'}: a cold ask step by step, median CPU s of {runs} runs; load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print("| step | CPU s: median | min | max |")
    print("|---|---|---|---|")
    for name, values in per_step.items():
        print(f"| {name.strip()} | {summary(values)} |")
    print(f"| total of the steps | {total:.2f} | | |")


def summary(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} | {min(values):.2f} | {max(values):.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="timed runs of each command (after one untimed)")
    parser.add_argument("--home", type=Path, help="a demo workspace made before (default: a new one, deleted after)")
    parser.add_argument("--question", default=QUESTION)
    parser.add_argument("--checkout", type=Path, help="run the code in this folder instead of the installed one")
    parser.add_argument("--phases", action="store_true", help="where a cold ask's CPU time goes, step by step")
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="docket-startup-"))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "COLUMNS": "100"}
    # Bytecode cached as an installed package has it (the untimed run writes it), in the scratch folder
    # rather than the checkout; a shell with PYTHONDONTWRITEBYTECODE would otherwise compile every run.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(scratch / "pycache")
    if args.checkout is not None:  # run from it: the current folder comes first on sys.path
        args.checkout = args.checkout.resolve()
    home = args.home or scratch / "demo"
    if not (home / ".docket-demo").exists():
        make_demo_workspace(home, env, args.checkout)
    env["DOCKET_HOME"] = str(home)
    if args.phases:
        try:
            phases(home, args.question, args.runs, env, args.checkout)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        return
    docket = docket_command(args.checkout)
    commands = {
        "--help": [*docket, "--help"],
        "ask": [*docket, "ask", "-c", DEMO_COLLECTION, args.question],
        "audit verify": [*docket, "audit", "verify"],
    }
    times: dict[str, list[float]] = {name: [] for name in commands}
    cpu_times: dict[str, list[float]] = {name: [] for name in commands}
    peaks: dict[str, list[float]] = {name: [] for name in commands}
    load_before = os.getloadavg()
    try:
        for name, argv in commands.items():
            seconds, cpu, peak, code, text = run_once(argv, env, args.checkout)  # untimed: a first export, a cold file cache
            if code != 0:
                raise SystemExit(f"{' '.join(argv[len(docket):])} exited {code}:\n{text}")
        for _ in range(args.runs):  # commands interleaved, so load drift hits each alike
            for name, argv in commands.items():
                seconds, cpu, peak, code, text = run_once(argv, env, args.checkout)
                if code != 0:
                    raise SystemExit(f"{name} exited {code}:\n{text}")
                times[name].append(seconds)
                cpu_times[name].append(cpu)
                peaks[name].append(peak)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    load_after = os.getloadavg()

    print(f"\n{args.checkout or 'installed code'}: {args.runs} runs of each command, {os.cpu_count()} CPUs; load average before "
          f"{' '.join(f'{x:.2f}' for x in load_before)}, after {' '.join(f'{x:.2f}' for x in load_after)}")
    print("| command | wall s: median | min | max | CPU s: median | min | max | peak RSS MiB: median | min | max | goal |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for name in commands:
        seconds_goal, mib_goal = GOALS[name]
        goal = []
        if seconds_goal is not None:
            goal.append(f"< {seconds_goal} s: {'met' if statistics.median(times[name]) < seconds_goal else 'NOT met'}")
        if mib_goal is not None:
            goal.append(f"< {mib_goal} MB: {'met' if statistics.median(peaks[name]) * 1.048576 < mib_goal else 'NOT met'}")
        print(f"| `docket {name}` | {summary(times[name])} | {summary(cpu_times[name])} | {summary(peaks[name])} "
              f"| {'; '.join(goal) or '-'} |")


if __name__ == "__main__":
    main()
