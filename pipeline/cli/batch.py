"""``docket ask --questions FILE [--output OUT]``: the command's work, called by pipeline/cli/root.py.

The questions file is checked whole first (a bad line: one line naming it, exit 2, nothing asked or
logged). Without ``--output`` the answers are printed as JSON lines, in the file's order, on stdout;
with it they go to OUT (.jsonl or .csv, written whole at the end) and stdout gets the summary (JSON
with ``--json``). Exit 1 when an answer errored, was cut short or was withheld, as for one question.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any, TextIO

from pipeline.app import Docket
from pipeline.compute.questions import BatchDefaults, answer_questions
from pipeline.compute.questions_file import (
    PartialAnswers, QuestionsFileError, answer_row, file_format, jsonl_lines, questions_digest, read_questions,
    write_answers,
)

FAILED_STATUSES = ("error", "incomplete", "withheld")


def run_batch(
    docket: Docket, questions_path: Path, output: Path | None, defaults: BatchDefaults, as_json: bool = False,
    out: TextIO | None = None, err: TextIO | None = None,
) -> int:
    """The exit code: 0 every answer shown, 1 one or more not, 2 a bad questions file or output."""
    out, err = out or sys.stdout, err or sys.stderr
    try:
        questions = read_questions(questions_path)
        partial = None
        if output is not None:
            file_format(output, "output")
            if not output.parent.is_dir():
                raise QuestionsFileError(f"output {output}: no folder {output.parent}; create it first")
            partial = PartialAnswers.open(output, questions_digest(questions_path))
    except QuestionsFileError as exc:
        err.write(f"error: {exc}\n")
        return 2
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
        out.write(jsonl_lines(rows))
    summary = batch_summary(rows, resumed=len(questions) - len(todo), output=output, engine=docket.settings.compute.engine)
    if output is not None and as_json:
        out.write(json.dumps(summary, indent=2) + "\n")
    else:
        (out if output is not None else err).write(summary_line(summary) + "\n")
    return 1 if any(summary["statuses"].get(s) for s in FAILED_STATUSES) else 0


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
    """`docket ask` given --questions or --output: the usage checked, then ``run_batch``."""
    from datetime import date

    def usage(message: str) -> int:
        sys.stderr.write(f"error: {message}\n")
        return 2

    if questions is None:
        return usage("--output goes with --questions FILE")
    if question is not None:
        return usage("give one question or --questions FILE, not both")
    days = {}
    for flag, value in (("--since", since), ("--until", until)):
        try:
            days[flag] = date.fromisoformat(value) if value is not None else None
        except ValueError:
            return usage(f"{flag} {value}: expected a date as YYYY-MM-DD, e.g. 2022-12-31")
    defaults = BatchDefaults(
        collection=collection, documents=list(documents or []), doc_types=list(doc_types or []),
        since=days["--since"], until=days["--until"], top_k=top_k, allow_ungrounded=True if allow_ungrounded else None,
    )
    return run_batch(docket_factory(), questions, output, defaults, as_json=as_json)
