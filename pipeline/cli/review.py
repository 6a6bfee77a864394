"""`docket review ...`: run a checklist, show the matrix, write reports, diff, sign off.

pipeline/cli/root.py mounts it on first use; ``python -m pipeline.review`` runs it alone.
``docket review CHECKLIST ...`` is short for ``docket review run CHECKLIST ...``.
"""

from __future__ import annotations

from dataclasses import asdict
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table
from typer.core import TyperGroup

from pipeline.app import Docket
from pipeline.cli.plumbing import FAILED, INTERRUPTED, JsonFlag, parse_day, print_json, user_errors
from pipeline.review.checklist import load_checklist
from pipeline.review.diff import diff_reviews
from pipeline.review.reports import FORMATS, VERDICT_COLOURS, render, reviewed_verdict, summary
from pipeline.review.runner import ReviewError, ReviewInterrupted, RunHooks, review_state, run_review
from pipeline.review.signoff import sign_off
from pipeline.review.verdicts import VERDICT_LABELS

_out = Console(highlight=False, soft_wrap=True)
_err = Console(stderr=True, highlight=False, soft_wrap=True)
_SYMBOLS = {"compliant": "✔", "non-compliant": "✘", "not-addressed": "∅", "needs-review": "?"}

ReviewId = Annotated[str, typer.Argument(help="Review id (or a unique prefix of it).")]


class _RunByDefault(TyperGroup):
    """`docket review CHECKLIST` runs the checklist: a first word that is no command means `run`."""

    def parse_args(self, ctx, args):
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


