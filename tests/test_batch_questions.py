"""`docket ask --questions FILE`: many questions, per document or over a collection, answered into JSONL
or CSV with one audit entry each, on the local engine (the Ray engine: tests/test_ray_cluster.py).

Real parts only: the three sample contracts, the packaged encoder, FAISS, SQLite, the extractive answerer.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import DRIVEN, NETGEAR
from pipeline.cli import app

runner = CliRunner()

QUESTIONS = [
    {"id": "law-netgear", "question": "Which state's law governs the agreement?", "doc": NETGEAR},
    {"id": "notice-driven", "question": "How much notice ends the consulting agreement?", "doc": DRIVEN},
    {"id": "law-any", "question": "Which state's law governs the distributor agreement?", "collection": "samples"},
    {"id": "no-such-doc", "question": "Which law governs?", "doc": "nosuch.pdf"},
]


def invoke(*args: str, code: int = 0):
    result = runner.invoke(app, list(args))
    assert result.exit_code == code, result.output
    return result


def docket():
    from pipeline.app import Docket
    from pipeline.settings import load_settings

    return Docket(load_settings())


def answer_entries() -> list:
    return list(docket().audit.entries(event_type="answer"))


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_a_jsonl_batch_answers_each_question_once_and_logs_one_entry_each(samples_copy: Path, tmp_path: Path):
    questions = write_jsonl(tmp_path / "questions.jsonl", QUESTIONS)
    out = tmp_path / "answers.jsonl"
    before = len(answer_entries())
    # One answer is an error (a document that is not there): exit 1, as for one question.
    result = invoke("ask", "--questions", str(questions), "-o", str(out), "--json", code=1)
    summary = json.loads(result.stdout)
    assert summary["questions"] == 4 and summary["statuses"]["error"] == 1 and summary["engine"] == "local"

    rows = read_jsonl(out)
    assert [r["id"] for r in rows] == [q["id"] for q in QUESTIONS]  # the file's order
    assert not out.with_name(out.name + ".partial").exists()
    by_id = {r["id"]: r for r in rows}
    assert "California" in by_id["law-netgear"]["answer"] and by_id["law-netgear"]["status"] == "answered"
    assert {s["document"] for s in by_id["law-netgear"]["sources"]} == {NETGEAR}
    assert "30" in by_id["notice-driven"]["answer"] or "thirty" in by_id["notice-driven"]["answer"].lower()
    assert by_id["law-any"]["collection"] == "samples"
    assert by_id["no-such-doc"]["status"] == "error" and "nosuch.pdf" in by_id["no-such-doc"]["error"]

    # One answer entry per question, whatever its status, each the row's own.
    entries = answer_entries()[before:]
    assert len(entries) == 4
    assert sorted(e.seq for e in entries) == sorted(r["audit_seq"] for r in rows)
    for row in rows:
        entry = docket().audit.get(row["audit_seq"])
        assert entry.event_type == "answer" and entry.request_id == row["request_id"]
        assert entry.payload["question"] == row["question"] and entry.payload["status"] == row["status"]
        assert entry.payload["answer"] == row["answer"]
    assert docket().audit.verify().ok

    # The batch's answer is the one `docket ask` gives the same question alone.
    alone = json.loads(invoke("ask", QUESTIONS[0]["question"], "-c", "samples", "--doc", NETGEAR, "--json").stdout)
    assert alone["answer"] == by_id["law-netgear"]["answer"] and alone["citations"] == [
        s["label"] for s in by_id["law-netgear"]["sources"]
    ]


def test_csv_in_and_out_and_json_lines_on_stdout(samples_copy: Path, tmp_path: Path):
    questions = tmp_path / "questions.csv"
    with questions.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "question", "doc"])
        writer.writerow(["q1", "Which state's law governs the agreement?", f"{NETGEAR};{DRIVEN}"])
        writer.writerow(["q2", "How much notice ends the consulting agreement, in days?", DRIVEN])
    out = tmp_path / "answers.csv"
    invoke("ask", "--questions", str(questions), "-o", str(out), "-c", "samples")
    with out.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["id"] for r in rows] == ["q1", "q2"]
    assert rows[0]["documents"] == f"{NETGEAR};{DRIVEN}" and rows[0]["status"] == "answered"
    assert rows[0]["sources"].startswith("S") and (NETGEAR in rows[0]["sources"] or DRIVEN in rows[0]["sources"])
    assert all(r["audit_seq"].isdigit() for r in rows)

    # Without --output: the answers as JSON lines on stdout, the summary on stderr.
    result = invoke("ask", "--questions", str(questions), "-c", "samples")
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["id"] for r in lines] == ["q1", "q2"] and lines[0]["answer"] == rows[0]["answer"]
    assert "2 questions: 2 answered" in result.stderr


@pytest.mark.parametrize(
    "name, content, expected",
    [
        ("q.jsonl", '{"question": "Which law governs?"}\n{"question": "oops"\n', "line 2: not valid JSON"),
        ("q.jsonl", '{"question": "Which law governs?", "documents": "a.pdf"}\n', "line 1: unknown field 'documents'"),
        ("q.jsonl", '{"id": "a", "question": "  "}\n', "line 1: field 'question' is missing or empty"),
        ("q.jsonl", '{"id": "a", "question": "One?"}\n{"id": "a", "question": "Two?"}\n', "line 2: id 'a' again (first on line 1)"),
        ("q.jsonl", '["Which law governs?"]\n', "line 1: expected a JSON object"),
        ("q.jsonl", "\n\n", "no questions in it"),
        ("q.csv", "id,text\nq1,Which law governs?\n", "row 1: unknown column 'text'"),
        ("q.csv", "id,doc\nq1,a.pdf\n", "row 1: no 'question' column"),
        ("q.txt", "Which law governs?\n", "expected a .jsonl or .csv file"),
    ],
)
def test_a_bad_questions_file_is_refused_whole_before_anything_is_asked(
    samples_copy: Path, tmp_path: Path, name: str, content: str, expected: str
):
    questions = tmp_path / name
    questions.write_text(content, encoding="utf-8")
    out = tmp_path / "answers.jsonl"
    before = docket().audit.verify().size
    result = invoke("ask", "--questions", str(questions), "-o", str(out), code=2)
    message = result.stderr.strip()
    assert message.startswith(f"error: questions {questions}") and expected in message and "\n" not in message
    assert not out.exists() and not out.with_name(out.name + ".partial").exists()
    assert docket().audit.verify().size == before  # nothing asked, nothing logged


def test_usage_errors_name_what_to_do(samples_copy: Path, tmp_path: Path):
    questions = write_jsonl(tmp_path / "q.jsonl", QUESTIONS[:1])
    assert "not both" in invoke("ask", "Which law?", "--questions", str(questions), code=2).stderr
    assert "--output goes with --questions" in invoke("ask", "Which law?", "-o", str(tmp_path / "a.jsonl"), code=2).stderr
    missing = invoke("ask", "--questions", str(tmp_path / "none.jsonl"), code=2).stderr
    assert f"questions {tmp_path / 'none.jsonl'}: no such file" in missing
    assert "expected a .jsonl or .csv" in invoke("ask", "--questions", str(questions), "-o", str(tmp_path / "a.txt"), code=2).stderr


def test_a_stopped_batch_continues_where_it_stopped_and_logs_nothing_twice(
    samples_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    from pipeline.compute import questions_file
    from pipeline.cli.batch import run_batch
    from pipeline.compute.questions import BatchDefaults

    questions = write_jsonl(tmp_path / "questions.jsonl", QUESTIONS[:3])
    out = tmp_path / "answers.jsonl"
    before = len(answer_entries())
    real_add = questions_file.PartialAnswers.add

    def add_then_stop(self, row):
        real_add(self, row)
        raise KeyboardInterrupt  # the driver stopped right after its first answer was logged and kept

    monkeypatch.setattr(questions_file.PartialAnswers, "add", add_then_stop)
    with pytest.raises(KeyboardInterrupt):
        run_batch(docket(), questions, out, BatchDefaults(collection="samples"))
    assert not out.exists() and len(read_jsonl(out.with_name(out.name + ".partial"))) == 2  # header + 1 answer
    assert len(answer_entries()) == before + 1

    monkeypatch.setattr(questions_file.PartialAnswers, "add", real_add)
    result = invoke("ask", "--questions", str(questions), "-o", str(out), "-c", "samples", "--json")
    summary = json.loads(result.stdout)
    assert summary["resumed"] == 1 and summary["questions"] == 3
    rows = read_jsonl(out)
    assert [r["id"] for r in rows] == ["law-netgear", "notice-driven", "law-any"]
    assert len(answer_entries()) == before + 3  # the first question was not asked (nor logged) again
    assert len({r["audit_seq"] for r in rows}) == 3

    # A partial file of other questions is not taken for this batch's.
    partial = out.with_name(out.name + ".partial")
    partial.write_text('{"format": "docket-answers-partial/1", "questions_sha256": "0"}\n', encoding="utf-8")
    refused = invoke("ask", "--questions", str(questions), "-o", str(out), code=2).stderr
    assert f"output {partial}: the answers of another questions file" in refused
