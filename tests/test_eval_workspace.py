"""`docket eval`'s scratch workspace is keyed by the exact documents its questions name, so a figure
depends only on its question file and the settings, not on which files were evaluated before."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from conftest import DRIVEN, DUOS, NETGEAR, SAMPLES
from pipeline.cli.eval import eval_command
from pipeline.evaluation import EvalQuestion, document_set_key


def _row(qid: str, pdf: str, question: str, page: int) -> dict:
    return {
        "id": qid, "dataset": "cuad", "question": question, "answer": "", "answerable": True,
        "doc_id": pdf, "pdf_path": pdf, "evidence": [{"doc_id": pdf, "pdf_path": pdf, "page": page}],
    }


def _write(path: Path, rows: list[dict]) -> Path:
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


def _figures(report: dict) -> dict:
    """The report without what is measured in time (latencies) rather than computed."""
    meta = {k: v for k, v in report["meta"].items() if k != "questions_file"}
    modes = []
    for mode in report["retrieval"]:
        mode = {k: v for k, v in mode.items() if not k.startswith("latency")}
        mode["per_question"] = [{k: v for k, v in q.items() if k != "latency_ms"} for q in mode["per_question"]]
        modes.append(mode)
    return {"meta": meta, "retrieval": modes}


def _run(questions: Path, root: Path) -> dict:
    app = typer.Typer()
    app.command()(eval_command)
    result = CliRunner().invoke(app, [str(questions), "--root", str(root), "--scope", "corpus", "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout[result.stdout.index("{"):])


def test_a_file_gives_the_same_figures_before_and_after_another_file(
    tmp_path: Path, home: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # the default workspace lives under it
    # Both files say dataset "cuad", as every CUAD question file does; they share one contract.
    first = _write(tmp_path / "first.jsonl", [
        _row("ship", NETGEAR, "Who pays for freight and insurance on shipments?", 2),
        _row("law", DRIVEN, "Which state's law governs this agreement?", 3),
        _row("term", DRIVEN, "How long is the term of the consulting agreement?", 0),
    ])
    second = _write(tmp_path / "second.jsonl", [
        _row("alliance", DUOS, "What is the purpose of the strategic alliance?", 0),
        _row("law2", DRIVEN, "Which state's law governs this agreement?", 3),
    ])
    before = _run(first, SAMPLES)
    other = _run(second, SAMPLES)
    after = _run(first, SAMPLES)

    assert before["meta"]["workspace"] == after["meta"]["workspace"] != other["meta"]["workspace"]
    assert before["meta"]["documents"] == 2 and other["meta"]["documents"] == 2
    # Identical figures, including the chunk count of the whole workspace: with one workspace per
    # dataset name the second file's contract would have joined the first file's corpus.
    assert _figures(before) == _figures(after)
    workspaces = sorted(p.name for p in (tmp_path / "cache" / "docket" / "eval").glob("*/*"))
    assert len(workspaces) == 2 and all(name.startswith("cuad-") for name in workspaces)


def test_document_set_key_is_the_files_bytes_not_their_paths(tmp_path: Path):
    copy = tmp_path / "elsewhere"
    copy.mkdir()
    for name in (NETGEAR, DRIVEN):
        shutil.copy(SAMPLES / name, copy / name)

    def questions(*pdfs: str, dataset: str = "cuad") -> list[EvalQuestion]:
        return [EvalQuestion.model_validate({**_row(f"q{i}", pdf, "q?", 0), "dataset": dataset}) for i, pdf in enumerate(pdfs)]

    key = document_set_key(questions(NETGEAR, DRIVEN), SAMPLES)
    assert document_set_key(questions(DRIVEN, NETGEAR, DRIVEN), copy) == key  # order, repeats, folder: same set
    assert document_set_key(questions(NETGEAR), SAMPLES) != key
    assert document_set_key(questions(NETGEAR, DRIVEN, DUOS), SAMPLES) != key
    assert document_set_key(questions(NETGEAR, DRIVEN, dataset="other"), SAMPLES) != key
    (copy / DRIVEN).write_bytes((copy / DRIVEN).read_bytes() + b"\n%changed\n")
    assert document_set_key(questions(NETGEAR, DRIVEN), copy) != key
