"""How the command line prints an answer record: `docket ask`, `docket chat` and the demo alike (one
place, so the demo shows an answer exactly as a user's ask does)."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table

from pipeline.cli.plumbing import say_error

STATUS_STYLE = {"answered": "green", "withheld": "red", "refused": "yellow", "incomplete": "red", "error": "red"}


def print_answer(console: Console, record, *, show_trace: bool, streamed: bool = False, show_withheld: bool = False) -> None:
    if streamed:
        console.print()
    if record.status == "error":
        say_error(record.error or "the ask failed")
        console.print(f"[dim]audit entry #{record.audit_seq}[/]")
        return
    if show_trace and record.trace:
        title = "Program steps (not a model's reasoning)" if record.trace_format == "program-steps" else "Model reasoning trace"
        console.print(Panel(escape(record.trace), title=title, border_style="dim"))
    if record.notice:
        console.print(f"[italic]{escape(record.notice)}[/]")
    console.print(escape(record.answer), highlight=False)
    if record.status == "withheld":
        if show_withheld and record.withheld_answer:
            console.print(Panel(escape(record.withheld_answer), border_style="red",
                                title="Withheld answer: NOT supported by its sources, shown because of --show-withheld"))
        else:
            console.print("[dim]--show-withheld prints it, marked as withheld; --allow-ungrounded shows such answers as answers.[/]")
    style = STATUS_STYLE.get(record.status, "white")
    # The same words as the JSON record's grounding.label (docs/reasoning.md defines them).
    label = record.grounding.label or "not checked (no answer)"
    console.print(f"[{style}]{record.status}[/] · {escape(label)} · audit entry #{record.audit_seq}", highlight=False)
    for problem in record.grounding.problems:
        console.print(f"  [yellow]![/] {escape(problem.kind)}: {escape(problem.detail)}", highlight=False)
    for flag in record.flags:
        console.print(f"  [yellow]![/] {escape(flag)}", highlight=False)
    cited = set(record.citations)
    if record.evidence:
        table = Table("", "document", "page", "retrieval score", "method", box=None, pad_edge=False)
        for e in record.evidence:
            if e.label in cited or not cited:
                table.add_row(e.label, escape(e.doc_name), str(e.page), f"{e.score:.3f}", e.method)
        console.print(table)
