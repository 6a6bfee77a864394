"""A review finding: one cell's verdict with its evidence, as the ``review_finding`` audit entry holds it.

The runner builds it (``runner.evaluate_cell``, ``runner.cell_failure``), the log and the ``review_cells``
row keep its payload (``to_payload``), and reports, the API, the web app and replay read it back
(``from_payload``). Findings already in a log were written by older Docket versions with the keys they
had then; read and written back they keep exactly those keys (``PayloadModel``), so the payload's
shape is what it always was and the format needs no version of its own.

A cell that was not evaluated (a failed cell, redone on the next run) has no answer: ``answer``,
``trace``, ``answer_record``, ``status``, ``index_generation`` and ``attempts`` are then absent, not
null. ``supersedes`` and ``recorded_at`` are set when it is recorded; a replayed review's findings add
``replays_seq``, ``replay_seq`` and ``replay_outcome`` (pipeline/replay/review.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from pipeline.grounding_record import GroundingRecord
from pipeline.payload_model import PayloadModel
from pipeline.review.errors import ReviewError

if TYPE_CHECKING:
    from pipeline.records import AnswerRecord


class FindingDocument(PayloadModel):
    id: int | None = None  # the registry's document id
    name: str
    sha256: str | None = None  # the version reviewed
    version: int | None = None


class CellCitation(PayloadModel):
    """A source the cell's answer cites: its page and the words quoted from it (or the start of its text)."""

    label: str
    page: int
    quote: str
    quoted: bool  # the answer quotes it (else ``quote`` is the start of the passage)
    doc_sha256: str | None = None
    chunk_id: int | None = None
    text_sha256: str | None = None
    method: str | None = None  # how the page was read (pymupdf, tesseract, ...)


class ReviewFinding(PayloadModel):
    review_id: str
    item_id: str
    item_title: str | None = None
    severity: str | None = None
    requirement: str | None = None
    question: str | None = None
    document: FindingDocument
    reasoner: str | None = None
    model: str | None = None
    verdict: str  # verdicts.Verdict
    basis: str = ""  # why this verdict, in one sentence
    confidence: str = "0.00"  # 0..1, two decimals as text (the log keeps no floats)
    rationale: str = ""
    citations: list[CellCitation] = []
    grounding: GroundingRecord = GroundingRecord()
    failed: bool = False  # not evaluated: redone on the next run
    error: str | None = None
    # An evaluated cell's answer (absent for a failed cell that was never asked).
    answer: str | None = None
    trace: str | None = None
    trace_format: str | None = None
    answer_record: dict[str, Any] | None = None  # the whole answer record's payload, as ask wrote it
    status: str | None = None  # the answer's status
    index_generation: int | None = None
    attempts: int | None = None
    # Set when recorded.
    supersedes: int | None = None  # the seq of the finding this one redoes
    recorded_at: str | None = None
    # A replayed review's findings (pipeline/replay/review.py).
    replays_seq: int | None = None
    replay_seq: int | None = None
    replay_outcome: str | None = None

    @property
    def key(self) -> tuple[str, str | None]:
        """The cell: (item id, document version's SHA-256)."""
        return self.item_id, self.document.sha256

    @property
    def confidence_value(self) -> float:
        return float(self.confidence or 0)

    def answer_record_model(self) -> AnswerRecord | None:
        """The cell's answer record, read as any logged answer is (older payload formats included)."""
        from pipeline.records import AnswerRecord

        return AnswerRecord.model_validate(self.answer_record) if self.answer_record is not None else None

    def get(self, key: str, default: Any = None) -> Any:
        """A payload key's value as the payload holds it, for readers that take a finding by its keys
        (tests/test_ray_cluster.py compares local and Ray cells so); code reads the fields."""
        return self.to_payload().get(key, default)


def read_finding(payload: dict[str, Any], where: str, seq: int) -> ReviewFinding:
    """``payload`` (of audit entry ``seq``) as a finding, or a ReviewError naming ``where`` (the entry, a review's
    cell) and the field that does not read."""
    try:
        return ReviewFinding.from_payload(payload)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(part) for part in error["loc"]) or "payload"
        raise ReviewError(
            f"{where}: the review finding does not read ({field}: {error['msg']}); `docket audit show {seq}` shows "
            "it as logged (a newer Docket may have written it: read it with that one)"
        ) from None
