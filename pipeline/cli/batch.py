"""``docket ask --questions FILE [--output OUT]``: the command's work, called by pipeline/cli/root.py.

The questions file is checked whole first (a bad line: one line naming it, exit 2, nothing asked or
logged). Without ``--output`` the answers are printed as JSON lines, in the file's order, on stdout;
with it they go to OUT (.jsonl or .csv, written whole at the end) and stdout gets the summary (JSON
with ``--json``). Exit 1 when an answer errored, was cut short or was withheld, as for one question.
Errors and exit codes are ``pipeline.cli.plumbing``'s.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path
from typing import Any

from pipeline.app import Docket
from pipeline.cli.plumbing import FAILED, OK, USAGE, fail, parse_day, print_json, say_error
from pipeline.compute.questions import BatchDefaults, answer_questions
from pipeline.compute.questions_file import (
    PartialAnswers, QuestionsFileError, answer_row, file_format, jsonl_lines, questions_digest, read_questions,
    write_answers,
)

FAILED_STATUSES = ("error", "incomplete", "withheld")


def run_batch(
    docket: Docket, questions_path: Path, output: Path | None, defaults: BatchDefaults, as_json: bool = False,
) -> int:
    """The exit code: 0 every answer shown, 1 one or more not, 2 a bad questions file or output."""
    try:
        questions = read_questions(questions_path)
        partial = None
        if output is not None:
            file_format(output, "output")
            if not output.parent.is_dir():
                raise QuestionsFileError(f"output {output}: no folder {output.parent}; create it first")
            partial = PartialAnswers.open(output, questions_digest(questions_path))
    except QuestionsFileError as exc:
        say_error(str(exc))
        return USAGE
    done = dict(partial.rows) if partial is not None else {}
    todo = [q for q in questions if q.id not in done]

    def on_answer(question, record) -> None:
        row = answer_row(question, record)
        done[question.id] = row
        if partial is not None:
            partial.add(row)

    answer_questions(docket, todo, defaults, on_answer)
    rows = [done[q.id] for q in questions]
    if output is not None:
        write_answers(output, rows)
        partial.remove()
    else:
        sys.stdout.write(jsonl_lines(rows))
    summary = batch_summary(rows, resumed=len(questions) - len(todo), output=output, engine=docket.settings.compute.engine)
    if output is not None and as_json:
        print_json(summary)
    else:  # beside JSON lines on stdout, the summary goes to stderr
        (sys.stdout if output is not None else sys.stderr).write(summary_line(summary) + "\n")
    return FAILED if any(summary["statuses"].get(s) for s in FAILED_STATUSES) else OK


def batch_summary(rows: list[dict[str, Any]], resumed: int, output: Path | None, engine: str) -> dict[str, Any]:
    seqs = [r["audit_seq"] for r in rows if r.get("audit_seq") is not None]
    return {
        "questions": len(rows),
        "statuses": dict(sorted(Counter(r["status"] for r in rows).items())),
        "resumed": resumed,  # answered by an earlier run of the same command (kept in OUTPUT.partial)
        "audit_seqs": [min(seqs), max(seqs)] if seqs else None,
        "output": str(output) if output is not None else None,
        "engine": engine,
    }


def summary_line(summary: dict[str, Any]) -> str:
    counts = ", ".join(f"{n} {status}" for status, n in summary["statuses"].items())
    where = f" -> {summary['output']}" if summary["output"] else ""
    seqs = summary["audit_seqs"]
    entries = f"; audit entries #{seqs[0]}-#{seqs[1]}" if seqs else ""
    resumed = f" ({summary['resumed']} from the earlier run)" if summary["resumed"] else ""
    return f"{summary['questions']} questions{resumed}: {counts}{entries}{where} [{summary['engine']}]"


def ask_batch_command(
    docket_factory, question: str | None, questions: Path | None, output: Path | None, *,
    collection: str | None, documents: list[str] | None, top_k: int | None, allow_ungrounded: bool,
    doc_types: list[str] | None, since: str | None, until: str | None, as_json: bool,
) -> int:
    """`docket ask` given --questions or --output: the usage checked (a usage error exits 2 here), then
    ``run_batch``."""
    if questions is None:
        fail("--output goes with --questions FILE", USAGE)
    if question is not None:
        fail("give one question or --questions FILE, not both", USAGE)
    defaults = BatchDefaults(
        collection=collection, documents=list(documents or []), doc_types=list(doc_types or []),
        since=parse_day(since, "--since"), until=parse_day(until, "--until"), top_k=top_k,
        allow_ungrounded=True if allow_ungrounded else None,
    )
    return run_batch(docket_factory(), questions, output, defaults, as_json=as_json)