def make_review_app(get_docket: Callable[[], Docket]) -> typer.Typer:
    """The `review` command group; ``get_docket`` is called when a command runs."""
    app = typer.Typer(
        cls=_RunByDefault, no_args_is_help=True,
        help="Run a checklist over documents, show and report the findings, diff reviews, sign off.",
    )

    def _filtered_documents(docket, collection, refs, doc_types, since, until) -> list[str]:
        """The ids of the documents (of ``refs``, or of the collection) that the type/date filter admits."""
        from ingest.store import DocumentFilter

        collection = collection or docket.settings.collection
        try:
            ids = tuple(docket.store.resolve(ref, collection).id for ref in refs)
        except LookupError as exc:
            raise ReviewError(str(exc).strip("'\"")) from None
        where = DocumentFilter(collection, ids, tuple(doc_types), parse_day(since, "--since"), parse_day(until, "--until"))
        matched = docket.store.matching_document_ids(where)
        if not matched:
            raise ReviewError(f"no documents in collection {collection!r} match the --type/--since/--until filter; "
                              "`docket docs list` shows each document's type and date")
        return [str(i) for i in matched]

    @app.command("run")
    @user_errors
    def run(
        checklist: Annotated[str, typer.Argument(help="Checklist YAML file, or a shipped one: commercial-contract, 10k-filing.")],
        collection: Annotated[str | None, typer.Option("--collection", "-c", help="Review every document of this collection.")] = None,
        doc: Annotated[list[str] | None, typer.Option("--doc", "-d", help="A document (id, name, SHA-256 prefix) or a file to ingest and review; repeatable.")] = None,
        force: Annotated[bool, typer.Option("--force", help="Redo every cell, even those already recorded.")] = False,
        new: Annotated[bool, typer.Option("--new", help="Start a new review instead of continuing the last one.")] = False,
        concurrency: Annotated[int | None, typer.Option("--concurrency", min=1, max=64, help="Parallel model calls (default llm.concurrency).")] = None,
        doc_type: Annotated[list[str] | None, typer.Option("--type", "-t", help="Review the documents of this type (as tagged); repeatable.")] = None,
        since: Annotated[str | None, typer.Option("--since", help="Review the documents dated on or after this day (YYYY-MM-DD).")] = None,
        until: Annotated[str | None, typer.Option("--until", help="Review the documents dated on or before this day (YYYY-MM-DD).")] = None,
        as_json: JsonFlag = False,
    ) -> None:
        """Run CHECKLIST over the documents; running it again continues where it stopped."""
        loaded = load_checklist(checklist)
        docket = get_docket()
        if doc_type or since or until:
            doc = _filtered_documents(docket, collection, doc or [], doc_type or [], since, until)
        progress = Progress(
            TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
            console=_err, disable=as_json or not _err.is_terminal,
        )
        task = progress.add_task("Reviewing", total=None)

        def on_plan(review, todo: int, done: int) -> None:
            if not as_json:
                verb = "Continuing" if done else "Starting"
                _err.print(f"{verb} review [bold]{review.id}[/]: {todo} cells to run, {done} already recorded")
                for d in review.documents:
                    if d.status == "failed":
                        _err.print(f"[red]not reviewed:[/] {escape(d.name)}: {escape(d.error or '')}")
            progress.update(task, total=todo, description=f"Reviewing {review.id}")

        def on_cell(cell, doc_name: str) -> None:
            progress.advance(task)
            if cell.failed and not as_json:
                progress.console.print(f"[yellow]failed cell[/] {cell.item_id} × {escape(doc_name)}: "
                                       f"{escape(cell.finding.error or cell.finding.basis)}")

        try:
            with progress:
                outcome = run_review(docket, loaded, collection=collection, documents=doc or [], force=force,
                                     new=new, concurrency=concurrency, hooks=RunHooks(on_plan, on_cell))
        except ReviewInterrupted as stop:
            _err.print(f"[yellow]interrupted:[/] {stop}")
            raise typer.Exit(INTERRUPTED) from None
        review = outcome.review
        if as_json:
            print_json({"review_id": review.id, "ran": outcome.ran, "restored": outcome.restored,
                        "resumed": outcome.resumed, "summary": summary(review)})
        else:
            _print_matrix(review)
            info = summary(review)
            _out.print(f"{outcome.ran} cells run, {outcome.restored} restored from the audit log; "
                       f"{info['cells']} of {info['expected_cells']} recorded"
                       + (f"; signed checkpoint at log size {review.checkpoint['size']}" if review.checkpoint else ""))
        if any(d.status == "failed" for d in review.documents) or summary(review)["failed_cells"]:
            raise typer.Exit(FAILED)

    @app.command("validate")
    @user_errors
    def validate(
        checklist: Annotated[str, typer.Argument(help="Checklist YAML file or shipped name.")],
        as_json: JsonFlag = False,
    ) -> None:
        """Check a checklist file without running it."""
        loaded = load_checklist(checklist)
        if as_json:
            print_json({"valid": True, "name": loaded.name, "title": loaded.title, "version": loaded.version,
                        "items": [item.id for item in loaded.items]})
            return
        _out.print(f"{loaded.name}: {len(loaded.items)} items, valid")

    @app.command("list")
    @user_errors
    def list_reviews(as_json: JsonFlag = False) -> None:
        """The reviews in this workspace."""
        state = review_state(get_docket())
        try:
            rows = state.list()
        finally:
            state.close()
        if as_json:
            print_json({"reviews": rows})
            return
        table = Table("id", "checklist", "collection", "reasoner", "cells", "started", "completed")
        for r in rows:
            table.add_row(r["id"], r["checklist_name"], r["collection"], r["reasoner"], str(r["cells"]),
                          r["created_at"][:19], (r["completed_at"] or "no")[:19])
        _out.print(table)

    @app.command("show")
    @user_errors
    def show(review_id: ReviewId, as_json: JsonFlag = False) -> None:
        """The review's matrix: documents × items, one verdict a cell."""
        review = _load(get_docket, review_id)
        if as_json:
            sys.stdout.write(render(review, "json"))
            return
        _print_matrix(review)

    @app.command("report")
    @user_errors
    def report(
        review_id: ReviewId,
        fmt: Annotated[str, typer.Option("--format", "-f", help="md, html, csv or json.")] = "html",
        output: Annotated[Path | None, typer.Option("--output", "-o", help="File to write (default: stdout).")] = None,
    ) -> None:
        """Write the review as Markdown, a self-contained HTML page, CSV or JSON."""
        if fmt not in FORMATS:
            raise ReviewError(f"--format {fmt}: expected one of {', '.join(FORMATS)}")
        text = render(_load(get_docket, review_id), fmt)
        if output is None:
            sys.stdout.write(text)
            return
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text, encoding="utf-8")
        _err.print(f"wrote {output}")

    @app.command("diff")
    @user_errors
    def diff(
        a: Annotated[str, typer.Argument(help="The earlier review.")],
        b: Annotated[str, typer.Argument(help="The later review.")],
        all_cells: Annotated[bool, typer.Option("--all", help="List unchanged cells too.")] = False,
        as_json: JsonFlag = False,
    ) -> None:
        """Compare two reviews cell by cell."""
        result = diff_reviews(_load(get_docket, a), _load(get_docket, b))
        if as_json:
            print_json(result.to_dict())
            return
        ctx = result.context
        for side in ("a", "b"):
            c = ctx[side]
            _out.print(f"{side}: {getattr(result, side)} · {c['checklist']} · {c['reasoner']} · index generation "
                       f"{c['index_generation']} · {c['created_at'][:19]}")
        table = Table("item", "document", "change", "a", "b", "document version")
        for c in result.cells:
            if c.change == "same" and not all_cells:
                continue
            table.add_row(c.item_id, escape(c.document), c.change, _label(c.verdict_a), _label(c.verdict_b),
                          "changed" if c.document_changed else "same")
        _out.print(table)
        _out.print(", ".join(f"{n} {k}" for k, n in result.counts().items()))

    @app.command("sign-off")
    @user_errors
    def sign_off_command(
        review_id: ReviewId,
        decision: Annotated[str, typer.Option("--decision", help="accept or override.")],
        note: Annotated[str, typer.Option("--note", help="Why (recorded in the audit log).")],
        item: Annotated[str | None, typer.Option("--item", help="One checklist item (default: all).")] = None,
        doc: Annotated[str | None, typer.Option("--doc", help="One document: name, id or SHA-256 prefix (default: all).")] = None,
        verdict: Annotated[str | None, typer.Option("--verdict", help="With override: the reviewer's verdict.")] = None,
        acknowledge_open: Annotated[int | None, typer.Option(
            "--acknowledge-open", min=0, metavar="N",
            help="Accept the whole review with its N open items (cells needing a human, not run, documents not "
                 "reviewed) left open; N must be their number. Recorded in the audit entry.")] = None,
        as_json: JsonFlag = False,
    ) -> None:
        """Accept or override findings; appended to the audit log and shown in reports.

        Accepting the whole review is refused (exit 2) while it has open items, unless --acknowledge-open
        gives their number."""
        record = sign_off(get_docket(), review_id, decision, note, item=item, doc=doc, verdict=verdict,
                          acknowledge_open=acknowledge_open)
        if as_json:
            print_json({"signed_off": asdict(record), "acknowledged_open": acknowledge_open or 0})
            return
        _out.print(f"signed off ({record.decision}) as audit entry #{record.audit_seq}"
                   + (f", with {acknowledge_open} open items acknowledged" if acknowledge_open else ""))

    from pipeline.cli.replay import add_review_replay_command  # `review replay`: pipeline/replay/ (docs/replay.md)

    return add_review_replay_command(app, get_docket)


