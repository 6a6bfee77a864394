"""`docket demo`: the main job end to end on the embedded defaults, with no network.

Ingests the CUAD sample contracts shipped in samples/, asks real questions (one of which the contracts
do not answer), prints each answer with its citations and trace, then verifies the audit log.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from pipeline.cli.plumbing import FAILED, OK, USAGE, say_error

SAMPLES = Path(__file__).resolve().parents[2] / "samples" / "contracts"  # the checkout's samples/
DEMO_MARKER = ".docket-demo"

QUESTIONS: list[tuple[str, str | None]] = [
    ("Which state's law governs the distributor agreement?", "NETGEAR_INC_04_21_2003-EX-10.16-DISTRIBUTOR_AGREEMENT.pdf"),
    ("How much notice must a party give to terminate the consulting agreement without cause?",
     "DRIVENDELIVERIES_INC_05_22_2020-EX-10.4-CONSULTING_AGREEMENT.pdf"),
    ("How long is the renewal term of the strategic alliance agreement, and how much notice ends it?",
     "DUOSTECHNOLOGIESGROUP_INC_04_21_2009-EX-10.1-STRATEGIC_ALLIANCE_AGREEMENT.pdf"),
    ("What is the interest rate on the company's revolving credit facility?", None),
]


def prepare_home(home: Path, fresh: bool) -> None:
    """--fresh empties the workspace, but only one the demo made (never a user's real workspace)."""
    if fresh and home.exists() and any(home.iterdir()):
        if not (home / DEMO_MARKER).exists():
            say_error(f"--fresh would delete {home}, which the demo did not create; set DOCKET_HOME to an empty folder")
            raise SystemExit(USAGE)
        shutil.rmtree(home)
    home.mkdir(parents=True, exist_ok=True)
    (home / DEMO_MARKER).touch()


def run_demo(state, console: Console, fresh: bool = False) -> int:
    from pipeline.ask import AskOptions, ask
    from pipeline.cli.answers import print_answer
    from pipeline.documents import ingest_documents

    settings = state.settings()
    prepare_home(settings.home, fresh)
    docket = state.docket()
    console.rule("[bold]1. Ingest the sample contracts (CUAD, CC BY 4.0)")
    # Lines that hold a file name or path are not wrapped by rich (soft_wrap): at 80 columns, or piped,
    # rich would break a long name where the width ends, mid-word; the terminal wraps them whole.
    console.print(f"workspace: {escape(str(settings.home))}", soft_wrap=True, highlight=False)
    report = ingest_documents(docket, [SAMPLES], "samples")  # each contract added is an audit event
    for result in report.results:
        console.print(f"  {result.outcome:<11} {escape(Path(result.path).name)}  ({result.pages} pages, {result.chunks} chunks)",
                      soft_wrap=True, highlight=False)
    if report.failed:
        return FAILED

    console.rule(f"[bold]2. Ask ({settings.reasoner} answerer)")
    failures = 0
    for question, doc in QUESTIONS:
        console.print(f"\n[bold cyan]Q:[/] {escape(question)}" + (f"  [dim](--doc {doc})[/]" if doc else ""),
                      soft_wrap=True, highlight=False)
        record = ask(docket, question, AskOptions(collection="samples", documents=[doc] if doc else []))
        print_answer(console, record, show_trace=True)
        failures += record.status in ("error", "incomplete")

    console.rule("[bold]3. Verify the audit log")
    report = docket.audit.verify()
    if report.ok:
        console.print(f"[green]OK[/]: {report.size} entries, Merkle root {report.root}", soft_wrap=True)
    else:
        console.print(f"[red]FAILED[/]: {escape(report.problem)}")  # the problem names its seq
    docket_ = _docket_command()
    console.print(f"\nNext: `{docket_} ask \"{escape(QUESTIONS[0][0])}\"` (every collection unless -c), "
                  f"`{docket_} audit list`, `{docket_} audit show SEQ`, `{docket_} docs list` "
                  f"(with DOCKET_HOME={escape(str(settings.home))}).", soft_wrap=True, highlight=False)
    _web_app_logins(docket, console, docket_, settings.home)
    return OK if report.ok and not failures else FAILED


def _web_app_logins(docket, console: Console, docket_: str, home: Path) -> None:
    """Demo users for the web app (a reader of the samples, an auditor), with fresh random passwords
    printed once: this workspace is the demo's own, never a user's real one."""
    import secrets

    from pipeline.identity.actors import os_identity
    from pipeline.identity.models import identity_sessions
    from pipeline.identity.users import add_user, get_user, grant

    console.rule("[bold]4. The web app")
    logins = []
    with identity_sessions(docket).begin() as session:
        for name, role in (("demo", "reader"), ("demo-auditor", "auditor")):
            try:
                get_user(session, name)
                logins.append((name, role, None))  # made by an earlier run, which printed its password
                continue
            except LookupError:  # not yet made
                pass
            password = secrets.token_urlsafe(12)
            add_user(session, docket.audit, os_identity(), name, role, password)
            if role == "reader":
                grant(session, docket.audit, os_identity(), name, "samples")
            logins.append((name, role, password))
    console.print(f"Start it with `DOCKET_HOME={escape(str(home))} {docket_} serve`, then open http://127.0.0.1:8000/ "
                  "and log in as:", soft_wrap=True, highlight=False)
    for name, role, password in logins:
        shown = password or "(the password an earlier run printed; `make demo` starts afresh with new ones)"
        console.print(f"  {name:<13} {role:<8} password: {escape(shown)}")


def _docket_command() -> str:
    """How to run docket again from this shell: its name when the shell finds it, else the path this
    process was started by (``make demo`` runs ``.venv/bin/docket`` without activating the venv)."""
    started = Path(sys.argv[0])
    if shutil.which("docket") or started.name != "docket":
        return "docket"
    return os.path.relpath(started)
