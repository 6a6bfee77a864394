"""Grounding: is every claim of an answer tied to the sources it was given?

Per sentence of the answer: each [S#] names a source that was given; each sentence that carries a
claim cites; each quoted passage is in a cited source (modulo whitespace, quote and dash style, case,
as ``pipeline.normalise`` folds them); each number (amount, percentage, date) is in a cited source
after normalisation (``pipeline.figures``), unless the sentence says it is computed and shows its
inputs, in which case the inputs are checked and the arithmetic too. The same checks run on
Magistral's answers and on the extractive answerer's verbatim quotes.

Separately, given the question, whether the answer addresses it: the kind of answer the question asks
for (an amount, a date, a duration, ...; ``pipeline.answer_kinds``) is present in the answer. A quote
of a page footer is verbatim, and still does not answer "which law governs". The report names each
check on its own (``checks``) and says in plain words what held and what failed (``label``);
``verdict`` is ``grounded`` only when every check holds.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import Any, Literal

from ingest.tables import CellMatch, TableRecord, as_table, match_number_to_cell
from pipeline.answer_kinds import KIND_WORDS, KindCheck, check_kind
from pipeline.grounding_record import GroundingRecord
from pipeline.figures import FORMULA_CONSTANTS, Date, Number, computation, date_in, dates_in, number_in, numbers_in
from pipeline.normalise import flat, quote_forms, source_forms
from pipeline.reasoning import Evidence

# "not_answering": every claim is supported by its sources, but the answer does not contain the kind
# of answer the question asks for (a verbatim footer quote for "which law governs?").
Verdict = Literal["grounded", "partly_grounded", "ungrounded", "not_answering"]
ProblemKind = Literal[
    "unknown_source", "uncited_claim", "quote_not_found", "number_not_found", "computation_mismatch"
]

_CITATION = re.compile(r"\[\s*(S\d+(?:\s*[,;]\s*S\d+)*)\s*\]")
# The one sentence a reasoner uses when the sources do not answer (the prompt asks Magistral for it
# verbatim). It asserts nothing about the documents, so it is not a claim to ground.
REFUSAL_SENTENCE = "The sources do not answer this question."


def cited_labels(text: str) -> list[str]:
    """Labels cited in ``text`` ([S1], [S2, S3], [S4; S5]) in order of first appearance, once each."""
    seen: dict[str, None] = {}
    for group in _CITATION.findall(text):
        for label in re.split(r"\s*[,;]\s*", group):
            seen.setdefault(label, None)
    return list(seen)


def is_refusal(answer: str) -> bool:
    """The answer uses the refusal sentence and cites nothing."""
    return REFUSAL_SENTENCE.casefold() in " ".join(answer.split()).casefold() and not cited_labels(answer)


# -- records ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SentenceProblem:
    sentence_index: int  # 0-based, among the answer's sentences
    sentence: str
    kind: ProblemKind
    detail: str


@dataclass(frozen=True)
class LowConfidenceSource:
    label: str
    doc_name: str
    page: int
    confidence: float

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "confidence": f"{self.confidence:.2f}"}


@dataclass(frozen=True)
class GroundingReport:
    verdict: Verdict
    sentences: int
    claims: int  # sentences that carry a claim
    grounded_claims: int
    citations: list[str]  # known labels the answer cites, in order
    problems: list[SentenceProblem] = field(default_factory=list)
    low_confidence: list[LowConfidenceSource] = field(default_factory=list)
    # Labels the answer cites that no source sent carries ([S9] when S1..S5 were sent). A model does
    # not invent labels on its own: text in a document or the question steered it, so it is flagged.
    unknown_citations: list[str] = field(default_factory=list)
    # The question's kind of answer and whether the answer has it (unspecified when no question was given).
    kind: KindCheck = field(default_factory=lambda: KindCheck("unspecified", "no question given", None, None))
    quotes: int = 0  # quoted passages checked
    numbers: int = 0  # numbers and dates checked outside quotes
    # Each number found in a cited source's table: its cell, row, column and box on the page (the
    # evidence to show for it; ingest.tables.match_number_to_cell). Only when the tables were given.
    cells: list[CellMatch] = field(default_factory=list)

    @property
    def possible_injection(self) -> bool:
        return bool(self.unknown_citations)

    @property
    def checks(self) -> dict[str, str]:
        """Each check on its own, in the words docs/reasoning.md defines."""
        kinds = {p.kind for p in self.problems}
        citations_ok = not ({"unknown_source", "uncited_claim"} & kinds or self.unknown_citations)
        return {
            "citations": "valid" if citations_ok else "invalid",
            "quotes": "not found" if "quote_not_found" in kinds else "found" if self.quotes else "none quoted",
            "numbers": (
                "not found" if {"number_not_found", "computation_mismatch"} & kinds
                else "found" if self.numbers else "none stated"
            ),
            "addresses_question": {True: "yes", False: "no", None: "not checked"}[self.kind.addresses],
        }

    @property
    def supported(self) -> bool:
        """Citations valid, quotes found, numbers found, and the answer addresses the question."""
        return self.verdict == "grounded"

    @property
    def label(self) -> str:
        """What was checked, in plain words: "supported: ..." only when every check holds, else
        "not supported: <what held>, but <what failed>"."""
        checks = self.checks
        held, failed = [], []
        (held if checks["citations"] == "valid" else failed).append(
            "citations valid" if checks["citations"] == "valid" else "it cites a source that was not given or states a claim without a citation"
        )
        if checks["quotes"] == "found":
            held.append("quotes found on the cited pages")
        elif checks["quotes"] == "not found":
            failed.append("a quote is not on the cited page")
        if checks["numbers"] == "found":
            held.append("numbers found")
        elif checks["numbers"] == "not found":
            failed.append("a number or date is not in the cited sources")
        if self.kind.addresses:
            # The piece found is in answer_kind.found; not repeated here, where a withheld answer's words would show.
            held.append(f"states {KIND_WORDS[self.kind.kind]}")
        elif self.kind.addresses is False:
            failed.append(f"it does not state {KIND_WORDS[self.kind.kind]}")
        if not failed and self.verdict != "grounded":
            failed.append("not every claim is supported")
        if not failed:
            unchecked = "" if self.kind.addresses is not None else "; whether it answers the question was not checked"
            return "supported: " + ", ".join(held) + unchecked
        if not held:
            return "not supported: " + " and ".join(failed)
        return "not supported: " + ", ".join(held) + ", but " + " and ".join(failed)

    @property
    def failing_sentences(self) -> list[str]:
        return list(dict.fromkeys(p.sentence for p in self.problems))

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON (no floats), for display and the audit record."""
        return {
            "verdict": self.verdict,
            "sentences": self.sentences,
            "claims": self.claims,
            "grounded_claims": self.grounded_claims,
            "citations": list(self.citations),
            "problems": [asdict(p) for p in self.problems],
            "low_confidence": [s.to_dict() for s in self.low_confidence],
            "unknown_citations": list(self.unknown_citations),
            "cells": [c.to_dict() for c in self.cells],
            "possible_injection": self.possible_injection,
            "checks": self.checks,
            "answer_kind": self.kind.to_dict(),
            "supported": self.supported,
            "label": self.label,
        }

    def to_record(self) -> GroundingRecord:
        """The report as the answer record and the audit payload carry it."""
        return GroundingRecord.from_payload(self.to_dict())


