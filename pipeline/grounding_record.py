"""The grounding report as an answer record carries it: ``AnswerRecord.grounding``, typed.

``pipeline.grounding.check_grounding`` returns a ``GroundingReport`` (the check's working form, with the
``CellMatch``es and ``KindCheck`` it found); ``GroundingReport.to_record()`` is this, which is what the
audit payload holds, what ``docket ask --json`` prints and what a review cell keeps. Read back from a
payload written by an older Docket it has the fields that Docket wrote (the first ones had no ``checks``,
``label`` or ``answer_kind``): they read as None, and are not written back (``PayloadModel``).
"""

from __future__ import annotations

from pipeline.payload_model import PayloadModel

NOT_CHECKED = "not-applicable"  # the verdict of a record whose answer was not checked (no answer to check)


class ClaimProblem(PayloadModel):
    """What failed in one sentence of the answer."""

    sentence_index: int  # 0-based, among the answer's sentences
    sentence: str
    kind: str  # grounding.ProblemKind: unknown_source, uncited_claim, quote_not_found, number_not_found, ...
    detail: str


class LowConfidencePage(PayloadModel):
    """A cited source whose page OCR read below the threshold."""

    label: str
    doc_name: str
    page: int
    confidence: str  # two decimals, as text (the log keeps no floats)


class TableCell(PayloadModel):
    """The table cell of a cited source that holds a number of the answer (ingest.tables.CellMatch)."""

    number: str  # as the answer writes it
    page: int
    table_title: str
    units: str
    row_label: str
    column: str  # the column's header ("2018", "December 31, 2023")
    period: str
    cell_text: str
    box: list[float]  # x0, y0, x1, y1 in PDF points (text in the log, which keeps no floats)


class GroundingChecks(PayloadModel):
    """Each check on its own, in the words docs/reasoning.md defines."""

    citations: str  # "valid" | "invalid"
    quotes: str  # "found" | "not found" | "none quoted"
    numbers: str  # "found" | "not found" | "none stated"
    addresses_question: str  # "yes" | "no" | "not checked"


class AnswerKindCheck(PayloadModel):
    """The kind of answer the question asks for and whether the answer has it (answer_kinds.KindCheck)."""

    kind: str
    rule: str | None = None
    found: str | None = None
    addresses: bool | None = None


class GroundingRecord(PayloadModel):
    verdict: str | None = None  # grounding.Verdict, or NOT_CHECKED
    sentences: int | None = None
    claims: int | None = None  # sentences that carry a claim
    grounded_claims: int | None = None
    citations: list[str] = []  # known labels the answer cites, in order
    problems: list[ClaimProblem] = []  # per claim, what failed
    low_confidence: list[LowConfidencePage] = []
    unknown_citations: list[str] = []  # labels cited that no source sent carries
    cells: list[TableCell] = []  # each number found in a table: its cell
    possible_injection: bool | None = None
    checks: GroundingChecks | None = None
    answer_kind: AnswerKindCheck | None = None
    supported: bool | None = None  # every check held
    label: str | None = None  # what held and what failed, in plain words

    @classmethod
    def not_checked(cls) -> GroundingRecord:
        return cls(verdict=NOT_CHECKED)

    @property
    def grounded(self) -> bool:
        return self.verdict == "grounded"

    @property
    def support(self) -> float:
        """Share of the answer's claims found supported (0 when it has none)."""
        return (self.grounded_claims or 0) / self.claims if self.claims else 0.0

    @property
    def words(self) -> str:
        """The label (what `docket ask` prints); an older record without one gives its verdict."""
        return self.label or self.verdict or "n/a"
