"""Structure-aware chunks, page by page, sized in the encoder's own tokens.

Each chunk is a contiguous span of one page's text, so its provenance is exact: ``page.text[start:end]``.
Chunks are packed from whole sentences (table rows and list lines when a "sentence" is a whole table) up to
a token budget; a line longer than that is cut on token boundaries. A paragraph (a PDF text block: a
clause, a table) that would fit whole in a fresh chunk is not split across two: the chunk ends before it.
Otherwise consecutive chunks share ``overlap_tokens`` of trailing sentences, so an answer straddling a
boundary is still found whole in one chunk.

Each chunk also gets a ``context``: the page title (statement title, column header) and the section
headings in force where the chunk starts (see ``ingest.structure``). The context is embedded and
indexed with the chunk, never quoted. The document's name is not part of it: on every chunk of a
document it made their vectors alike (CUAD within-contract dense R@5 fell from 0.83 to 0.71), so
only BM25 indexes it (see ``DocumentStore.lexical``). Context and text together never exceed
what the encoder reads: ``tokens(context) + tokens(text) <= max_model_tokens``.
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections.abc import Callable
from dataclasses import dataclass, replace

from ingest.config import ChunkingSettings
from ingest.models import Chunk, ExtractedDocument, PageText
from ingest.structure import SectionTracker, page_structure, running_lines

# A sentence ends at . ! ? followed by space and something that starts a sentence. Newlines inside a
# paragraph are line wraps, not boundaries.
_SENTENCE_END = re.compile(r"(?<=[.!?;])[\"')\]]?\s+(?=[\"'(\[]?[A-Z0-9(])")
_PARAGRAPH_BREAK = re.compile(r"\n\s*\n")
_LINE_BREAK = re.compile(r"\n")

# Tokens of every chunk's budget kept for its context. 48 word pieces hold a statement title with its
# column header and two section headings; the rest of the encoder's window is text.
CONTEXT_TOKENS = 48
CONTEXT_SEPARATOR = " | "

TokenOffsets = Callable[[str], list[tuple[int, int]]]


@dataclass(frozen=True)
class _Unit:
    start: int
    end: int
    tokens: int
    paragraph: int


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


def paragraph_spans(text: str) -> list[tuple[int, int]]:
    return _spans(text, _PARAGRAPH_BREAK, 0, len(text))


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """Character spans of the sentences of ``text`` (paragraph breaks always end a sentence)."""
    return [span for p_start, p_end in paragraph_spans(text) for span in _spans(text, _SENTENCE_END, p_start, p_end)]


def _units(text: str, token_starts: list[int], budget: int) -> list[_Unit]:
    """Sentences as units; an over-long one (a table, a list) splits into lines, an over-long line into windows."""
    units: list[_Unit] = []

    def count(start: int, end: int) -> int:
        return bisect_left(token_starts, end) - bisect_left(token_starts, start)

    for p_index, (p_start, p_end) in enumerate(paragraph_spans(text)):
        for s_start, s_end in _spans(text, _SENTENCE_END, p_start, p_end):
            if count(s_start, s_end) <= budget:
                units.append(_Unit(s_start, s_end, count(s_start, s_end), p_index))
                continue
            for l_start, l_end in _spans(text, _LINE_BREAK, s_start, s_end):
                first, last = bisect_left(token_starts, l_start), bisect_left(token_starts, l_end)
                for w in range(first, last, budget):
                    w_end = min(w + budget, last)
                    start, end = _strip(
                        text, token_starts[w] if w > first else l_start, token_starts[w_end] if w_end < last else l_end
                    )
                    if end > start:
                        units.append(_Unit(start, end, count(start, end), p_index))
    return units


def _pack(units: list[_Unit], budget: int, overlap: int) -> list[tuple[int, int, int]]:
    """(first unit, last unit + 1, tokens) of each chunk."""
    paragraph_tokens: dict[int, int] = {}
    for u in units:
        paragraph_tokens[u.paragraph] = paragraph_tokens.get(u.paragraph, 0) + u.tokens
    packed: list[tuple[int, int, int]] = []
    i = 0
    while i < len(units):
        j, tokens = i, 0
        while j < len(units) and tokens + units[j].tokens <= budget:
            starts_paragraph = units[j].paragraph != units[j - 1].paragraph if j > i else False
            whole = paragraph_tokens[units[j].paragraph]
            # Keep a paragraph that fits in a chunk of its own whole: end this chunk before it.
            if starts_paragraph and tokens + whole > budget and whole <= budget:
                break
            tokens += units[j].tokens
            j += 1
        packed.append((i, j, tokens))
        if j >= len(units):
            break
        if units[j].paragraph != units[j - 1].paragraph:
            i = j  # a clean paragraph break: no overlap needed
            continue
        # Step back over trailing units worth at most `overlap` tokens, but always move forward.
        back, carried = j, 0
        while back - 1 > i and carried + units[back - 1].tokens <= overlap:
            back -= 1
            carried += units[back].tokens
        i = back
    return packed


def _fit_context(parts: list[str], token_offsets: TokenOffsets, limit: int) -> str:
    """Join the context parts, dropping repeats, and cut the result to ``limit`` tokens."""
    seen: list[str] = []
    for part in parts:
        if part and not any(part.lower() in s.lower() for s in seen):
            seen.append(part)
    context = CONTEXT_SEPARATOR.join(seen)
    offsets = token_offsets(context)
    if len(offsets) > limit:
        context = context[: offsets[limit - 1][1]] if limit > 0 else ""
    return context


def chunk_page(
    page: PageText,
    doc_sha256: str,
    token_offsets: TokenOffsets,
    settings: ChunkingSettings,
    max_model_tokens: int,
    context_of: Callable[[int], list[str]] | None = None,
) -> list[Chunk]:
    """Chunks of one page. ``max_model_tokens`` is what the encoder reads without its special tokens;
    ``context_of(char_offset)`` gives the context parts in force at a position of the page."""
    text = page.text
    if not text.strip():
        return []
    context_budget = min(CONTEXT_TOKENS, max_model_tokens // 4) if context_of else 0
    budget = min(settings.max_tokens, max_model_tokens - context_budget)
    overlap = min(settings.overlap_tokens, budget // 2)
    token_starts = [start for start, _ in token_offsets(text)]
    units = _units(text, token_starts, budget)
    chunks = []
    for run in _runs_read_alike(units, page):
        for first, last, tokens in _pack(run, budget, overlap):
            chunk = _make_chunk(page, doc_sha256, run[first].start, run[last - 1].end, tokens)
            if context_of:
                context = _fit_context(context_of(chunk.char_start), token_offsets, max_model_tokens - tokens)
                chunk = replace(chunk, context=context)
            chunks.append(chunk)
    return chunks


def _runs_read_alike(units: list[_Unit], page: PageText) -> list[list[_Unit]]:
    """The units split wherever a span read otherwise than its page (a described figure) starts or
    ends, so that such a span gets chunks of its own, never shared with the page's own text."""
    other = [(s.start, s.end) for s in page.spans if s.method is not None]
    runs: list[list[_Unit]] = []
    previous: int | None = None
    for unit in units:
        inside = next((i for i, (start, end) in enumerate(other) if start <= unit.start < end), None)
        if not runs or inside != previous:
            runs.append([])
        runs[-1].append(unit)
        previous = inside
    return runs


