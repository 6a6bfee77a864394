"""Scoring answers for `docket eval --answers` and `--review` (issue 17 "Measured").

Each question is asked through ``pipeline.ask.ask`` (nothing recorded), so what is scored is what a
user is shown: an answer that fails grounding is ``withheld``, not answered. The measures:

- CUAD: an answer is correct when its first quote overlaps a gold clause by at least half of the
  shorter one's characters (``char_overlap``); over answerable questions, and per clause category.
- Refusals: precision (of the refusals, the share on unanswerable questions) and recall (of the
  unanswerable questions, the share refused). A withheld answer is no refusal: it is counted apart.
- FinanceBench: for questions whose gold answer is a number (``gold_number``), whether that number
  appears in the shown answer, normalised for currency, thousands separators, scale words (and the
  question's "in USD millions"), sign and the gold's rounding (``number_in_answer``).
- Reviews: the share of a checklist's cells that get a verdict offline, and of those with CUAD gold,
  the share that agree with the verdict the same rule gives on the gold (``expected_verdict``).
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from difflib import SequenceMatcher
from pathlib import Path
from typing import Any

# -- CUAD: the first quote against the gold clause ---------------------------------------------------

# A quoted passage followed by its citation (the extractive answerer's form; non-greedy, so a quote
# inside the passage does not end it), else any double-quoted passage.
_CITED_QUOTE = re.compile(r'"(.+?)"\s*\[\s*S\d+|“(.+?)”\s*\[\s*S\d+', re.S)
_ANY_QUOTE = re.compile(r'"([^"]{8,}?)"|“([^”]{8,}?)”', re.S)
OVERLAP_NEEDED = 0.5


def first_quote(answer: str) -> str | None:
    """The first passage the answer quotes, or None when it quotes nothing."""
    for pattern in (_CITED_QUOTE, _ANY_QUOTE):
        found = pattern.search(answer)
        if found:
            return found.group(1) or found.group(2)
    return None


def _tokens(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


def char_overlap(a: str, b: str, min_run: int = 3) -> float:
    """Characters of ``a`` and ``b`` in common, as a share of the shorter one's characters.

    Characters are the letters and digits of both, lowercased: CUAD's gold comes from its plain-text
    file and the quote from the PDF, so line wraps, spacing, quote marks and hyphenation differ. Common
    text is difflib's matching runs of words, at least ``min_run`` words long (or the whole shorter
    text), so scattered "the"s and "of"s count for nothing."""
    x, y = _tokens(a), _tokens(b)
    shorter = min(sum(map(len, x)), sum(map(len, y)))
    if not shorter:
        return 0.0
    need = min(min_run, len(x), len(y))
    matcher = SequenceMatcher(None, x, y, autojunk=False)
    common = sum(sum(len(w) for w in x[m.a: m.a + m.size]) for m in matcher.get_matching_blocks() if m.size >= need)
    return min(1.0, common / shorter)


def best_overlap(answer: str, golds: list[str]) -> float | None:
    """The first quote's best overlap with any gold clause; None when the answer quotes nothing."""
    quote = first_quote(answer)
    if quote is None:
        return None
    return max((char_overlap(quote, g) for g in golds), default=0.0)


# -- FinanceBench: the gold number in the answer ----------------------------------------------------

_SCALES = {"thousand": 1e3, "k": 1e3, "million": 1e6, "millions": 1e6, "mn": 1e6, "m": 1e6, "mm": 1e6,
           "billion": 1e9, "billions": 1e9, "bn": 1e9, "b": 1e9, "trillion": 1e12, "tn": 1e12}
