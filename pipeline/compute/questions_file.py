"""The files of ``docket ask --questions``: questions in (JSONL or CSV), answers out (JSONL or CSV).

A questions file is read and checked whole before anything is asked, so a bad line costs nothing: its
error names the file, the line and the field, and says what to do. Answers are written to a temporary
file renamed over the output at the end (never a half-written output); while the batch runs, each
answer is also appended to ``OUTPUT.partial``, so a batch that was stopped continues from there when
the same command runs again (questions answered are not asked, nor logged, twice).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

QUESTION_FIELDS = ("id", "question", "collection", "doc")
ANSWER_COLUMNS = (
    "id", "question", "collection", "documents", "status", "answer", "grounding", "sources", "error", "audit_seq",
    "request_id",
)
FORMATS = {".jsonl": "jsonl", ".csv": "csv"}
PARTIAL_FORMAT = "docket-answers-partial/1"


class QuestionsFileError(ValueError):
    """A questions or answers file that cannot be used; ``str()`` is one line naming it."""


@dataclass
class Question:
    position: int  # 1-based: the line of a JSONL file, the row of a CSV file (its header is row 1)
    id: str
    question: str
    collection: str | None = None
    documents: list[str] = field(default_factory=list)


def file_format(path: Path, what: str) -> str:
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise QuestionsFileError(f"{what} {path}: expected a .jsonl or .csv file (the suffix says which)")
    return fmt


def read_questions(path: Path) -> list[Question]:
    """Every question of ``path``, checked; QuestionsFileError on the first problem."""
    fmt = file_format(path, "questions")
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise QuestionsFileError(f"questions {path}: no such file") from None
    except OSError as exc:
        raise QuestionsFileError(f"questions {path}: cannot read it ({exc.strerror or exc})") from None
    try:
        text = raw.decode("utf-8-sig")  # a spreadsheet's CSV may start with a byte-order mark
    except UnicodeDecodeError as exc:
        raise QuestionsFileError(f"questions {path}: not UTF-8 text (byte {exc.start}); save it as UTF-8") from None
    rows = _jsonl_rows(path, text) if fmt == "jsonl" else _csv_rows(path, text)
    questions: list[Question] = []
    seen: dict[str, int] = {}
    for position, row in rows:
        question = _question(path, position, row, "line" if fmt == "jsonl" else "row")
        if question.id in seen:
            where = "line" if fmt == "jsonl" else "row"
            raise QuestionsFileError(
                f"questions {path} {where} {position}: id {question.id!r} again (first on {where} {seen[question.id]}); "
                "give each question its own id"
            )
        seen[question.id] = position
        questions.append(question)
    if not questions:
        raise QuestionsFileError(f"questions {path}: no questions in it; one a line, e.g. {{\"question\": \"Which law governs?\"}}")
    return questions


def questions_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _jsonl_rows(path: Path, text: str) -> list[tuple[int, dict[str, Any]]]:
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise QuestionsFileError(
                f"questions {path} line {number}: not valid JSON ({exc.msg} at column {exc.colno}); "
                "each line is one object, e.g. {\"id\": \"q1\", \"question\": \"Which law governs?\", \"doc\": \"supply.pdf\"}"
            ) from None
        if not isinstance(row, dict):
            raise QuestionsFileError(f"questions {path} line {number}: expected a JSON object, found {type(row).__name__}")
        rows.append((number, row))
    return rows


def _csv_rows(path: Path, text: str) -> list[tuple[int, dict[str, Any]]]:
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        return []
    except csv.Error as exc:
        raise QuestionsFileError(f"questions {path} row 1: not valid CSV ({exc})") from None
    names = [h.strip().lower() for h in header]
    unknown = [n for n in names if n not in QUESTION_FIELDS]
    if unknown:
        raise QuestionsFileError(
            f"questions {path} row 1: unknown column {unknown[0]!r} (the columns: {', '.join(QUESTION_FIELDS)})"
        )
    if "question" not in names:
        raise QuestionsFileError(
            f"questions {path} row 1: no 'question' column; the header names the columns: {', '.join(QUESTION_FIELDS)}"
        )
    rows = []
    try:
        for cells in reader:
            number = reader.line_num
            if not any(c.strip() for c in cells):
                continue
            if len(cells) > len(names):
                raise QuestionsFileError(
                    f"questions {path} row {number}: {len(cells)} cells under a header of {len(names)} columns; "
                    "quote a cell that holds a comma"
                )
            rows.append((number, {n: c for n, c in zip(names, cells) if c.strip()}))
    except csv.Error as exc:
        raise QuestionsFileError(f"questions {path} row {reader.line_num}: not valid CSV ({exc})") from None
    return rows


def _question(path: Path, position: int, row: dict[str, Any], where: str) -> Question:
    at = f"questions {path} {where} {position}"
    unknown = sorted(set(row) - set(QUESTION_FIELDS))
    if unknown:
        raise QuestionsFileError(f"{at}: unknown field {unknown[0]!r} (the fields: {', '.join(QUESTION_FIELDS)})")
    text = row.get("question")
    if not isinstance(text, str) or not text.strip():
        raise QuestionsFileError(f"{at}: field 'question' is missing or empty; give the question as text")
    ident = row.get("id", position)
    if isinstance(ident, bool) or not isinstance(ident, (str, int)) or not str(ident).strip():
        raise QuestionsFileError(f"{at}: field 'id' must be a non-empty text or number")
    collection = row.get("collection")
    if collection is not None and (not isinstance(collection, str) or not collection.strip()):
        raise QuestionsFileError(f"{at}: field 'collection' must be a collection's name")
    docs = row.get("doc", [])
    if isinstance(docs, str):
        docs = [d.strip() for d in docs.split(";")] if where == "row" else [docs]
    if not isinstance(docs, list) or not all(isinstance(d, str) and d.strip() for d in docs):
        raise QuestionsFileError(
            f"{at}: field 'doc' must be a document (id, file name or SHA-256 prefix) or a list of them"
            + ("; separate several with ';'" if where == "row" else "")
        )
    return Question(position, str(ident).strip(), text.strip(), collection.strip() if collection else None,
                    [d.strip() for d in docs])


# -- answers ------------------------------------------------------------------------------------------------
def answer_row(question: Question, record) -> dict[str, Any]:
    """One answer as written out: the question, what was answered and from where, and its audit entry."""
    by_label = {e.label: e for e in record.evidence}
    sources = [
        {"label": label, "document": by_label[label].doc_name, "page": by_label[label].page,
         "char_start": by_label[label].char_start, "char_end": by_label[label].char_end}
        for label in record.citations if label in by_label
    ]
    return {
        "id": question.id,
        "question": question.question,
        "collection": record.collection,
        "documents": list(question.documents),
        "status": record.status,
        "answer": record.answer,
        "grounding": record.grounding.label or "not checked (no answer)",
        "sources": sources,
        "error": record.error,
        "audit_seq": record.audit_seq,
        "request_id": record.request_id,
    }


def _csv_cell(name: str, value: Any) -> str:
    if value is None:
        return ""
    if name == "documents":
        return ";".join(value)
    if name == "sources":
        return "; ".join(f"{s['label']}: {s['document']} p.{s['page']} [{s['char_start']}:{s['char_end']}]" for s in value)
    return str(value)


def write_answers(path: Path, rows: list[dict[str, Any]]) -> None:
    """All answers at once, in the questions' order, through a temporary file renamed over ``path``."""
    fmt = file_format(path, "output")
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with partial.open("w", encoding="utf-8", newline="") as out:
        if fmt == "jsonl":
            for row in rows:
                out.write(json.dumps(row, ensure_ascii=False) + "\n")
        else:
            writer = csv.writer(out)
            writer.writerow(ANSWER_COLUMNS)
            for row in rows:
                writer.writerow([_csv_cell(name, row.get(name)) for name in ANSWER_COLUMNS])
        out.flush()
        os.fsync(out.fileno())
    os.replace(partial, path)


