"""From an answer to a verdict: compliant, non-compliant, not addressed, or needs human review.

The rules are deliberately conservative. The extractive answerer only finds (or does not find)
evidence, so it never says "compliant" or "non-compliant" on its own: evidence found means a person
must judge it, unless the checklist item carries a machine-checkable ``rule`` that decides on the
value extracted (``rule_judgement``: the cell then says the rule decided it, with the value and quote). Magistral is asked for a verdict line in a fixed form; a verdict it gives is kept only
when it parses and the reasoning beside it is grounded in the cited sources. Anything else falls
back to "needs human review", with the reason written down.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from pipeline.grounding import check_grounding, cited_labels
from pipeline.grounding_record import GroundingRecord
from pipeline.reasoning import Evidence
from pipeline.records import AnswerRecord
from pipeline.review.checklist import ChecklistItem, Rule
from pipeline.review.findings import CellCitation

Verdict = Literal["compliant", "non-compliant", "not-addressed", "needs-review"]
VERDICTS: tuple[Verdict, ...] = ("compliant", "non-compliant", "not-addressed", "needs-review")
VERDICT_LABELS: dict[str, str] = {
    "compliant": "compliant",
    "non-compliant": "non-compliant",
    "not-addressed": "not addressed",
    "needs-review": "needs human review",
}
# What the model may write after "VERDICT:", folded to lower case with spaces for hyphens.
_MODEL_VERDICTS: dict[str, Verdict] = {
    "compliant": "compliant",
    "non compliant": "non-compliant",
    "noncompliant": "non-compliant",
    "not compliant": "non-compliant",
    "not addressed": "not-addressed",
}
_VERDICT_LINE = re.compile(r"^[ \t>*_#-]*verdict[ \t*_]*:[ \t*_]*(?P<value>[a-z \t-]+?)[ \t*_.]*$", re.I | re.M)
# A quoted passage followed by its citation; non-greedy, so quotes inside the passage do not cut it.
_QUOTED_CITE = re.compile(r'(?:"(.+?)"|“(.+?)”)\s*((?:\[\s*S\d+(?:\s*[,;]\s*S\d+)*\s*\])+)')
_LABEL = re.compile(r"S\d+")
_QUOTE_FALLBACK_CHARS = 300


def review_question(item: ChecklistItem, reasoner: str) -> str:
    """What is asked for one cell. The extractive answerer ranks sentences against the question, so
    it gets the question alone; Magistral also gets the requirement and the verdict format."""
    if reasoner != "magistral":
        return item.question
    return (
        f"Compliance check: {item.title}\n"
        f"Question: {item.question}\n"
        f"Requirement to judge against: {item.requirement}\n\n"
        "Answer the question from the sources, citing them. Then judge whether the document meets the "
        "requirement and end with exactly one line, one of:\n"
        "VERDICT: compliant\nVERDICT: non-compliant\nVERDICT: not addressed"
    )


@dataclass(frozen=True)
class Judgement:
    verdict: Verdict
    basis: str  # why this verdict, in one sentence (shown in reports)
    rationale: str  # the answer without its verdict line
    confidence: float  # 0..1, see docs/review.md
    grounding: GroundingRecord = field(default_factory=GroundingRecord)
    citations: list[CellCitation] = field(default_factory=list)


def parse_verdict(answer: str) -> tuple[Verdict | None, str]:
    """The last ``VERDICT: ...`` line of an answer, and the answer without it."""
    matches = list(_VERDICT_LINE.finditer(answer))
    if not matches:
        return None, answer.strip()
    last = matches[-1]
    value = " ".join(last.group("value").replace("-", " ").split()).casefold()
    rationale = (answer[: last.start()] + answer[last.end() :]).strip()
    return _MODEL_VERDICTS.get(value), rationale


def judge(record: AnswerRecord, reasoner: str, item: ChecklistItem | None = None) -> Judgement:
    evidence = [_evidence(e) for e in record.evidence]
    if item is not None and item.rule is not None and reasoner != "magistral":
        by_rule = rule_judgement(item.rule, record, evidence, item.title)
        if by_rule is not None:
            return by_rule
    reading = _reading_confidence(evidence)
    if record.status in ("error", "incomplete"):
        reason = record.error or "the model ran out of tokens before answering"
        return Judgement("needs-review", f"no answer ({record.status}): {reason}", "", 0.0)
    if record.status == "withheld" or record.withheld_answer:
        # Failed grounding: never a verdict from it, whatever it says; a person reads it.
        label = record.grounding.label or "it failed grounding"
        return Judgement("needs-review", f"the answer was withheld, {label}", record.withheld_answer or "", 0.0,
                         record.grounding, cell_citations(record.withheld_answer or "", evidence))
    if record.status == "refused":
        basis = "no passage of the document addresses this item"
        return Judgement("not-addressed", basis, record.answer, reading)
    if reasoner != "magistral":
        citations = cell_citations(record.answer, evidence)
        return Judgement(
            "needs-review",
            "evidence found; the extractive answerer quotes it and does not judge it",
            record.answer,
            record.grounding.support * _reading_confidence(_cited(evidence, citations)),
            record.grounding,
            citations,
        )
    verdict, rationale = parse_verdict(record.answer)
    sent = record.call.sources_sent
    shown = [e for e in evidence if sent is None or e.label in sent]
    report = (
        check_grounding(rationale, shown, question=record.question).to_record()
        if rationale else GroundingRecord(verdict="ungrounded", claims=0, label="not supported: no answer beside the verdict")
    )
    citations = cell_citations(rationale, shown)
    confidence = report.support * _reading_confidence(_cited(shown, citations))
    if verdict is None:
        return Judgement("needs-review", "the model gave no verdict in the expected form", rationale, 0.0, report, citations)
    if not report.grounded or not citations:
        problems = "; ".join(p.detail for p in report.problems[:2]) or (
            "it cites no source" if not citations else report.label or ""
        )
        return Judgement(
            "needs-review", f"the model said {VERDICT_LABELS[verdict]}, but its answer is not grounded: {problems}",
            rationale, confidence, report, citations,
        )
    return Judgement(verdict, f"the model's verdict, grounded in {len(citations)} cited passage(s)", rationale,
                     confidence, report, citations)


def cell_citations(answer: str, evidence: list[Evidence]) -> list[CellCitation]:
    """Each cited source with its page and the words quoted from it (or the start of its text)."""
    by_label = {e.label: e for e in evidence}
    quotes: dict[str, list[str]] = {}
    for straight, curly, labels in _QUOTED_CITE.findall(answer):
        for label in _LABEL.findall(labels):
            quotes.setdefault(label, []).append(" ".join((straight or curly).split()))
    for label in cited_labels(answer):
        quotes.setdefault(label, [])
    out = []
    for label, said in quotes.items():
        source = by_label.get(label)
        if source is None:
            continue
        text = " ".join(source.text.split())
        out.append(CellCitation(
            label=label,
            page=source.page,
            quote=" … ".join(dict.fromkeys(said)) or text[:_QUOTE_FALLBACK_CHARS],
            quoted=bool(said),
            doc_sha256=source.doc_sha256,
            chunk_id=source.chunk_id,
            text_sha256=source.text_sha256,
            method=source.method,
        ))
    return out


def _reading_confidence(evidence: list[Evidence]) -> float:
    """How reliably the passages were read: 1 for a text layer, the OCR confidence otherwise."""
    values = [e.confidence for e in evidence if e.confidence is not None]
    return min(values) if values else 1.0


def _cited(evidence: list[Evidence], citations: list[CellCitation]) -> list[Evidence]:
    labels = {c.label for c in citations}
    return [e for e in evidence if e.label in labels]


def _evidence(e: Evidence) -> Evidence:
    """The record's evidence is the reasoner's (one passage type): nothing to convert."""
    return e


# -- verdicts decided by a checklist rule on the extracted value (issue 17) --------------------------

_RULE_VALUE_KIND = {"jurisdiction_in": "jurisdiction", "min_duration_days": "duration", "max_duration_days": "duration",
                    "amount_present": "amount"}
_DAYS_PER = {"day": 1, "week": 7, "month": 30, "quarter": 91, "year": 365, "hour": 1 / 24}
_WORD_NUMBERS = {w: i for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen twenty".split())} | {"thirty": 30, "forty": 40, "forty-five": 45, "fifty": 50,
                                                     "sixty": 60, "ninety": 90, "a": 1, "an": 1, "one hundred twenty": 120}


def duration_days(text: str) -> float | None:
    """Days in a duration as written ("thirty (30) days", "one (1) year", "90 days"); None if unreadable."""
    match = re.search(r"(?:(\d+(?:\.\d+)?)|([a-z]+(?:[- ][a-z]+)?))\s*(?:\(\s*(\d+)\s*\))?\s*[- ]?(?:business |calendar |working )?"
                      r"(day|week|month|quarter|year|hour)s?\b", text.casefold())
    if not match:
        return None
    digits, words, bracketed, unit = match.groups()
    number = float(bracketed or digits) if (bracketed or digits) else _WORD_NUMBERS.get(words or "")
    if number is None and words:
        number = _WORD_NUMBERS.get(words.split("-")[-1].split()[-1])
    return None if number is None else number * _DAYS_PER[unit]


def extracted_value(kind: str, answer: str) -> tuple[str | None, str | None]:
    """The value of ``kind`` the answer states (its first line, as the extractive answerer writes it,
    else the first quote holding one) and the label it cites."""
    from pipeline.answer_kinds import value_span

    for line in answer.splitlines():
        labels = _LABEL.findall(line)
        text = re.sub(r"\[\s*S\d+(?:\s*[,;]\s*S\d+)*\s*\]", " ", line).strip().strip('"“”')
        value = value_span(kind, text)
        if value:
            return value, labels[0] if labels else None
    return None, None


_GENERIC_TITLE_WORDS = frozenset("anti non most cap uncapped rights right term clause period notice of on the and for".split())


def _names_item(title: str, answer: str) -> bool:
    """The answer names what the item is about: a content word of the item's title (as a 5-letter stem)."""
    stems = {w.casefold()[:5] for w in re.findall(r"[^\W\d_]{3,}", title) if w.casefold() not in _GENERIC_TITLE_WORDS}
    said = {w.casefold()[:5] for w in re.findall(r"[^\W\d_]{3,}", answer)}
    return not stems or bool(stems & said)