_SCALE = r"(?:thousand|millions?|billions?|trillion|mn|mm|bn|tn|[kmb])\b"
_GOLD = re.compile(
    r"^\s*(?:approximately\s+|about\s+|~\s*)?(?P<neg>[-−])?\s*(?:\$|usd\s*|us\$\s*)?(?P<paren>\()?\s*(?P<num>\d[\d,]*(?:\.\d+)?)\)?"
    r"\s*(?P<pct>%|percent\b|per cent\b)?\s*(?P<scale>" + _SCALE + r")?\s*(?:usd|dollars)?\s*(?:times|x)?\s*\.?\s*$",
    re.IGNORECASE,
)
_NUMBER = re.compile(
    r"(?P<neg>[-−])?(?:\$|usd\s?|us\$\s?)?\s?(?P<paren>\()?(?P<num>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?)\)?"
    r"(?:\s?(?P<pct>%|percent\b|per cent\b))?(?:\s?(?P<scale>" + _SCALE + r"))?",
    re.IGNORECASE,
)
# "(in USD millions)", "in millions", "in thousands of dollars": the unit a bare gold number is in.
_QUESTION_UNIT = re.compile(r"\bin (?:usd |us\$ |\$ ?)?(thousand|million|billion)s?\b|\b(?:usd|\$) ?(thousand|million|billion)s?\b", re.I)


@dataclass(frozen=True)
class GoldNumber:
    value: float  # as the gold writes it, unsigned ("$1577.00" -> 1577.0)
    unit: float  # what one of it is worth: 1e6 for "$1577.00" asked "in USD millions", 1 when unknown
    decimals: int  # as the gold writes it: the rounding an answer's number is brought to
    percent: bool
    scaled: bool  # the unit is known (a scale word in the gold, or the question's "in USD millions")
    text: str


def gold_number(answer: str, question: str = "") -> GoldNumber | None:
    """The number a gold answer is, when it is one ("$1577.00", "24.26", "1.9%", "$8.70 billion");
    None for a gold that is prose ("Yes, the margins have been consistent ...")."""
    found = _GOLD.match(answer.replace("\u00a0", " "))
    if not found:
        return None
    num = found["num"].replace(",", "")
    scale = _SCALES[found["scale"].lower()] if found["scale"] else None
    if scale is None and not found["pct"]:
        unit = _QUESTION_UNIT.search(question)
        if unit:
            scale = {"thousand": 1e3, "million": 1e6, "billion": 1e9}[(unit[1] or unit[2]).lower()]
    # Trailing zeros are FinanceBench's formatting, not its precision: every extracted figure is written
    # with two decimals ("$1577.00" for a table's 1,577; "$8.70" billion for 8,738 million rounded to 8.7).
    decimals = len(num.split(".")[1].rstrip("0")) if "." in num else 0
    return GoldNumber(float(num), scale or 1.0, decimals, bool(found["pct"]), scale is not None, answer.strip())


def answer_numbers(text: str) -> list[tuple[float, bool, bool]]:
    """(unsigned value with its scale word applied, is a percentage, has a scale word) of every number
    in ``text``; citation labels ([S2]) are dropped first, years are numbers and simply do not match."""
    out = []
    for m in _NUMBER.finditer(re.sub(r"\[\s*S\d+(?:\s*[,;]\s*S\d+)*\s*\]", " ", text)):
        value = float(m["num"].replace(",", ""))
        scale = _SCALES.get((m["scale"] or "").lower())
        out.append((value * (scale or 1.0), bool(m["pct"]), scale is not None))
    return out


def number_in_answer(gold: GoldNumber, answer: str) -> bool:
    """Does a number of ``answer`` equal the gold, once brought to the gold's unit and rounding?

    Sign is ignored ("(1,577)" in a cash-flow table is the 1,577 of capital expenditure). When one
    side's unit is known and the other's is not (a bare table cell "1,577" in a table in millions, for
    "$1577.00" asked in USD millions), the bare one may be in thousands, millions or billions; when both
    are known or both unknown, the numbers are compared as they are. A percentage gold is matched by a
    percentage, or by a ratio up to 1.5 times 100 (0.308 for 30.8%)."""
    target = round(gold.value, gold.decimals)
    for value, percent, scaled in answer_numbers(answer):
        if gold.percent:
            candidates = [value] if percent else ([value * 100] if value <= 1.5 else [])
            unit = 1.0
        elif percent:
            continue
        elif scaled == gold.scaled:
            candidates, unit = [value], gold.unit
        else:
            candidates, unit = [value * 1000.0 ** k for k in range(-3, 4)], gold.unit
        if any(math.isclose(round(c / unit, gold.decimals), target, rel_tol=1e-9, abs_tol=1e-9) for c in candidates):
            return True
    return False


