"""The answer record: one complete, serialisable account of how an answer was reached.

It is what `docket ask --json` prints and what the audit log stores (as one ``answer`` entry).
"""

from __future__ import annotations

import math
from typing import Any

from pydantic import BaseModel, Field, model_validator

from ingest.passages import Passage
from pipeline.grounding_record import GroundingRecord
from pipeline.reasoning import AnswerStatus, CallRecord, TraceFormat
from pipeline.retrieval_info import DocumentFilterInfo, RetrievalInfo


# The evidence of an answer record is the passages the reasoner was shown (ingest.passages), kept as they are.
EvidenceRecord = Passage


# The answer payload's format, its ``payload_version``. 1: before replay (the field absent). 2: adds the
# settings, corpus and searched documents a replay needs (see AnswerRecord). 3: the call's sources sent and
# dropped, attempts and retry waits are fields of the call record (in 1 and 2 they rode in call.parameters;
# AnswerRecord reads them from there). 4: the evidence is the passages themselves, with their document id and
# context (before: neither; they read back as None and "").
ANSWER_PAYLOAD_VERSION = 4
# Moved out of call.parameters in format 3.
_CALL_FIELDS_FROM_PARAMETERS = ("sources_sent", "sources_dropped", "attempts", "retry_waits_ms")


class AnswerRecord(BaseModel):
    request_id: str
    created_at: str  # ISO 8601, UTC
    actor: str
    question: str
    collection: str | None
    documents: list[str] = Field(default_factory=list)  # the --doc filters as given
    # The --type/--since/--until filters as given (ISO dates); empty when none was.
    document_filter: DocumentFilterInfo = Field(default_factory=DocumentFilterInfo)
    retrieval: RetrievalInfo = Field(default_factory=RetrievalInfo)  # the search's settings, encoder and index generation
    reasoner: str
    notice: str | None = None  # e.g. the extractive answerer's "not a language model"
    status: AnswerStatus
    answer: str
    # status "withheld": the reasoner's answer, kept but not shown as an answer because it failed grounding
    # (grounding.label says which check failed; `docket ask --show-withheld` prints it, marked as such).
    withheld_answer: str | None = None
    citations: list[str] = Field(default_factory=list)
    trace: str = ""
    trace_format: TraceFormat = "none"
    evidence: list[Passage] = Field(default_factory=list)
    grounding: GroundingRecord = Field(default_factory=GroundingRecord)
    flags: list[str] = Field(default_factory=list)
    call: CallRecord
    error: str | None = None
    software_version: str
    config_hash: str
    # What a replay needs besides the fields above (pipeline/replay, docs/replay.md). The payload format: 1
    # (the default, so a payload from before has it when read back) had none of the fields below; 2, set by ask,
    # adds the settings (settings_sha256: the `settings` audit entry holding them, the actor left out), the
    # live corpus the search ran over (a reference to its `corpus` audit entry) and the documents the search
    # was restricted to.
    payload_version: int = 1
    settings_sha256: str | None = None
    corpus: dict[str, Any] = Field(default_factory=dict)  # {"sha256", "generation", "versions", "chunks"}
    searched_document_ids: list[int] | None = None  # None: not restricted to documents (every live one)
    audit_seq: int | None = None  # filled in after the entry is appended; not part of the entry

    @model_validator(mode="before")
    @classmethod
    def _read_older_formats(cls, data: Any) -> Any:
        """A payload written before format 3 has the call's sources and attempts in call.parameters."""
        if not isinstance(data, dict) or int(data.get("payload_version") or 1) >= 3:
            return data
        call = data.get("call")
        if not isinstance(call, dict) or not isinstance(call.get("parameters"), dict):
            return data
        parameters = dict(call["parameters"])
        moved = {name: parameters.pop(name) for name in _CALL_FIELDS_FROM_PARAMETERS if name in parameters}
        return {**data, "call": {**call, **moved, "parameters": parameters}} if moved else data

    def audit_payload(self) -> dict[str, Any]:
        return floats_to_strings(self.model_dump(mode="json", exclude={"audit_seq"}))


def floats_to_strings(value: Any) -> Any:
    """The audit log hashes canonical JSON without floats (their text form is not portable): render them."""
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else str(value)
    if isinstance(value, dict):
        return {k: floats_to_strings(v) for k, v in value.items()}
    if isinstance(value, list):
        return [floats_to_strings(v) for v in value]
    return value