def _around(quote: str, value: str, width: int = 90) -> str:
    """The part of a long quote around the value it gives (ellipses mark what was cut)."""
    at = quote.find(value)
    if len(quote) <= 2 * width or at < 0:
        return quote if len(quote) <= 2 * width else quote[: 2 * width] + " …"
    start, end = max(0, at - width), min(len(quote), at + len(value) + width)
    return ("… " if start else "") + quote[start:end] + (" …" if end < len(quote) else "")


def rule_judgement(rule: Rule, record: AnswerRecord, evidence: list[Evidence], title: str = "") -> Judgement | None:
    """Compliant or non-compliant as the rule decides on the extracted value, or None when the rule
    cannot decide (no value of its kind in the answer, an unreadable duration): a person judges then."""
    if record.status not in ("answered", "refused") or record.withheld_answer:
        return None
    answered = record.status == "answered"
    citations = cell_citations(record.answer, evidence) if answered else []
    reading = _reading_confidence(_cited(evidence, citations)) if citations else _reading_confidence(evidence)
    said = f"rule '{rule.kind}' ({rule.describe()})"
    if rule.kind in ("clause_present", "clause_absent"):
        if answered and not _names_item(title, record.answer):
            return None  # a quote that never names the item's subject is not that clause: a person reads it
        compliant = answered == (rule.kind == "clause_present")
        found = "a passage addressing it was found and quoted" if answered else "no passage of the document addresses it"
        return Judgement("compliant" if compliant else "non-compliant",
                         f"decided by the {said}, not by a model: {found}", record.answer, reading,
                         record.grounding, citations)
    if not answered:
        return None  # nothing extracted: "not addressed" as before
    value, label = extracted_value(_RULE_VALUE_KIND[rule.kind], record.answer)
    if value is None:
        return None
    if rule.kind == "jurisdiction_in":
        compliant = any(a.casefold() in value.casefold() for a in rule.allowed)
    elif rule.kind == "amount_present":
        compliant = True
    else:
        days = duration_days(value)
        if days is None:
            return None
        compliant = days >= rule.value if rule.kind == "min_duration_days" else days <= rule.value
    quote = _around(next((c.quote for c in citations if c.label == label and c.quoted), ""), value)
    basis = (f"decided by the {said} on the extracted value '{value}'" + (f" [{label}]" if label else "")
             + (f' from "{quote}"' if quote else "") + ", not by a model")
    return Judgement("compliant" if compliant else "non-compliant", basis, record.answer,
                     record.grounding.support * reading if record.grounding.given else reading, record.grounding, citations)
