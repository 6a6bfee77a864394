"""The `docket` command line.

Every command that prints data takes ``--json`` (stable keys, see docs/cli.md). Errors, ``--json``
printing and the exit codes (0 done, 1 failed, 2 bad usage or input, 130 interrupted) are
``pipeline.cli.plumbing``'s, shared with the sub-apps.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperGroup, TyperOption

from pipeline.cli.answers import print_answer
from pipeline.cli.options import CollectionOpt, SinceOpt, TypeFilterOpt, UntilOpt, document_tags
from pipeline.cli.plumbing import FAILED, INTERRUPTED, USAGE, JsonFlag, err_console, exit_code_for, fail, parse_day, print_json, say_error

# Settings (pydantic), the store (SQLAlchemy, FAISS) and the sub-apps are imported by the commands that
# use them, not here: `docket --help` should cost Python, typer and rich, and nothing else.
if TYPE_CHECKING:
    from pipeline.settings import DocketSettings


_option_type = TyperOption.display_type_rich


def _flag_type(self: TyperOption, ctx) -> str | None:
    """No type for a flag in --help: typer (0.29) shows ``<bool>`` beside ``--json`` as if it took a value.
    Set on the class, so the sub-apps mounted in docket (audit, review, eval, users) render alike."""
    return None if self.is_flag and not self.count else _option_type(self, ctx)


TyperOption.display_type_rich = _flag_type


class LazyGroup(TyperGroup):
    """The root group, with sub-apps mounted on first use: ``LAZY_COMMANDS`` names each with its one-line
    help, and its module is imported only when that command runs (or its own --help is asked), so the
    root's --help lists it without importing the audit log, the review engine or the evaluator."""

    _listing = False

    def list_commands(self, ctx) -> list[str]:
        return [*super().list_commands(ctx), *(name for name in LAZY_COMMANDS if name not in self.commands)]

    def get_command(self, ctx, cmd_name: str):
        if cmd_name in self.commands or cmd_name not in LAZY_COMMANDS:
            return super().get_command(ctx, cmd_name)
        load, help_ = LAZY_COMMANDS[cmd_name]
        if self._listing:  # the root's help shows the name and help line; nothing needs loading for that
            return typer.core.TyperCommand(name=cmd_name, help=help_)
        command = load()
        self.add_command(command, cmd_name)
        return command

    def format_help(self, ctx, formatter) -> None:
        self._listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False


app = typer.Typer(
    name="docket",
    help="Ask questions of contracts and filings; every answer cites its sources and is logged for audit.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
    cls=LazyGroup,
)

console = Console()


class _State:
    """What the root options set; commands build the Docket object from it on first use."""

    home: Path | None = None
    config: str | None = None
    _docket = None

    def settings(self) -> DocketSettings:
        return self.docket().settings

    def docket(self):
        if self._docket is None:
            from pipeline.app import Docket
            from pipeline.identity.actors import os_identity, untrusted_actor_problem
            from pipeline.settings import load_settings

            # The actor of every entry this process makes is the OS user running it (os-user:NAME), never
            # DOCKET_ACTOR or a config file's `actor`, which anyone can set (docs/audit.md, "Who the actor is").
            problem = untrusted_actor_problem()
            if problem:
                fail(problem, USAGE)
            self._docket = Docket(load_settings(self.config, home=self.home, actor=os_identity().actor))
        return self._docket


state = _State()