def chunk_document(
    document: ExtractedDocument, token_offsets: TokenOffsets, settings: ChunkingSettings, max_model_tokens: int
) -> list[Chunk]:
    """Chunks of every page, each with its context: page title and the headings in force."""
    boilerplate = running_lines(document.pages)
    tracker = SectionTracker()  # headings carry over from page to page
    chunks: list[Chunk] = []
    for page in document.pages:
        structure = page_structure(page, boilerplate)
        headings = list(structure.headings)
        heading_starts = [h.start for h in headings]
        # A page with its own title (a new statement, a new note) starts afresh; otherwise the sections
        # of the previous page continue onto this one.
        carried = SectionTracker() if structure.title else SectionTracker(tracker.major, tracker.minor)

        def context_of(offset: int, structure=structure, headings=headings, starts=heading_starts, carried=carried) -> list[str]:
            state = SectionTracker(carried.major, carried.minor)
            for heading in headings[: bisect_right(starts, offset)]:
                state.advance(heading)
            return [structure.title, *state.current()]

        chunks.extend(chunk_page(page, document.sha256, token_offsets, settings, max_model_tokens, context_of))
        tracker = carried
        for heading in headings:
            tracker.advance(heading)
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
        method=next((s.method for s in overlapping if s.method is not None), page.method),
        boxes=tuple(s.box for s in overlapping),
        confidence=(sum(confidences) / len(confidences)) if confidences else page.confidence,
    )