# -- sentences ----------------------------------------------------------------------------------------

_ABBREVIATIONS = {
    "inc", "ltd", "co", "corp", "no", "nos", "e.g", "i.e", "u.s", "mr", "mrs", "ms", "dr", "vs",
    "etc", "art", "sec", "approx", "fig", "p", "pp", "st", "jr", "sr", "llc", "plc", "cf", "para",
}
_LIST_MARKER = re.compile(r"^[ \t]*(?:[-*•]|\d{1,2}[.)]|#{1,6})[ \t]+", re.MULTILINE)
_TRAILING_CITES = re.compile(r"(?:\s*\[\s*S\d+(?:\s*[,;]\s*S\d+)*\s*\])+[.;,]?")
_OPENING_QUOTES, _CLOSING_QUOTES = "“«„", "”»"
# Markdown emphasis around words (**30 days**, __Term__); a filing's redaction marks ([*****], [* ****])
# and a form's blanks (______) are text, kept as written so a quote of them is still found on its page.
_EMPHASIS = re.compile(r"(\*\*|__)(?=[^\W_])(.+?)(?<=[^\W_]|[.!?:)%])\1")


def split_sentences(text: str) -> list[str]:
    """Sentences of an answer; never splits inside a double-quoted passage; trailing [S#] stay
    with the sentence they follow; list markers and markdown emphasis are dropped."""
    text = _EMPHASIS.sub(r"\2", _LIST_MARKER.sub("", text))
    sentences: list[str] = []
    # Quotes nest: the extractive answerer puts a sentence in straight quotes, and the sentence may
    # hold curly ones (“Term.”). Closing the inner quote must not end the outer one.
    start, straight, curly, i = 0, False, 0, 0
    while i < len(text):
        char = text[i]
        end: int | None = None
        in_quote = straight or curly > 0
        if char == '"':
            straight = not straight
            if not straight and not curly and i > 0 and text[i - 1] in ".!?":
                end = _sentence_end(text, i + 1)
        elif char in _OPENING_QUOTES:
            curly += 1
        elif char in _CLOSING_QUOTES:
            curly = max(0, curly - 1)
            if not straight and not curly and i > 0 and text[i - 1] in ".!?":
                end = _sentence_end(text, i + 1)
        elif in_quote:
            pass
        elif char == "\n":
            end = i
        elif char in ".!?" and not _is_abbreviation(text, i):
            end = _sentence_end(text, i + 1)
        if end is not None:
            sentences.append(text[start:end])
            start = end
        i = max(i + 1, end or 0)
    sentences.append(text[start:])
    return [s.strip() for s in sentences if s.strip()]


