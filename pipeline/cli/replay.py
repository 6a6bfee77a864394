"""`docket audit replay SEQ [--against current]` and `docket review replay`: the commands, added to the audit
sub-app by pipeline/cli/root.py and to the review sub-app by pipeline/cli/review.py.

audit/ imports nothing of Docket, so the command is added from here to the group ``audit.cli.make_app``
builds. Exit codes: 0 the replay is identical; 1 it is not (evidence or answer changed, something a frozen
replay needs is missing, or there was nothing to replay); 2 the entry cannot be replayed at all (no such
entry, not an answer) or the settings are bad.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from pipeline.cli.plumbing import FAILED, OK, USAGE, fail, print_json, user_errors

if TYPE_CHECKING:
    from pipeline.app import Docket
    from pipeline.replay.runner import ReplayReport

_out = Console(highlight=False, soft_wrap=True)


def add_replay_command(app: typer.Typer, get_docket: Callable[[], Docket]) -> typer.Typer:
    """Add `replay` to the `audit` group ``app`` (returned, for mounting in one expression)."""

    @app.command("replay")
    def replay(
        seq: Annotated[int, typer.Argument(help="The answer entry (or review finding) to replay.")],
        against: Annotated[str, typer.Option(
            "--against", help="frozen: the index, settings and model of the entry's time; current: today's.")] = "frozen",
        as_json: Annotated[bool, typer.Option("--json", help="Print the replay report as JSON.")] = False,
    ) -> None:
        """Replay an answer on its frozen index (or --against current) and show what changed; the replay is logged."""
        if against not in ("frozen", "current"):
            fail(f"--against {against}: expected frozen or current", USAGE)
        report = run_replay(get_docket, seq, against)
        if as_json:
            print_json(report.to_dict())
        else:
            print_report(report, _out)
        raise typer.Exit(OK if report.outcome == "identical" else FAILED)

    return app


def add_review_replay_command(app: typer.Typer, get_docket: Callable[[], Docket]) -> typer.Typer:
    """Add `replay` to the `review` group ``app``: one cell, or a whole review into a new one."""

    @app.command("replay")
    def replay(
        review_id: Annotated[str, typer.Argument(help="Review id (or a unique prefix of it).")],
        item: Annotated[str | None, typer.Option("--item", help="The cell's checklist item.")] = None,
        doc: Annotated[str | None, typer.Option("--doc", help="The cell's document: name, id or SHA-256 prefix.")] = None,
        all_cells: Annotated[bool, typer.Option(
            "--all", help="Replay every cell, frozen, into a new review (then `docket review diff OLD NEW`).")] = False,
        against: Annotated[str, typer.Option(
            "--against", help="One cell: frozen (its time's index, settings, model) or current (today's).")] = "frozen",
        as_json: Annotated[bool, typer.Option("--json", help="Print the replay report as JSON.")] = False,
    ) -> None:
        """Replay a review cell (--item and --doc) on its frozen index, or every cell into a new review (--all)."""
        from pipeline.replay.review import replay_cell, replay_review

        if against not in ("frozen", "current"):
            fail(f"--against {against}: expected frozen or current", USAGE)
        if all_cells == bool(item or doc) or (not all_cells and not (item and doc)):
            fail("give --item ITEM and --doc DOC for one cell, or --all for every cell", USAGE)
        if all_cells and against != "frozen":
            fail("--all replays frozen; to review today's corpus run `docket review run CHECKLIST --new`, then "
                 "`docket review diff`", USAGE)
        docket = get_docket()
        if all_cells:
            result = _guarded(lambda: replay_review(docket, review_id))
            if as_json:
                print_json(result.to_dict())
            else:
                counts = ", ".join(f"{n} {outcome}" for outcome, n in sorted(result.outcomes().items()))
                _out.print(f"review {result.new.id} replays review {result.old.id}: {len(result.reports)} cells ({counts})")
                _out.print(f"compare them: docket review diff {result.old.id} {result.new.id}")
            identical = all(report.outcome == "identical" for _, report in result.reports)
            raise typer.Exit(OK if identical else FAILED)
        report = _guarded(lambda: replay_cell(docket, review_id, item, doc, against))  # type: ignore[arg-type]
        if as_json:
            print_json(report.to_dict())
        else:
            print_report(report, _out)
        raise typer.Exit(OK if report.outcome == "identical" else FAILED)

    return app


def _guarded(run: Callable[[], Any]) -> Any:
    """``run()``, with every expected failure (plumbing.USER_ERRORS: a replay or snapshot error, an
    audit or settings error, a name that matches nothing) as one line on stderr and its exit code."""
    return user_errors(run)()


def run_replay(get_docket: Callable[[], Docket], seq: int, against: str) -> ReplayReport:
    """The replay, with every expected failure as one line on stderr and exit 2."""
    from pipeline.replay.runner import replay_entry

    return _guarded(lambda: replay_entry(get_docket(), seq, against))  # type: ignore[arg-type]


_OUTCOME_STYLE = {"identical": "green", "evidence-changed": "yellow", "answer-changed": "yellow",
                  "incomplete": "red", "nothing-to-replay": "yellow"}


def print_report(report: ReplayReport, out: Console) -> None:
    data = report.to_dict()
    recorded = data["replays"]
    where = "its frozen index" if report.against == "frozen" else "today's corpus and settings"
    out.print(f"Replay of entry #{recorded['seq']} ({recorded['event_type']} by {escape(recorded['actor'])} at "
              f"{recorded['time'][:19]}) on {where}")
    if data["question"]:
        out.print(f"question: {escape(data['question'])}")
    if data["index"]:
        out.print(f"index: {escape(data['index'])}")
    if recorded["settings_source"]:
        out.print(f"settings: {escape(recorded['settings_source'])}")
    for item in data["missing"]:
        out.print(f"[red]missing[/] {item['what']}: {escape(item['detail'])}")
    if data["missing"]:
        out.print("[red]nothing was substituted: the replay did not run[/]")
    for note in data["notes"]:
        out.print(f"[dim]note: {escape(note)}[/]")
    if report.evidence is not None:
        _print_evidence(report, out)
    for text in data["texts"]:
        if text["same"]:
            out.print(f"{text['field']}: same")
        else:
            out.print(f"{text['field']}: [yellow]changed[/]")
            out.print("  " + _render(text["diff"]))
    if data["verdict"]:
        v = data["verdict"]
        same = "same" if v["recorded"] == v["replayed"] else "[yellow]changed[/]"
        out.print(f"verdict: {v['recorded']} -> {v['replayed']} ({same})")
    _print_changes(data["changes"], out)
    if data["seed"] is not None:
        out.print(f"seed: {data['seed']} (the recorded one)")
    style = _OUTCOME_STYLE.get(report.outcome, "white")
    logged = f" · replay entry #{report.audit_seq}" if report.audit_seq else ""
    out.print(f"outcome: [{style}]{report.outcome}[/]{logged}")


def _print_evidence(report: ReplayReport, out: Console) -> None:
    evidence = report.evidence
    if evidence.same:
        out.print(f"evidence: same at all {len(evidence.rows)} ranks (chunk ids, document and text hashes; scores "
                  f"within {evidence.to_dict()['tolerance']}, largest difference {evidence.max_score_delta:.3g})")
        return
    out.print("evidence: [yellow]changed[/]")
    for row in evidence.rows:
        a, b = row.recorded, row.replayed
        mark = "same" if row.same else "[yellow]differs[/]"
        left = f"chunk {a['chunk_id']} {escape(a['doc_name'])} p.{a['page']} {a['text_sha256'][:12]} {a['score']:.4f}" if a else "-"
        right = f"chunk {b['chunk_id']} {escape(b['doc_name'])} p.{b['page']} {b['text_sha256'][:12]} {b['score']:.4f}" if b else "-"
        out.print(f"  S{row.rank}: {left} -> {right} {mark}")


def _render(diff: list[list[str]]) -> str:
    parts = []
    for op, text in diff:
        if op == "=":
            parts.append(escape(text))
        elif op == "-":
            parts.append(f"[red][-{escape(text)}-][/]")
        else:
            parts.append(f"[green]{{+{escape(text)}+}}[/]")
    return "".join(parts)


def _print_changes(changes: dict[str, Any], out: Console) -> None:
    for version in changes.get("versions") or []:
        scope = "" if version["searched"] else " (outside the searched documents)"
        out.print(f"changed document: {escape(version['describe'])}{scope}")
    for setting in changes.get("settings") or []:
        out.print(f"changed setting: {setting['key']}: {escape(json.dumps(setting['recorded']))} -> "
                  f"{escape(json.dumps(setting['current']))}")
    for model in changes.get("models") or []:
        out.print(f"changed {model['what']}: {escape(str(model['recorded']))} -> {escape(str(model['replayed']))}")
