"""The contract between retrieval and the reasoners (extractive, Magistral).

A reasoner takes a question and numbered evidence ([S1]..[Sn]) and returns a ``ReasonerOutput``:
the answer text, the trace kept apart from it, and the ``CallRecord``: everything needed to replay or
audit the call, which the answer record keeps as it is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from ingest.passages import Passage

# "withheld" is set by pipeline/ask.py, never by a reasoner: an answer that failed grounding.
AnswerStatus = Literal["answered", "withheld", "refused", "incomplete", "error"]
# "thinking" = a model's own reasoning; "program-steps" = what Docket's extractive answerer did.
TraceFormat = Literal["thinking", "program-steps", "none"]


# A retrieved passage as shown to the reasoner, labelled S{rank}: the search's own type (ingest.passages).
Evidence = Passage


@dataclass
class ChatTurn:
    """An earlier question and answer in a chat; traces are never kept here (never sent back)."""

    question: str
    answer: str


@dataclass(frozen=True)
class CallRecord:
    """The answerer's call: what was sent, what came back, how. The answer record keeps it as it is.

    Empty where it does not apply (the extractive answerer sends nothing over a network)."""

    provider: str = "docket"
    base_url: str | None = None
    model_requested: str | None = None
    model_returned: str | None = None
    # What the model was asked with: temperature, top_p, seed, max_tokens, the request's fields as sent, ...
    parameters: dict[str, Any] = field(default_factory=dict)
    messages: list[dict[str, Any]] = field(default_factory=list)  # exactly what was sent
    raw_response: Any = None  # JSON-able; the raw body (or assembled stream chunks)
    finish_reason: str | None = None
    usage: dict[str, Any] = field(default_factory=dict)
    latency_ms: int | None = None
    # The labels of the sources the prompt carried and of those left out for its token budget; None: every
    # source was read (the extractive answerer). Grounding checks the answer against the sent ones only.
    sources_sent: list[str] | None = None
    sources_dropped: list[str] = field(default_factory=list)
    # HTTP requests made for this answer, retries included, and the waits between them (ms); None: no request.
    attempts: int | None = None
    retry_waits_ms: list[int] = field(default_factory=list)


@dataclass
class ReasonerOutput:
    status: AnswerStatus
    answer: str
    trace: str = ""
    trace_format: TraceFormat = "none"
    # Labels the answer cites, in order of first appearance ("S1", "S3").
    citations: list[str] = field(default_factory=list)
    call: CallRecord = field(default_factory=CallRecord)
    error: str | None = None  # one line, when status == "error"


class Reasoner(Protocol):
    name: str

    def answer(
        self,
        question: str,
        evidence: list[Evidence],
        history: list[ChatTurn] | None = None,
        on_delta: Any = None,  # callable(kind: "trace"|"answer", text: str) for live streaming
    ) -> ReasonerOutput: ...