def _sentence_end(text: str, pos: int) -> int | None:
    while pos < len(text) and text[pos] in ")'’":
        pos += 1
    cites = _TRAILING_CITES.match(text, pos)
    if cites:
        pos = cites.end()
    if pos >= len(text):
        return pos
    if not text[pos].isspace():
        return None
    rest = text[pos:].lstrip(" \t")
    if rest and rest[0].islower():
        return None
    return pos


def _is_abbreviation(text: str, i: int) -> bool:
    word = re.search(r"([\w.]+)$", text[:i])
    if not word:
        return False
    token = word.group(1).casefold()
    return token in _ABBREVIATIONS or (len(token) == 1 and token.isalpha()) or bool(
        i + 1 < len(text) and text[i + 1].isdigit()
    )


# A review's verdict line ("VERDICT: non-compliant"): the model's judgement of its own cited reasoning,
# not a statement about a source; the review keeps it only when that reasoning holds.
_VERDICT_LINE = re.compile(r"^[\s>*_#-]*verdict[\s*_]*:[\s*_]*[a-z \t-]+[\s*_.]*$", re.IGNORECASE)


def _is_claim(sentence: str) -> bool:
    bare = _CITATION.sub("", sentence).strip()
    if not bare or bare.endswith(":") or REFUSAL_SENTENCE.casefold() in flat(bare) or _VERDICT_LINE.match(bare):
        return False
    words = re.findall(r"[^\W\d_]{2,}", bare)
    return len(words) >= 3 or bool(re.search(r"\d", bare))


# -- quotes -------------------------------------------------------------------------------------------

_QUOTED = re.compile(r'"([^"]+)"|“([^”]+)”|«([^»]+)»|„([^“”]+)[“”]')
_ELLIPSIS = re.compile(r"\s*(?:\.\.\.|…|\[\s*(?:\.\.\.|…)\s*\])\s*")


