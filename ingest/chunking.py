"""Page-aware chunking on paragraph and sentence boundaries, sized in the encoder's own tokens.

Each chunk is a contiguous span of one page's text, so its provenance is exact: ``page.text[start:end]``.
Chunks are packed from whole sentences up to ``max_tokens``; a sentence longer than that is cut on token
boundaries (never silently truncated by the encoder). Consecutive chunks share ``overlap_tokens`` of
trailing sentences so that an answer straddling a boundary is still found whole in one chunk.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Callable
from dataclasses import dataclass

from ingest.config import ChunkingSettings
from ingest.models import Chunk, PageText

# A sentence ends at . ! ? followed by space and something that starts a sentence. Newlines inside a
# paragraph are line wraps, not boundaries.
_SENTENCE_END = re.compile(r"(?<=[.!?;])[\"')\]]?\s+(?=[\"'(\[]?[A-Z0-9(])")
_PARAGRAPH_BREAK = re.compile(r"\n\s*\n")

TokenOffsets = Callable[[str], list[tuple[int, int]]]


@dataclass(frozen=True)
class _Unit:
    start: int
    end: int
    tokens: int


def _spans(text: str, pattern: re.Pattern[str], start: int, end: int) -> list[tuple[int, int]]:
    pieces, cursor = [], start
    for match in pattern.finditer(text, start, end):
        pieces.append((cursor, match.start()))
        cursor = match.end()
    pieces.append((cursor, end))
    return [(s, e) for s, e in (_strip(text, s, e) for s, e in pieces) if e > s]


def _strip(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """Character spans of the sentences of ``text`` (paragraph breaks always end a sentence)."""
    return [
        span
        for p_start, p_end in _spans(text, _PARAGRAPH_BREAK, 0, len(text))
        for span in _spans(text, _SENTENCE_END, p_start, p_end)
    ]


def _sentence_units(text: str, token_starts: list[int], max_tokens: int) -> list[_Unit]:
    """Sentences (within paragraphs) as units; an over-long sentence becomes several token windows."""
    units: list[_Unit] = []
    for s_start, s_end in sentence_spans(text):
        first, last = bisect_left(token_starts, s_start), bisect_left(token_starts, s_end)
        count = last - first
        if count <= max_tokens:
            units.append(_Unit(s_start, s_end, count))
            continue
        for w in range(first, last, max_tokens):
            w_end = min(w + max_tokens, last)
            w_start_char = token_starts[w] if w > first else s_start
            w_end_char = token_starts[w_end] if w_end < last else s_end
            start, end = _strip(text, w_start_char, w_end_char)
            if end > start:
                units.append(_Unit(start, end, w_end - w))
    return units


def chunk_page(
    page: PageText,
    doc_sha256: str,
    token_offsets: TokenOffsets,
    settings: ChunkingSettings,
    max_model_tokens: int,
) -> list[Chunk]:
    """Chunks of one page. ``max_model_tokens`` is what the encoder reads without its special tokens."""
    text = page.text
    if not text.strip():
        return []
    budget = min(settings.max_tokens, max_model_tokens)
    overlap = min(settings.overlap_tokens, budget // 2)
    token_starts = [start for start, _ in token_offsets(text)]
    units = _sentence_units(text, token_starts, budget)

    chunks: list[Chunk] = []
    i = 0
    while i < len(units):
        j, tokens = i, 0
        while j < len(units) and tokens + units[j].tokens <= budget:
            tokens += units[j].tokens
            j += 1
        chunks.append(_make_chunk(page, doc_sha256, units[i].start, units[j - 1].end, tokens))
        if j >= len(units):
            break
        # Step back over trailing units worth at most `overlap` tokens, but always move forward.
        back, carried = j, 0
        while back - 1 > i and carried + units[back - 1].tokens <= overlap:
            back -= 1
            carried += units[back].tokens
        i = back
    return chunks


def _make_chunk(page: PageText, doc_sha256: str, start: int, end: int, tokens: int) -> Chunk:
    overlapping = [s for s in page.spans if s.start < end and s.end > start]
    confidences = [s.confidence for s in overlapping if s.confidence is not None]
    return Chunk(
        doc_sha256=doc_sha256,
        page=page.number,
        char_start=start,
        char_end=end,
        text=page.text[start:end],
        token_count=tokens,
        method=page.method,
        boxes=tuple(s.box for s in overlapping),
        confidence=(sum(confidences) / len(confidences)) if confidences else page.confidence,
    )