@app.callback()
def root(
    home: Annotated[
        Path | None,
        typer.Option("--home", envvar="DOCKET_HOME", help="Workspace folder (default: the platform's user data dir, e.g. ~/.local/share/docket)."),
    ] = None,
    config: Annotated[
        str | None,
        typer.Option("--config", envvar="DOCKET_CONFIG", help="YAML config file, or a preset: offline, mistral, onprem, postgres."),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log progress details to stderr.")] = False,
) -> None:
    state.home, state.config, state._docket = home, config, None
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")


# -- ingest ---------------------------------------------------------------------------------------------
@app.command()
def ingest(
    paths: Annotated[list[Path], typer.Argument(help="PDF or image files, or folders (searched recursively).")],
    collection: CollectionOpt = None,
    ocr: Annotated[str | None, typer.Option("--ocr", help="auto (default): OCR pages without usable text; always; never.")] = None,
    describe_figures: Annotated[bool, typer.Option(
        "--describe-figures", help="Describe charts and figures on text pages with the vision model (ocr.vision_*; needs network)."
    )] = False,
    doc_type: Annotated[str | None, typer.Option("--type", "-t", help="Tag every document of this batch with a type (10-K, NDA, ...); filters use it.")] = None,
    doc_date: Annotated[str | None, typer.Option("--date", help="Tag every document of this batch with its own date (YYYY-MM-DD).")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Ingest documents: extract pages, chunk, embed and index them. Same bytes again are skipped (re-tagged if --type/--date)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from ingest.models import display_path
    from ingest.store import iter_input_files
    from pipeline.documents import UnrecordedChange, ingest_documents

    tags = document_tags(doc_type, doc_date)
    docket = state.docket()
    if ocr is not None:
        if ocr not in ("auto", "always", "never"):
            fail(f"--ocr {ocr}: expected auto, always or never", USAGE)
        docket.settings.ocr.mode = ocr
    if describe_figures:
        docket.settings.ocr.describe_figures = True
    collection = collection or docket.settings.collection
    files = list(iter_input_files(paths))
    if not files:
        fail("no PDF or image files found in " + ", ".join(map(display_path, paths)), FAILED)
    with Progress(
        TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
        console=err_console, disable=as_json or not err_console.is_terminal,
    ) as progress:
        task = progress.add_task("Ingesting", total=len(files))

        def on_file(result) -> None:
            progress.advance(task)
            if result.outcome == "failed" and not as_json:
                err_console.print(f"[red]failed:[/] {escape(result.error)}", highlight=False, soft_wrap=True)

        try:  # each document added or changed is an audit event (pipeline/documents.py)
            report = ingest_documents(docket, files, collection, on_file=on_file, tags=tags)
        except UnrecordedChange as exc:
            fail(str(exc), FAILED)
    summary = report.summary()
    if as_json:
        print_json({"collection": collection, "summary": summary, "files": [r.__dict__ for r in report.results]})
    else:
        console.print(
            f"[bold]{summary['added']}[/] added, {summary['new_versions']} new versions, "
            f"{summary['unchanged']} unchanged (skipped), [bold red]{summary['failed']}[/] failed; "
            f"{summary['pages']} pages ({summary['ocr_pages']} read by OCR), {summary['chunks']} chunks "
            f"in collection {collection!r}."
        )
    if report.failed:
        raise typer.Exit(FAILED)


# -- ask / chat -----------------------------------------------------------------------------------------
@app.command()
def ask(
    question: Annotated[str | None, typer.Argument(help="The question, in any language (or --questions FILE).")] = None,
    collection: CollectionOpt = None,
    doc: Annotated[list[str] | None, typer.Option("--doc", "-d", help="Restrict to a document (id, file name or SHA-256 prefix); repeatable.")] = None,
    top_k: Annotated[int | None, typer.Option("--top-k", "-k", min=1, max=100, help="Evidence passages to use.")] = None,
    show_trace: Annotated[bool, typer.Option("--show-trace", help="Print the reasoning trace.")] = False,
    stream: Annotated[bool, typer.Option("--stream", help="Show the trace live as it arrives; the answer once it is checked.")] = False,
    allow_ungrounded: Annotated[bool, typer.Option("--allow-ungrounded", help="Show an answer that fails grounding as an answer (flagged) instead of withholding it; exit 0.")] = False,
    show_withheld: Annotated[bool, typer.Option("--show-withheld", help="Also print a withheld answer, marked as withheld and why.")] = False,
    strict: Annotated[bool | None, typer.Option("--strict/--no-strict", hidden=True, help="No longer needed: an answer that fails grounding is withheld by default.")] = None,
    doc_type: TypeFilterOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    as_json: JsonFlag = False,
    questions: Annotated[Path | None, typer.Option("--questions", help="Answer every question of a .jsonl or .csv file (fields id, question, collection, doc), one audit entry each; on Ray with compute.engine: ray.")] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="With --questions: write the answers to this .jsonl or .csv file (default: JSON lines on stdout).")] = None,
) -> None:
    """Answer a question from the ingested documents, citing [S#] sources; the answer is logged for audit.

    An answer that fails grounding is withheld (exit 1) unless --allow-ungrounded."""
    if questions is not None or output is not None:  # many questions: pipeline/cli/batch.py
        from pipeline.cli.batch import ask_batch_command

        raise typer.Exit(ask_batch_command(
            state.docket, question, questions, output, collection=collection, documents=doc, top_k=top_k,
            allow_ungrounded=allow_ungrounded, doc_types=doc_type, since=since, until=until, as_json=as_json,
        ))
    if question is None or not question.strip():  # before the workspace is opened: nothing to search, nothing to log
        fail('the question is empty; ask one, e.g. docket ask "Which law governs the agreement?"', USAGE)
    from pipeline.ask import AskOptions
    from pipeline.ask import ask as run_ask

    if strict is False:
        fail("--no-strict is gone: an answer that fails grounding is withheld by default; "
             "use --allow-ungrounded (or grounding.allow_ungrounded) to show it anyway", USAGE)
    options = AskOptions(
        collection=collection, every_collection=collection is None,  # without -c: every collection
        documents=doc or [], top_k=top_k, doc_types=doc_type or [],
        since=parse_day(since, "--since"), until=parse_day(until, "--until"),
        allow_ungrounded=True if allow_ungrounded else None,
    )
    if stream and not as_json:
        options.on_delta = _live_printer(show_trace)
    record = run_ask(state.docket(), question, options)
    searched = _collections_searched(collection, doc or [])
    if as_json:
        print_json({**record.model_dump(mode="json"), "collections_searched": searched})
    else:
        if collection is None:  # the user did not choose: say where the answer was looked for
            console.print(f"[dim]searched {_collections_phrase(searched)}[/]", highlight=False, soft_wrap=True)
        print_answer(console, record, show_trace=show_trace and not stream, streamed=stream, show_withheld=show_withheld)
    if record.status in ("error", "incomplete", "withheld"):
        raise typer.Exit(FAILED)


def _collections_searched(collection: str | None, doc_refs: list[str]) -> list[str]:
    """The collections an ask looked in: the one given with -c, else every collection with documents
    (those of the --doc documents, when given)."""
    if collection is not None:
        return [collection]
    store = state.docket().store
    document_ids = []
    for ref in doc_refs:
        try:
            document_ids.append(store.resolve(ref).id)
        except LookupError:  # the ask has already reported it
            pass
    if doc_refs and not document_ids:
        return []
    return store.live_collections(document_ids or None)


def _collections_phrase(names: list[str]) -> str:
    if not names:
        return "every collection (none has documents yet)"
    quoted = ", ".join(repr(n) for n in names)
    return f"collection {quoted}" if len(names) == 1 else f"{len(names)} collections: {quoted}"


@app.command()
def chat(
    collection: CollectionOpt = None,
    doc: Annotated[list[str] | None, typer.Option("--doc", "-d", help="Restrict to a document; repeatable.")] = None,
    show_trace: Annotated[bool, typer.Option("--show-trace", help="Print each reasoning trace.")] = False,
    allow_ungrounded: Annotated[bool, typer.Option("--allow-ungrounded", help="Show answers that fail grounding (flagged) instead of withholding them.")] = False,
    show_withheld: Annotated[bool, typer.Option("--show-withheld", help="Also print withheld answers, marked as withheld and why.")] = False,
    doc_type: TypeFilterOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
) -> None:
    """Ask follow-up questions with history (earlier traces are never sent back). Empty line or Ctrl-D ends."""
    from pipeline.ask import AskOptions
    from pipeline.ask import ask as run_ask
    from pipeline.reasoning import ChatTurn

    scope = dict(collection=collection, documents=doc or [], doc_types=doc_type or [],
                 since=parse_day(since, "--since"), until=parse_day(until, "--until"))
    history: list[ChatTurn] = []
    while True:
        try:
            question = console.input("[bold cyan]question>[/] ").strip()
        except EOFError:
            break
        if not question:
            break
        record = run_ask(state.docket(), question, AskOptions(
            **scope, history=list(history), allow_ungrounded=True if allow_ungrounded else None))
        print_answer(console, record, show_trace=show_trace, show_withheld=show_withheld)
        if record.status == "answered":  # a withheld answer is not history the model builds on
            history.append(ChatTurn(question=question, answer=record.answer))


def _live_printer(show_trace: bool):
    started: set[str] = set()

    def on_delta(kind: str, text: str) -> None:
        # Only the trace is shown live: the answer is printed once grounding has checked it, so an
        # answer that is then withheld never reaches the screen as if it were one.
        if kind != "trace" or not show_trace:
            return
        if kind not in started:
            started.add(kind)
            console.print(f"\n[bold]{'Trace' if kind == 'trace' else 'Answer'}:[/]")
        console.out(text, end="", highlight=False, style="dim" if kind == "trace" else None)

    return on_delta


# -- audit (the commands live in audit/, so an auditor can run them without the rest of Docket) ----------
def _audit_context():
    from audit import AuditContext

    settings = state.settings()
    return AuditContext(
        url=settings.resolved_audit_url, keys_dir=settings.keys_dir, actor=settings.actor,
        lock_timeout=settings.audit.lock_timeout,
        witness=settings.audit.witness, witness_command=tuple(settings.audit.witness_command or ()) or None,
        trusted_keys=tuple(settings.audit.trusted_keys),
    )


def _mounted(mount: Callable[[typer.Typer], None], name: str):
    """The click command ``mount`` adds to a Typer made like ``app``: typer's own mounting, done late."""
    holder = typer.Typer(rich_markup_mode="rich", pretty_exceptions_enable=False)
    holder.callback()(lambda: None)  # a callback makes a group of it, whatever ``mount`` adds
    mount(holder)
    return typer.main.get_group(holder).commands[name]


def _load_audit():
    from audit.cli import make_app
    from pipeline.cli.replay import add_replay_command  # `audit replay` needs the rest of Docket; audit/ does not

    return _mounted(lambda holder: holder.add_typer(add_replay_command(make_app(_audit_context), state.docket), name="audit", help=AUDIT_HELP), "audit")


def _load_docs():
    from pipeline.cli.docs import make_docs_app

    return _mounted(lambda holder: holder.add_typer(make_docs_app(state.docket), name="docs"), "docs")


def _load_config():
    from pipeline.cli.config import make_config_app

    return _mounted(lambda holder: holder.add_typer(make_config_app(state.settings), name="config"), "config")


def _load_review():
    from pipeline.cli.review import make_review_app

    return _mounted(lambda holder: holder.add_typer(make_review_app(state.docket), name="review"), "review")


def _load_users():
    from pipeline.identity.actors import os_identity
    from pipeline.cli.users import make_users_app

    return _mounted(lambda holder: holder.add_typer(make_users_app(state.docket, os_identity), name="users"), "users")


def _load_db():
    from pipeline.cli.db import make_db_app

    return _mounted(lambda holder: holder.add_typer(make_db_app(state.settings), name="db"), "db")


def _load_models():
    from pipeline.cli.models import make_models_app

    return _mounted(lambda holder: holder.add_typer(make_models_app(state.settings), name="models"), "models")


def _load_eval():
    from pipeline.cli.eval import eval_command

    return _mounted(lambda holder: holder.command("eval")(eval_command), "eval")


AUDIT_HELP = "Inspect, verify, prove and export the audit log."
# Mounted by LazyGroup on first use; the help lines are the sub-apps' own (tests/test_startup_imports.py
# compares them with the loaded commands').
LAZY_COMMANDS: dict[str, tuple[Callable[[], Any], str]] = {
    "docs": (_load_docs, "List, inspect and remove ingested documents."),
    "config": (_load_config, "Show the settings in force."),
    "audit": (_load_audit, AUDIT_HELP),
    "review": (_load_review, "Run a checklist over documents, show and report the findings, diff reviews, sign off."),
    "users": (_load_users, "Add, list and disable service users; grant collections and documents; issue and revoke API tokens."),
    "db": (_load_db, "Show and upgrade the schema of the workspace's databases (registry and audit log)."),
    "models": (_load_models, "Check the configured LLM model against the models the endpoint offers (GET /v1/models)."),
    "eval": (_load_eval, "Measure retrieval on questions with gold pages: R@k, MRR, nDCG, span recall, latency; dense, BM25 and hybrid."),
}


# -- serve ----------------------------------------------------------------------------------------------
@app.command()
def serve(
    host: Annotated[str, typer.Option("--host", help="Address to listen on (127.0.0.1: this machine only).")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="TCP port.")] = 8000,
) -> None:
    """Serve the HTTP API (OpenAPI at /docs): one process holds the models warm; callers log in as users."""
    from pipeline.service.app import serve as run

    run(state.settings(), host=host, port=port)