def _quotes(sentence: str) -> list[str]:
    found = [next(g for g in m.groups() if g is not None) for m in _QUOTED.finditer(sentence)]
    return [q for q in found if re.search(r"\w", q)]


def _quote_in(quote: str, forms: tuple[str, ...]) -> bool:
    for written in quote_forms(quote):
        parts = [flat(p) for p in _ELLIPSIS.split(written) if flat(p)]
        for form in forms:
            pos = 0
            for part in parts:
                pos = form.find(part, pos)
                if pos < 0:
                    break
                pos += len(part)
            else:
                return True
    return False


# -- the check ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _PassageFacts:
    """What grounding compares in one passage: its text's compared forms, numbers, dates and folded text."""

    forms: tuple[str, ...]
    numbers: tuple[Number, ...]
    dates: frozenset[Date]
    folded: str


@lru_cache(maxsize=2048)
def _passage_facts(context: str, text: str) -> _PassageFacts:
    """A passage's facts, a pure function of its context and text, so kept: the same evidence comes back
    ask after ask, and its regular expressions are the grounding check's main cost. Frozen, so a cached
    value cannot be changed by one caller under another."""
    # A table's rows are shown under their column headers (ingest.tables.as_table): "2018" is checked
    # against what the reasoner read.
    shown = as_table(context, text) or text
    dates, _ = dates_in(shown)
    return _PassageFacts(
        source_forms(shown),
        tuple(numbers_in(shown)),
        frozenset(d for readings, _ in dates for d in readings),
        shown.casefold(),
    )


@dataclass(frozen=True)
class _Source:
    evidence: Evidence
    facts: _PassageFacts

    @property
    def forms(self) -> tuple[str, ...]:
        return self.facts.forms

    @property
    def numbers(self) -> tuple[Number, ...]:
        return self.facts.numbers

    @property
    def dates(self) -> frozenset[Date]:
        return self.facts.dates

    @property
    def folded(self) -> str:
        return self.facts.folded


def _index(evidence: list[Evidence]) -> dict[str, _Source]:
    return {item.label: _Source(item, _passage_facts(item.context, item.text)) for item in evidence}


def _sentence_problems(
    sentence: str, sources: dict[str, _Source], citations_required: bool, counted: dict[str, int] | None = None,
    tables: dict[str, list[TableRecord]] | None = None, cells: list[CellMatch] | None = None,
) -> list[tuple[ProblemKind, str]]:
    """The problems of one claim sentence; ``counted`` tallies the quotes and numbers checked."""
    counted = counted if counted is not None else {}
    problems: list[tuple[ProblemKind, str]] = []
    labels = cited_labels(sentence)
    unknown = [label for label in labels if label not in sources]
    known = [label for label in labels if label in sources]
    if unknown:
        problems.append(("unknown_source", f"cites {', '.join(unknown)}, which no source given is labelled"))
    if not labels and citations_required:
        problems.append(("uncited_claim", "states a claim without citing a source"))
    scope = [sources[label] for label in known] or list(sources.values())
    where = ", ".join(known) if known else "any source"

    for quote in _quotes(sentence):
        counted["quotes"] = counted.get("quotes", 0) + 1
        if not any(_quote_in(quote, s.forms) for s in scope):
            short = quote if len(quote) <= 80 else quote[:77] + "..."
            problems.append(("quote_not_found", f'quoted text not found in {where}: "{short}"'))

    # Numbers outside quotes (quotes are checked verbatim above) and outside the citations.
    bare = _QUOTED.sub(lambda m: " " * len(m.group(0)), sentence)
    bare = _CITATION.sub(lambda m: " " * len(m.group(0)), bare)
    results, arithmetic = computation(bare)
    problems += [("computation_mismatch", detail) for detail in arithmetic]
    dates, bare = dates_in(bare)
    source_numbers = [n for s in scope for n in s.numbers]
    source_dates = {d for s in scope for d in s.dates}
    source_text = " ".join(s.folded for s in scope)
    counted["numbers"] = counted.get("numbers", 0) + len(dates)
    for readings, (start, end) in dates:
        if not date_in(readings, source_dates, source_text):
            problems.append(("number_not_found", f"date '{sentence[start:end]}' not in {where}"))
    for number in numbers_in(bare):
        counted["numbers"] = counted.get("numbers", 0) + 1
        if number.mantissa in results or number.value in results:
            continue
        if results and number.text.strip() in FORMULA_CONSTANTS:
            continue  # the 2 of an average, the 365 of days outstanding, the 100 of a percentage: not read from a source
        if not number_in(number, source_numbers):
            problems.append(("number_not_found", f"'{number.text.strip()}' not in {where}"))
        elif tables and cells is not None:
            # The table cell of a cited source that holds it: its box is the evidence shown for it.
            scope_tables = [t for label in (known or list(sources)) for t in tables.get(label, [])]
            cell = match_number_to_cell(
                number.mantissa, scope_tables, value=number.value if number.scaled else None, label_hint=sentence
            )
            if cell is not None:
                cells.append(cell)
    return problems