def jsonl_lines(rows: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)


@dataclass
class PartialAnswers:
    """``OUTPUT.partial``: the answers of a batch so far, one JSON line each, after a header line naming
    the questions file's SHA-256 (a partial file of other questions is never taken for this one's)."""

    path: Path
    questions_sha256: str
    rows: dict[str, dict[str, Any]] = field(default_factory=dict)  # question id -> row

    @classmethod
    def open(cls, output: Path, questions_sha256: str) -> PartialAnswers:
        partial = cls(output.with_name(output.name + ".partial"), questions_sha256)
        if partial.path.is_file():
            partial._read()
        else:
            header = {"format": PARTIAL_FORMAT, "questions_sha256": questions_sha256}
            partial.path.write_text(json.dumps(header) + "\n", encoding="utf-8")
        return partial

    def _read(self) -> None:
        lines = self.path.read_text(encoding="utf-8").splitlines()
        try:
            header = json.loads(lines[0]) if lines else {}
        except json.JSONDecodeError:
            header = {}
        if header.get("format") != PARTIAL_FORMAT or header.get("questions_sha256") != self.questions_sha256:
            raise QuestionsFileError(
                f"output {self.path}: the answers of another questions file (or not Docket's); delete it to "
                "start over, or give another --output"
            )
        for line in lines[1:]:
            try:
                row = json.loads(line)
            except json.JSONDecodeError:  # the line being written when the batch stopped: asked again
                continue
            self.rows[row["id"]] = row

    def add(self, row: dict[str, Any]) -> None:
        with self.path.open("a", encoding="utf-8") as out:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
            out.flush()
            os.fsync(out.fileno())  # answered and logged: must survive the driver's death
        self.rows[row["id"]] = row

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)