# -- one question's outcome, and the report -----------------------------------------------------------


@dataclass
class AnswerOutcome:
    id: str
    dataset: str
    category: str | None  # CUAD's clause category
    kind: str  # the answer kind the question asks for (pipeline.answer_kinds)
    answerable: bool
    status: str  # answered / withheld / refused / error / incomplete
    overlap: float | None = None  # CUAD: the first quote's best overlap with a gold clause
    correct: bool | None = None  # CUAD: shown, and overlap >= OVERLAP_NEEDED
    gold_number: str | None = None  # FinanceBench: the gold, when it is a number
    number_found: bool | None = None  # ... and it appears in the shown answer
    number_in_withheld: bool | None = None  # ... or in the answer that was withheld
    grounded: bool | None = None  # the shown answer's grounding verdict is grounded
    cites_gold_page: bool | None = None
    answer: str = ""  # the answer shown (or withheld), cut to 300 characters for reading the JSON


@dataclass
class CategoryScore:
    category: str
    answerable: int
    correct: int
    unanswerable: int
    refused_unanswerable: int  # unanswerable and refused
    refused_answerable: int  # answerable but refused (a miss)
    withheld: int

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.answerable if self.answerable else None


@dataclass
class AnswerReport:
    reasoner: str
    questions: int
    answered: int
    withheld: int
    refused: int
    errors: int
    unanswerable: int
    refusal_precision: float | None  # of the refusals, the share on unanswerable questions
    refusal_recall: float | None  # of the unanswerable questions, the share refused
    citation_validity: float | None  # of the answers shown, the share the grounding check calls grounded
    cites_gold_page: float | None  # of answers shown to answerable questions, the share citing a gold page
    # CUAD: answerable questions whose first quote overlaps the gold clause >= half the shorter one
    quote_questions: int = 0
    quote_correct: int = 0
    quote_accuracy: float | None = None
    no_quote: int = 0  # shown answers to answerable CUAD questions that quote nothing
    per_category: list[dict[str, Any]] = field(default_factory=list)
    # FinanceBench: questions whose gold answer is a number, and those whose shown answer holds it
    number_questions: int = 0
    number_found: int = 0
    number_accuracy: float | None = None
    number_in_withheld: int = 0
    per_question: list[AnswerOutcome] = field(default_factory=list)


def _share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def summarise_answers(reasoner: str, outcomes: list[AnswerOutcome]) -> AnswerReport:
    refused = [o for o in outcomes if o.status == "refused"]
    shown = [o for o in outcomes if o.status == "answered"]
    unanswerable = [o for o in outcomes if not o.answerable]
    gold_cites = [o.cites_gold_page for o in shown if o.cites_gold_page is not None]
    quoted = [o for o in outcomes if o.answerable and o.category is not None]
    numeric = [o for o in outcomes if o.gold_number is not None]
    categories: dict[str, list[AnswerOutcome]] = defaultdict(list)
    for o in outcomes:
        if o.category is not None:
            categories[o.category].append(o)
    per_category = []
    for name, items in sorted(categories.items()):
        score = CategoryScore(
            name,
            answerable=sum(o.answerable for o in items),
            correct=sum(bool(o.correct) for o in items),
            unanswerable=sum(not o.answerable for o in items),
            refused_unanswerable=sum(not o.answerable and o.status == "refused" for o in items),
            refused_answerable=sum(o.answerable and o.status == "refused" for o in items),
            withheld=sum(o.status == "withheld" for o in items),
        )
        per_category.append({**score.__dict__, "accuracy": score.accuracy})
    return AnswerReport(
        reasoner=reasoner,
        questions=len(outcomes),
        answered=len(shown),
        withheld=sum(o.status == "withheld" for o in outcomes),
        refused=len(refused),
        errors=sum(o.status in ("error", "incomplete") for o in outcomes),
        unanswerable=len(unanswerable),
        refusal_precision=_share(sum(not o.answerable for o in refused), len(refused)),
        refusal_recall=_share(sum(o.status == "refused" for o in unanswerable), len(unanswerable)),
        citation_validity=_share(sum(bool(o.grounded) for o in shown), len(shown)),
        cites_gold_page=_share(sum(gold_cites), len(gold_cites)),
        quote_questions=len(quoted),
        quote_correct=sum(bool(o.correct) for o in quoted),
        quote_accuracy=_share(sum(bool(o.correct) for o in quoted), len(quoted)),
        no_quote=sum(o.status == "answered" and o.overlap is None for o in quoted),
        per_category=per_category,
        number_questions=len(numeric),
        number_found=sum(bool(o.number_found) for o in numeric),
        number_accuracy=_share(sum(bool(o.number_found) for o in numeric), len(numeric)),
        number_in_withheld=sum(bool(o.number_in_withheld) for o in numeric),
        per_question=outcomes,
    )