def _load(get_docket: Callable[[], Docket], ref: str):
    state = review_state(get_docket())
    try:
        return state.load(ref)
    finally:
        state.close()


def _label(verdict: str | None) -> str:
    return VERDICT_LABELS[verdict] if verdict else "—"


def _print_matrix(review) -> None:
    items = review.checklist["items"]
    table = Table(title=f"Review {review.id}: {escape(review.checklist['title'])}", show_lines=False)
    table.add_column("document")
    for item in items:
        table.add_column(item["id"], justify="center")
    for doc in review.ready_documents:
        marks = []
        for item in items:
            cell = review.cells.get((item["id"], doc.sha256))
            if cell is None:
                marks.append("[dim]·[/]")
                continue
            final = reviewed_verdict(review, cell)
            colour = VERDICT_COLOURS[final]
            marks.append(f"[{colour}]{_SYMBOLS[final]}[/]" + ("*" if final != cell.verdict else ""))
        table.add_row(escape(doc.name), *marks)
    _out.print(table)
    _out.print("✔ compliant  ✘ non-compliant  ∅ not addressed  ? needs human review  · not run / not applicable"
               "  * overridden at sign-off")
    for d in review.documents:
        if d.status == "failed":
            _out.print(f"[red]not reviewed:[/] {escape(d.name)}: {escape(d.error or '')}")