def low_confidence_sources(labels: list[str], evidence: list[Evidence], threshold: float) -> list[LowConfidenceSource]:
    """Cited sources whose page was read by OCR with confidence below ``threshold``
    (``GroundingSettings.low_confidence_threshold``): worth a human look at the page image."""
    by_label = {e.label: e for e in evidence}
    return [
        LowConfidenceSource(e.label, e.doc_name, e.page, e.confidence)
        for e in (by_label[label] for label in labels if label in by_label)
        if e.confidence is not None and e.confidence < threshold
    ]


def check_grounding(
    answer: str,
    evidence: list[Evidence],
    *,
    citations_required: bool = True,
    low_confidence_threshold: float | None = None,
    question: str | None = None,
    tables: dict[str, list[TableRecord]] | None = None,
) -> GroundingReport:
    """Check ``answer`` against exactly the evidence the reasoner was shown; given ``question``, also
    whether the answer has the kind of answer it asks for (``verdict`` is then ``grounded`` only if so)."""
    sources = _index(evidence)
    counted: dict[str, int] = {}
    cells: list[CellMatch] = []  # with ``tables`` (label -> the tables of that source's rows): numbers' cells
    sentences = split_sentences(answer)
    problems: list[SentenceProblem] = []
    claims = failing = 0
    for index, sentence in enumerate(sentences):
        if not _is_claim(sentence):
            # Not a claim, but a citation of a source that was never given is still a fabrication.
            unknown = [label for label in cited_labels(sentence) if label not in sources]
            if unknown:
                claims += 1
                failing += 1
                detail = f"cites {', '.join(unknown)}, which no source given is labelled"
                problems.append(SentenceProblem(index, sentence, "unknown_source", detail))
            continue
        claims += 1
        found = _sentence_problems(sentence, sources, citations_required, counted, tables, cells)
        failing += bool(found)
        problems += [SentenceProblem(index, sentence, kind, detail) for kind, detail in found]
    verdict: Verdict = "grounded" if not failing else "ungrounded" if failing == claims else "partly_grounded"
    unknown = [label for label in cited_labels(answer) if label not in sources]
    if unknown and verdict == "grounded":
        # However the sentences split, an answer citing a label never sent is not grounded.
        verdict = "partly_grounded" if claims else "ungrounded"
    kind = (
        check_kind(question, _CITATION.sub(" ", answer))
        if question is not None
        else KindCheck("unspecified", "no question given", None, None)
    )
    if verdict == "grounded" and kind.addresses is False:
        verdict = "not_answering"  # verbatim, and beside the point
    citations = [label for label in cited_labels(answer) if label in sources]
    low = (
        low_confidence_sources(citations, evidence, low_confidence_threshold)
        if low_confidence_threshold is not None
        else []
    )
    return GroundingReport(
        verdict, len(sentences), claims, claims - failing, citations, problems, low, unknown, kind,
        counted.get("quotes", 0), counted.get("numbers", 0), cells,
    )