def _ask_options(q, doc_ids: dict[str, int], scope: str):
    from pipeline.ask import AskOptions

    documents = [str(doc_ids[q.pdf_path])] if scope == "doc" else []
    return AskOptions(collection=q.dataset, documents=documents, record=False)


def score_answer(q, record, golds: list[str], doc_paths: dict[str, tuple[str, int]]) -> AnswerOutcome:
    """One question's outcome from its answer record. ``doc_paths`` maps a document SHA-256 to the
    question file's pdf_path, to tell whether a cited page is a gold page."""
    from pipeline.answer_kinds import answer_kind

    category = (q.meta or {}).get("cuad_category") if q.dataset == "cuad" else None
    out = AnswerOutcome(q.id, q.dataset, category, answer_kind(q.question), q.answerable, record.status,
                        answer=(record.answer if record.status != "withheld" else record.withheld_answer or "")[:300])
    shown = record.status == "answered"
    if shown:
        out.grounded = record.grounding.grounded
        cited = {(doc_paths.get(e.doc_sha256), e.page) for e in record.evidence if e.label in record.citations}
        if q.answerable and q.gold_pages():
            out.cites_gold_page = bool(cited & q.gold_pages())
    if q.answerable and golds and category is not None:
        text = record.answer if shown else ""
        out.overlap = best_overlap(text, golds) if shown else None
        out.correct = shown and out.overlap is not None and out.overlap >= OVERLAP_NEEDED
    gold = gold_number(q.answer or "", q.question) if q.dataset != "cuad" and q.answer else None
    if gold is not None:
        out.gold_number = gold.text
        out.number_found = shown and number_in_answer(gold, record.answer)
        out.number_in_withheld = record.status == "withheld" and number_in_answer(gold, record.withheld_answer or "")
    return out


def evaluate_answers(docket, questions, doc_ids: dict[str, int], root: Path, scope: str, on_question=None) -> AnswerReport:
    """Ask each question as a user would (``ask``, nothing recorded) and score what is shown."""
    from pipeline.ask import ask
    from pipeline.evaluation import gold_texts
    from ingest.extract import sha256_file

    by_sha = {sha256_file(root / pdf)[0]: pdf for pdf in doc_ids}
    outcomes = []
    for q in questions:
        record = ask(docket, q.question, _ask_options(q, doc_ids, scope))
        outcomes.append(score_answer(q, record, gold_texts(q, root), by_sha))
        if on_question:
            on_question(outcomes[-1])
    return summarise_answers(docket.settings.reasoner, outcomes)


# -- reviews: offline verdicts against CUAD's annotation ---------------------------------------------


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.casefold()).strip("-")


@dataclass(frozen=True)
class GoldClause:
    """What CUAD's annotation says of one category in one contract."""

    present: bool  # annotated (an answerable question) or not (an unanswerable one)
    answer: str  # CUAD's answer column ("California", "successive 1 year", "Yes"), "" when absent
    clauses: tuple[str, ...]  # the gold clause texts


def cuad_gold(questions, root: Path) -> dict[tuple[str, str], GoldClause]:
    """(pdf_path, category slug) -> the annotation, from the CUAD questions given."""
    from pipeline.evaluation import gold_texts

    gold = {}
    for q in questions:
        category = (q.meta or {}).get("cuad_category")
        if q.dataset != "cuad" or not category:
            continue
        column = (q.meta or {}).get("cuad_answer_column") or ""
        gold[(q.pdf_path, _slug(category))] = GoldClause(q.answerable, column if q.answerable else "",
                                                         tuple(gold_texts(q, root)) if q.answerable else ())
    return gold


