"""`docket eval`: the command over ``pipeline.evaluation`` (the questions, scoring and reports live there).

It parses the options, runs the evaluator and prints the report; errors are one line with the usage exit
code from the shared plumbing."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer

from ingest.retrieval import RetrievalOptions
from pipeline.evaluation import (
    EvalError,
    default_workspace,
    evaluate_retrieval,
    ingest_documents,
    load_questions,
    questions_of_part,
    render_markdown,
    report_dict,
)
from pipeline.settings import ConfigError, load_settings


def eval_command(
    questions_file: Annotated[Path, typer.Argument(help="Questions JSONL in the ../shared/eval schema.")],
    root: Annotated[Path | None, typer.Option("--root", help="Folder the pdf_path values are relative to (default: the file's parent's parent).")] = None,
    scope: Annotated[str, typer.Option("--scope", help="doc: search each question's own document; corpus: all documents of its dataset.")] = "doc",
    config: Annotated[str | None, typer.Option("--config", help="YAML config file or preset (retrieval, embedding, chunking, reasoner).")] = None,
    workspace: Annotated[Path | None, typer.Option("--workspace", help="Scratch workspace (default: the platform cache dir, keyed by the settings that decide chunks and the questions' documents).")] = None,
    answers: Annotated[bool, typer.Option("--answers", help="Also answer with the configured reasoner: CUAD first-quote overlap per category, refusal precision/recall, FinanceBench gold number, citation validity.")] = False,
    review: Annotated[str | None, typer.Option("--review", help="Also run this checklist (name or YAML) on the questions' documents: offline verdict coverage and agreement with CUAD's annotation.")] = None,
    part: Annotated[str | None, typer.Option("--part", help="K/N: only the questions of every N-th document (sorted by path), starting at the K-th; for tuning on one part and checking on another.")] = None,
    retrieval: Annotated[bool, typer.Option("--retrieval/--no-retrieval", help="Measure retrieval (on by default; off to time answers alone).")] = True,
    ablations: Annotated[bool, typer.Option("--ablations", help="Also run hybrid without each document signal and without page pooling.")] = False,
    no_ingest: Annotated[bool, typer.Option("--no-ingest", help="Ingest nothing; score only questions whose documents are already in the workspace.")] = False,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Also write the report here (.md or .json).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the JSON report instead of Markdown.")] = False,
) -> None:
    """Measure retrieval on questions with gold pages: R@k, MRR, nDCG, span recall, latency; dense, BM25 and hybrid."""
    from rich.console import Console

    err = Console(stderr=True)
    try:
        if scope not in ("doc", "corpus"):
            raise EvalError(f"--scope {scope}: expected doc or corpus")
        questions = load_questions(questions_file)
        root = root or questions_file.resolve().parent.parent
        settings = load_settings(config)
        home = workspace or default_workspace(settings, questions, root)
        settings = settings.model_copy(update={"home": home})
        from pipeline.app import Docket

        docket = Docket(settings)
        err.print(f"eval workspace: {home}", highlight=False)
        doc_ids = ingest_documents(
            docket.store, questions, root,
            on_file=lambda r: err.print(f"  {r.outcome:9} {Path(r.path).name} ({r.chunks} chunks)", highlight=False),
            ingest_missing=not no_ingest,
        )
        asked = len(questions)
        questions = [q for q in questions if q.pdf_path in doc_ids and all(ev.pdf_path in doc_ids for ev in q.evidence)]
        questions = questions_of_part(questions, part) if part else questions
        if not questions:
            raise EvalError(f"{questions_file}: none of the questions' documents is in the workspace {home}; drop --no-ingest")
        checklist = None
        if review:
            from pipeline.review.checklist import ChecklistError, load_checklist

            try:
                checklist = load_checklist(review)
            except ChecklistError as exc:
                raise EvalError(str(exc)) from None
        options = RetrievalOptions.from_settings(settings.retrieval)
        modes = evaluate_retrieval(docket.store, questions, doc_ids, root, scope, options, ablations=ablations) if retrieval else []
        answer_report = review_report = None
        if answers or checklist:
            from pipeline import answer_eval

            if answers:
                answer_report = answer_eval.evaluate_answers(docket, questions, doc_ids, root, scope)
            if checklist:
                used = {q.pdf_path for q in questions}
                review_report = answer_eval.evaluate_review(
                    docket, checklist, questions, {p: i for p, i in doc_ids.items() if p in used}, root)
    except (EvalError, ConfigError) as exc:
        from pipeline.cli.plumbing import USAGE, fail

        fail(str(exc), USAGE)
    meta = {
        "questions_file": str(questions_file),
        "questions_in_file": asked,
        "questions_run": len(questions),
        "scope": scope,
        "part": part,
        "scored_questions": modes[0].questions if modes else None,
        "documents": len(doc_ids),
        "chunks": docket.store.count_live_chunks(),
        "embedding_model": docket.store.encoder.model_id,
        "retrieval": asdict(options),
        "config_hash": settings.config_hash(),
        "workspace": str(home),
    }
    markdown = render_markdown(meta, modes, answer_report, review_report)
    data = report_dict(meta, modes, answer_report, review_report)
    if output:
        output.write_text(json.dumps(data, indent=2) if output.suffix == ".json" else markdown, encoding="utf-8")
    typer.echo(json.dumps(data, indent=2) if as_json else markdown)


def main() -> None:
    """`python -m pipeline.evaluation ...` and `python -m pipeline.cli.eval ...`: the command alone."""
    typer.run(eval_command)


if __name__ == "__main__":
    main()
