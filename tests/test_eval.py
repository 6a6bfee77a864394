"""`docket eval` on a tiny question file built from the sample contracts, and its metric functions."""

from __future__ import annotations

import json
from pathlib import Path

import pymupdf
import pytest
import typer
from typer.testing import CliRunner

from conftest import DRIVEN, NETGEAR, SAMPLES
from pipeline.evaluation import ABLATIONS, EvalError, EvalQuestion, load_questions, score_question, span_coverage
from ingest.store import ChunkHit


def _page_with(pdf: Path, phrase: str) -> int:
    """0-based page of the PDF whose text contains ``phrase`` (read independently with PyMuPDF)."""
    with pymupdf.open(pdf) as doc:
        pages = [i for i, page in enumerate(doc) if phrase in " ".join(page.get_text().split())]
    assert pages, phrase
    return pages[0]


def _question(folder: Path, qid: str, pdf: str, question: str, clause: str | None) -> dict:
    """A question in the ../shared/eval schema; a clause gets a CUAD-style span into a plain-text file."""
    evidence = []
    txt = folder / f"{qid}.txt"
    if clause:
        page = _page_with(SAMPLES / pdf, clause)
        txt.write_text(f"Preamble.\n{clause}\nMore text.\n", encoding="utf-8")
        span = [len("Preamble.\n"), len("Preamble.\n") + len(clause)]
        evidence = [{"doc_id": pdf, "pdf_path": str(SAMPLES / pdf), "page": page, "page_1based": page + 1,
                     "text": clause, "txt_char_span": span}]
    return {
        "id": qid, "dataset": "samples", "question": question, "answer": clause or "", "answerable": bool(clause),
        "doc_id": pdf, "pdf_path": str(SAMPLES / pdf), "txt_path": str(txt), "evidence": evidence,
    }


@pytest.fixture
def tiny_questions(tmp_path: Path) -> Path:
    rows = [
        _question(tmp_path, "ship", NETGEAR, "Who pays for freight and insurance on shipments?",
                  "Distributor is responsible for all freight, handling, insurance and other transportation charges"),
        _question(tmp_path, "cancel", NETGEAR, "Can the distributor cancel or reschedule an order?",
                  "Distributor may not cancel or reschedule any order"),
        _question(tmp_path, "law", DRIVEN, "Which state's law governs this agreement?",
                  "This Agreement shall be governed by the laws of the State of California"),
        _question(tmp_path, "escrow", DRIVEN, "Is source code deposited in escrow with a third party?", None),
    ]
    path = tmp_path / "questions.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


def _app() -> typer.Typer:
    from pipeline.cli.eval import eval_command

    app = typer.Typer()
    app.command()(eval_command)
    return app


def test_eval_reports_all_modes_and_answer_metrics(tiny_questions: Path, samples_copy: Path, tmp_path: Path):
    # The workspace already holds the sample contracts (collection "samples" = the questions' dataset),
    # so nothing is encoded again; the run still reads, searches, scores and answers for real.
    out = tmp_path / "report.md"
    result = CliRunner().invoke(
        _app(),
        [str(tiny_questions), "--root", str(tmp_path), "--workspace", str(samples_copy), "--answers", "--json", "-o", str(out)],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout[result.stdout.index("{"):])
    modes = {m["mode"]: m for m in report["retrieval"]}
    assert set(modes) == {"dense", "bm25", "hybrid"}
    for mode in modes.values():
        assert mode["questions"] == 3  # the unanswerable one has no gold page
        recall = [mode["recall"][str(k)] for k in (1, 3, 5, 10)]
        assert recall == sorted(recall) and all(0 <= r <= 1 for r in recall)
        assert 0 <= mode["mrr"] <= recall[-1] and mode["latency_p50_ms"] > 0
    assert modes["hybrid"]["recall"]["5"] == 1.0  # three plain questions whose words are on the page
    assert modes["hybrid"]["span_questions"] == 3 and modes["hybrid"]["span_recall"]["10"] > 0.9
    answers = report["answers"]
    assert answers["questions"] == 4 and answers["unanswerable"] == 1
    assert answers["answered"] + answers["withheld"] + answers["refused"] + answers["errors"] == 4
    # The three clause questions (no CUAD category, no numeric gold) are asked but not quote-scored.
    assert answers["quote_questions"] == 0 and answers["number_questions"] == 0
    assert "| hybrid |" in out.read_text()


def test_ablations_switch_each_document_signal_off_in_the_same_run(samples_copy: Path, tmp_path: Path):
    row = _question(tmp_path, "date", NETGEAR, "In the DISTRIBUTOR AGREEMENT (NETGEAR): What is the date of this contract?",
                    "Effective Date: March 1, 1996")
    questions = tmp_path / "date.jsonl"
    questions.write_text(json.dumps(row) + "\n")
    result = CliRunner().invoke(
        _app(), [str(questions), "--root", str(tmp_path), "--workspace", str(samples_copy), "--ablations", "--json"]
    )
    assert result.exit_code == 0, result.output
    modes = {m["mode"]: m for m in json.loads(result.stdout[result.stdout.index("{"):])["retrieval"]}
    assert set(modes) == {"dense", "bm25", "hybrid", *ABLATIONS}
    # The preamble's date is found through the opening signal, and lost without it.
    assert modes["hybrid"]["recall"]["5"] == 1.0
    assert modes["hybrid − openings"]["recall"]["5"] == 0.0 and modes["hybrid − all four"]["recall"]["5"] == 0.0
    assert modes["hybrid − statement pages"]["recall"]["5"] == 1.0  # a contract has no statement to lift


def test_bad_question_files_are_one_clear_line(tmp_path: Path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "x", "question": "q?"}\n')
    with pytest.raises(EvalError, match=r"bad.jsonl line 1: field 'doc_id'"):
        load_questions(bad)
    result = CliRunner().invoke(_app(), [str(tmp_path / "missing.jsonl")])
    assert result.exit_code == 2 and "no such file" in result.output and "Traceback" not in result.output


def test_span_coverage_matches_words_across_line_wraps_and_case():
    gold = "This Agreement shall be governed by the laws of the State of Florida."
    assert span_coverage(gold, ["...\nthis agreement shall be GOVERNED by the laws\nof the State of Florida. Other"]) == 1.0
    assert span_coverage(gold, ["the laws of the State of Texas"]) == pytest.approx(6 / 13)
    assert span_coverage(gold, ["of the"]) == 0.0  # chance runs of two words do not count


def test_page_metrics_count_the_first_gold_page_and_its_rank():
    q = EvalQuestion(
        id="q", question="?", doc_id="d", pdf_path="d.pdf",
        evidence=[{"doc_id": "d", "pdf_path": "d.pdf", "page": 4}, {"doc_id": "d", "pdf_path": "d.pdf", "page": 6}],
    )

    def hit(page: int, doc: int = 1) -> ChunkHit:
        return ChunkHit("S1", 1, page, "sha", "d.pdf", page, 0, 1, "text", 1.0, "pymupdf", None, "", doc)

    result = score_question(q, [hit(2), hit(5), hit(5), hit(7, doc=2), hit(7)], {1: "d.pdf", 2: "other.pdf"}, Path("."), 1.0)
    assert result.first_gold_rank == 2  # page 5 (1-based) = gold page 4 (0-based); rank 3 repeats it
    expected = (1 / 1.584962500721156 + 1 / 2.584962500721156) / (1 + 1 / 1.584962500721156)
    assert result.ndcg == pytest.approx(expected)  # ranks 2 and 5; the other document's page 7 is no gold
