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
    # A table's region is chunked by rows below (each with its headers); its lines are not text units.
    tables = [t for t in page.tables if 0 <= t.start < t.end <= len(text)]
    if tables:
        units = [u for u in units if not any(t.start <= u.start < t.end for t in tables)]
    runs = _runs_apart(_runs_read_alike(units, page), [t.start for t in tables])
    leads = _table_leads(runs, tables, text, token_starts, budget) if tables else {}
    chunks = []
    for run in runs:
        if run[0].start in leads.values():
            continue  # a table's lead: its first block starts there
        for first, last, tokens in _pack(run, budget, overlap):
            chunk = _make_chunk(page, doc_sha256, run[first].start, run[last - 1].end, tokens)
            if context_of:
                context = _fit_context(context_of(chunk.char_start), token_offsets, max_model_tokens - tokens)
                chunk = replace(chunk, context=context)
            chunks.append(chunk)
    for index, table in enumerate(tables):
        parts = context_of(table.start) if context_of else []
        chunks += _table_chunks(
            page, table, doc_sha256, token_offsets, token_starts, settings, max_model_tokens, parts, leads.get(index)
        )
    chunks.sort(key=lambda c: c.char_start)
    if tables:
        chunks = _join_footers(chunks, page, tables, token_offsets, token_starts, settings.max_tokens, max_model_tokens, budget // 4)
    return chunks


def _table_leads(
    runs: list[list[_Unit]], tables, text: str, token_starts: list[int], budget: int
) -> dict[int, int]:
    """table index -> where its lead starts: a run of text under a quarter of the budget that ends just
    above the table (the statement's title, its units, "(Unaudited)"), when it and the table's header
    take at most half the budget. The table splits such a run off from the text around it; alone it
    would be a chunk of a few words that matches the question's words (the statement's name) about as
    well as the table does and takes a place in the top k; as the first block's start, the block reads
    as printed: title, header, rows."""
    def count(start: int, end: int) -> int:
        return bisect_left(token_starts, end) - bisect_left(token_starts, start)

    leads: dict[int, int] = {}
    for run in runs:
        start, end = run[0].start, run[-1].end
        below = next((i for i, t in enumerate(tables) if t.start >= end and not text[end : t.start].strip()), None)
        if below is None or below in leads or sum(u.tokens for u in run) >= budget // 4:
            continue
        table = tables[below]
        header_end = table.body_start if table.start < table.body_start else table.start
        if count(start, header_end) <= budget // 2:
            leads[below] = start
    return leads


def _join_footers(
    chunks: list[Chunk], page: PageText, tables, token_offsets: TokenOffsets, token_starts: list[int],
    max_tokens: int, max_model_tokens: int, small: int,
) -> list[Chunk]:
    """A text chunk under ``small`` tokens just below a table (its footnotes, "See the accompanying
    notes", the page number) joined to the table's last block, when the join still fits ``max_tokens``
    and the encoder: the same reason as a table's lead (``_table_leads``), from below."""
    def count(start: int, end: int) -> int:
        return bisect_left(token_starts, end) - bisect_left(token_starts, start)

    merged: list[tuple[Chunk, bool]] = []  # (chunk, whether it holds table rows)
    for chunk in chunks:
        rows = any(t.start <= chunk.char_end - 1 < t.end or chunk.char_start <= t.start < chunk.char_end for t in tables)
        previous = merged[-1] if merged else None
        if previous is not None and previous[1] and not rows and chunk.token_count < small:
            block = previous[0]
            tokens = count(block.char_start, chunk.char_end)
            if (not page.text[block.char_end : chunk.char_start].strip() and tokens <= max_tokens
                    and tokens + len(token_offsets(block.context)) <= max_model_tokens):
                joined = _make_chunk(page, block.doc_sha256, block.char_start, chunk.char_end, tokens)
                merged[-1] = (replace(joined, context=block.context), True)
                continue
        merged.append((chunk, rows))
    return [chunk for chunk, _ in merged]


# Tokens a table chunk's context may take: the statement's title, units, section row and the column
# headers as a Markdown row (``| (Millions) | 2018 | 2017 | 2016 |``) together.
TABLE_CONTEXT_TOKENS = 80


def table_context(
    parts: list[str], table, section: str, token_offsets: TokenOffsets, limit: int, with_header: bool = True
) -> str:
    """A table chunk's context: where it is ("3M Company and Subsidiaries; Consolidated Statement of Cash
    Flows; (Millions) | Cash Flows from Investing Activities"), then on its own line the column headers
    as a Markdown header row, so every block of rows reads as a small table (``ingest.tables.as_table``).
    The header is kept whole when it fits in half the limit (a longer one is read in the text of the
    table's first block only, which holds the header rows as printed); the place is cut to what the
    header leaves. ``with_header`` False: the chunk's text holds the header rows already."""
    header = table.header_markdown if any(table.columns) else ""
    header_tokens = len(token_offsets(header)) if header else 0
    if header_tokens > limit // 2:
        header, header_tokens = "", limit // 2
    # The place gets what the header leaves whether or not the header is in the context: a first block
    # (its header in its text) is not given a longer place, which every other block would not have.
    place_limit = max(0, limit - header_tokens)
    place = [p for p in parts if p] + [p for p in (table.title, table.units) if p]
    where = _fit_context(place, token_offsets, max(0, place_limit - (2 if section else 0)))
    if section:
        where = _fit_context([where, section], token_offsets, place_limit)
    return f"{where}\n{header}" if header and with_header else where


def _table_chunks(
    page: PageText, table, doc_sha256: str, token_offsets: TokenOffsets, token_starts: list[int],
    settings: ChunkingSettings, max_model_tokens: int, parts: list[str], lead: int | None = None,
) -> list[Chunk]:
    """Chunks of whole rows of one table, each with the table's title, units and column headers in its
    context. A chunk ends before a section row ("Cash Flows from Investing Activities") once it is half
    full, so a block of rows tends to be one section. The first block starts at the table's header rows
    when they are printed on this page: the header's words (periods, "Three months ended") are then in
    the text that BM25 and the encoder read, and the block is the table as printed; it starts at
    ``lead`` when given (the title and units just above, ``_table_leads``)."""
    def count(start: int, end: int) -> int:
        return bisect_left(token_starts, end) - bisect_left(token_starts, start)

    rows = [r for r in table.rows if 0 <= r.start < r.end]
    limit = min(TABLE_CONTEXT_TOKENS, max_model_tokens // 3)
    header_in_text = 0 <= table.start < table.body_start <= (rows[0].start if rows else table.body_start)
    chunks: list[Chunk] = []
    i = 0
    while i < len(rows):
        first = i == 0 and (header_in_text or lead is not None)
        # A block that opens with its section row has its section in its text already.
        section = "" if rows[i].is_section else rows[i].section
        context = table_context(parts, table, section, token_offsets, limit, with_header=not (i == 0 and header_in_text))
        budget = min(settings.max_tokens, max_model_tokens - len(token_offsets(context)))
        block_start = (lead if lead is not None else table.start) if first else rows[i].start
        j, tokens = i, count(block_start, rows[i].start)
        while j < len(rows):
            n = count(rows[j].start, rows[j].end)
            if j > i and (tokens + n > budget or (rows[j].is_section and tokens >= budget // 2)):
                break
            tokens += n
            j += 1
        start, end = block_start, rows[j - 1].end
        if tokens > budget:  # one row longer than the budget: cut on a token boundary
            cut = bisect_left(token_starts, start) + budget
            end = _strip(page.text, start, token_starts[cut] if cut < len(token_starts) else end)[1]
            tokens = count(start, end)
        chunks.append(replace(_make_chunk(page, doc_sha256, start, end, tokens), context=context))
        i = j
    return chunks


def _runs_apart(runs: list[list[_Unit]], cuts: list[int]) -> list[list[_Unit]]:
    """The runs split wherever a table lies between two units: text above a table and text below it
    are never one chunk (the chunk's span would cover the table)."""
    if not cuts:
        return runs
    out: list[list[_Unit]] = []
    for run in runs:
        out.append([])
        for unit in run:
            if out[-1] and any(out[-1][-1].end <= cut < unit.start for cut in cuts):
                out.append([])
            out[-1].append(unit)
    return [run for run in out if run]


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
    # Headings, page titles and running lines are read from the text around the tables: a Markdown row
    # in title case is not a heading.
    views = [_without_tables(page) for page in document.pages]
    boilerplate = running_lines(views)
    tracker = SectionTracker()  # headings carry over from page to page
    chunks: list[Chunk] = []
    for page, view in zip(document.pages, views):
        structure = page_structure(view, boilerplate)
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


def _without_tables(page: PageText) -> PageText:
    """The page with each table's region blanked (same length, so offsets hold)."""
    if not page.tables:
        return page
    text = page.text
    for table in page.tables:
        if 0 <= table.start < table.end <= len(text):
            text = text[: table.start] + re.sub(r"[^\n]", " ", text[table.start : table.end]) + text[table.end :]
    return replace(page, text=text)


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