# -- demo -----------------------------------------------------------------------------------------------
@app.command()
def demo(
    fresh: Annotated[bool, typer.Option("--fresh", help="Start from an empty workspace.")] = False,
) -> None:
    """Ingest the sample contracts, answer questions with citations and traces, then verify the audit log."""
    from pipeline.cli.demo import run_demo

    raise typer.Exit(run_demo(state, console, fresh=fresh))


def main() -> None:
    try:
        app()
    except Exception as exc:
        # A user error that no command turned into its line (a setting, a database a migration must
        # upgrade first, an audit log locked by another writer past audit.lock_timeout): one line and
        # its exit code (plumbing.USER_ERRORS), not a traceback. Anything else is a bug: raised.
        code = exit_code_for(exc)
        if code is None:
            raise
        say_error(str(exc))
        sys.exit(code)
    except KeyboardInterrupt:  # before typer is running
        _say_interrupted()
        sys.exit(INTERRUPTED)
    except SystemExit as exit_:
        if exit_.code == INTERRUPTED:  # typer turns Ctrl-C into this exit before the handler above sees it
            _say_interrupted()
        raise


def _say_interrupted() -> None:
    err_console.print("[yellow]interrupted[/]: files and entries already written are complete; nothing is half-written.")


if __name__ == "__main__":
    main()
