"""The passage: one retrieved stretch of a page, the one shape from the search to the audit payload.

The search returns passages ranked (``rank`` 1..k) and labelled as an answer cites them (``S1``..``Sk``);
the reasoner is shown them as they are (``pipeline.reasoning.Evidence`` is this type), the answer record
keeps them as its evidence, and the audit payload holds their fields. Nothing copies them field by field.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field


def source_label(rank: int) -> str:
    """How an answer cites the passage at ``rank``: [S1], [S2], ..."""
    return f"S{rank}"


@dataclass(frozen=True)
class Passage:
    label: str  # "S1", "S2", ...: source_label(rank)
    rank: int  # 1-based, in the search's order
    chunk_id: int
    doc_sha256: str
    doc_name: str
    page: int  # 1-based
    char_start: int  # the passage is exactly page.text[char_start:char_end]
    char_end: int
    text: str
    score: float
    method: str  # extraction method of the page (pymupdf, tesseract, ...)
    confidence: float | None = None  # OCR confidence of the page, 0..1; None for a text layer
    context: str = ""  # section heading etc., shown to the model beside the text
    document_id: int | None = None  # None in answer payloads before format 4, which did not record it
    # Read by OCR below grounding.low_confidence_threshold: set by the answer record, which knows the setting.
    low_confidence: bool = False
    # Of ``text``; always computed (a changed copy, a payload read back), so it cannot disagree with the text.
    text_sha256: str = field(init=False, default="")

    def __post_init__(self) -> None:
        object.__setattr__(self, "text_sha256", hashlib.sha256(self.text.encode("utf-8")).hexdigest())