def item_gold(item, pdf_path: str, gold: dict[tuple[str, str], GoldClause]) -> GoldClause | None:
    """The annotation of the CUAD category a checklist item asks about: matched by the item's id or
    title as a slug ("post-termination-services", "Notice period to terminate renewal")."""
    for key in (item.id, _slug(item.title)):
        if (pdf_path, key) in gold:
            return gold[(pdf_path, key)]
    return None


def expected_verdict(item, gold: GoldClause) -> str | None:
    """The verdict the item's rule gives on CUAD's annotation, or None when the gold cannot decide it.

    An item without a rule decides only "not addressed" offline, which agrees when the category is
    not annotated. Absent clause: ``clause_present`` is non-compliant, ``clause_absent`` compliant,
    any other item not addressed. Present: ``clause_present`` compliant, ``clause_absent``
    non-compliant; ``jurisdiction_in`` compares CUAD's answer ("California") with the allowed list;
    duration rules read the days from CUAD's answer ("successive 1 year"), else from the gold clause."""
    from pipeline.answer_kinds import value_span
    from pipeline.review.verdicts import duration_days

    rule = item.rule
    if not gold.present:
        if rule is not None and rule.kind == "clause_present":
            return "non-compliant"
        if rule is not None and rule.kind == "clause_absent":
            return "compliant"
        return "not-addressed"
    if rule is None:
        return None  # present, and no rule: a person judges it
    if rule.kind == "clause_present":
        return "compliant"
    if rule.kind == "clause_absent":
        return "non-compliant"
    if rule.kind == "jurisdiction_in":
        if not gold.answer:
            return None
        return "compliant" if any(a.casefold() in gold.answer.casefold() for a in rule.allowed) else "non-compliant"
    if rule.kind in ("min_duration_days", "max_duration_days"):
        days = duration_days(gold.answer) if gold.answer else None
        for clause in gold.clauses if days is None else ():
            span = value_span("duration", clause)
            days = duration_days(span) if span else None
            if days is not None:
                break
        if days is None:
            return None
        ok = days >= rule.value if rule.kind == "min_duration_days" else days <= rule.value
        return "compliant" if ok else "non-compliant"
    return None


@dataclass
class CellOutcome:
    item: str
    document: str
    verdict: str
    basis: str
    gold: str | None  # "present" / "absent" / None when the question file has no annotation for it
    expected: str | None
    agrees: bool | None


@dataclass
class ReviewReport:
    checklist: str
    cells: int
    decided: int  # cells with a verdict other than needs-review
    coverage: float | None
    with_gold: int  # decided cells whose expected verdict the gold gives
    agree: int
    agreement: float | None
    verdicts: dict[str, int]
    per_item: list[dict[str, Any]]
    per_cell: list[CellOutcome] = field(default_factory=list)


def summarise_review(checklist: str, items: list, cells: list[CellOutcome]) -> ReviewReport:
    decided = [c for c in cells if c.verdict != "needs-review"]
    scored = [c for c in decided if c.agrees is not None]
    per_item = []
    for item in items:
        mine = [c for c in cells if c.item == item.id]
        if not mine:
            continue
        done = [c for c in mine if c.verdict != "needs-review"]
        graded = [c for c in done if c.agrees is not None]
        per_item.append({
            "item": item.id, "rule": item.rule.kind if item.rule else None, "cells": len(mine), "decided": len(done),
            "with_gold": len(graded), "agree": sum(bool(c.agrees) for c in graded),
            "gold_cells": sum(c.gold is not None for c in mine),
        })
    return ReviewReport(
        checklist=checklist, cells=len(cells), decided=len(decided), coverage=_share(len(decided), len(cells)),
        with_gold=len(scored), agree=sum(bool(c.agrees) for c in scored),
        agreement=_share(sum(bool(c.agrees) for c in scored), len(scored)),
        verdicts=dict(Counter(c.verdict for c in cells)), per_item=per_item, per_cell=cells,
    )


def evaluate_review(docket, checklist, questions, doc_ids: dict[str, int], root: Path, on_cell=None) -> ReviewReport:
    """Run every item of ``checklist`` on every document the questions name, as a review cell is run
    (``review_question``, ``ask`` restricted to the document, ``judge``), nothing recorded; score the
    verdicts against the CUAD annotation in the questions."""
    from pipeline.ask import AskOptions, ask
    from pipeline.review.verdicts import judge, review_question

    gold = cuad_gold(questions, root)
    datasets = {q.pdf_path: q.dataset for q in questions}
    cells = []
    for pdf, doc_id in sorted(doc_ids.items()):
        if pdf not in datasets:
            continue
        name = Path(pdf).name
        for item in checklist.items:
            if not item.applies_to.matches(name, datasets[pdf]):
                continue
            question = review_question(item, docket.settings.reasoner)
            record = ask(docket, question, AskOptions(collection=datasets[pdf], documents=[str(doc_id)], record=False))
            judgement = judge(record, docket.settings.reasoner, item)
            annotated = item_gold(item, pdf, gold)
            expected = expected_verdict(item, annotated) if annotated else None
            agrees = None if expected is None or judgement.verdict == "needs-review" else judgement.verdict == expected
            cells.append(CellOutcome(item.id, name, judgement.verdict, judgement.basis,
                                     None if annotated is None else ("present" if annotated.present else "absent"),
                                     expected, agrees))
            if on_cell:
                on_cell(cells[-1])
    return summarise_review(checklist.name, checklist.items, cells)


# -- Markdown ----------------------------------------------------------------------------------------


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def render_answers(a: AnswerReport) -> list[str]:
    lines = [
        "",
        f"Answers ({a.reasoner}): {a.answered} answered, {a.withheld} withheld, {a.refused} refused, {a.errors} errors "
        f"of {a.questions}; {a.unanswerable} unanswerable.",
        "",
        "| refusal precision | refusal recall | citation validity | answer cites a gold page |",
        "|---|---|---|---|",
        f"| {_fmt(a.refusal_precision)} | {_fmt(a.refusal_recall)} | {_fmt(a.citation_validity)} | {_fmt(a.cites_gold_page)} |",
    ]
    if a.quote_questions:
        lines += [
            "",
            f"CUAD first quote overlaps the gold clause (>= {OVERLAP_NEEDED:.0%} of the shorter one's characters): "
            f"{a.quote_correct} of {a.quote_questions} answerable = {_fmt(a.quote_accuracy)} ({a.no_quote} shown answers quote nothing).",
            "",
            "| category | answerable | correct | accuracy | unanswerable | refused (unanswerable) | refused (answerable) | withheld |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for c in a.per_category:
            lines.append(f"| {c['category']} | {c['answerable']} | {c['correct']} | {_fmt(c['accuracy'])} | {c['unanswerable']} | "
                         f"{c['refused_unanswerable']} | {c['refused_answerable']} | {c['withheld']} |")
    if a.number_questions:
        lines += [
            "",
            f"Gold number in the answer shown: {a.number_found} of {a.number_questions} questions whose gold is a number "
            f"= {_fmt(a.number_accuracy)} (in a withheld answer: {a.number_in_withheld}).",
        ]
    return lines


def render_review(r: ReviewReport) -> list[str]:
    verdicts = ", ".join(f"{n} {v}" for v, n in sorted(r.verdicts.items()))
    lines = [
        "",
        f"Review '{r.checklist}' offline: {r.decided} of {r.cells} cells got a verdict = {_fmt(r.coverage)} ({verdicts}); "
        f"{r.agree} of the {r.with_gold} verdicts CUAD's annotation decides agree = {_fmt(r.agreement)}.",
        "",
        "| item | rule | cells | verdict | with gold | agree |",
        "|---|---|---|---|---|---|",
    ]
    for i in r.per_item:
        lines.append(f"| {i['item']} | {i['rule'] or '–'} | {i['cells']} | {i['decided']} | {i['with_gold']} | {i['agree']} |")
    return lines
