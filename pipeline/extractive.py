"""The offline answerer: it quotes the evidence verbatim, or says the documents do not answer.

It is not a language model and never claims to be one: it ranks the sentences of the retrieved
evidence against the question (cosine similarity of the same MiniLM encoder, plus the share of the
question's content words the sentence contains), and answers with the best few sentences, each in
quotes with its [S#] citation. ``embed`` is the encoder's question path (``Encoder.encode_for_question``:
ONNX Runtime, no torch), so answering costs no model load beyond the one that embedded the question. When no sentence clears the support threshold it refuses. Its trace
lists the program's own steps (what it compared and what it chose), labelled as such.
"""

from __future__ import annotations

import re
import threading
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ingest.chunking import sentence_spans
from ingest.lexical import tokenize
from pipeline.clause_match import ClauseProfile, asked_clause, heading_matches, states_clause, states_clause_strongly
from pipeline.answer_kinds import _CORPORATE, _DEFINED_TERM, KIND_WORDS, date_values, kind_rule, question_core, value_spans
from pipeline.table_answers import table_answer
from pipeline.reasoning import CallRecord, ChatTurn, Evidence, ReasonerOutput

NOT_FOUND = "Not found in the documents."
NOTICE = (
    "Docket's extractive answerer quoted the passages below verbatim; it is not a language model and "
    "does not interpret them."
)
# Words of a question that say what kind of answer is wanted rather than what it is about.
_QUESTION_WORDS = frozenset(
    "agreement contract document please give provide answer question details shown state based "
    "relying response information according".split()
)
_MIN_SENTENCE_WORDS = 6  # shorter "sentences" are headings and fragments, not answers
# Kinds whose answer is a value the answerer can put first; the others are answered by quoting.
VALUE_KINDS = frozenset({"amount", "percentage", "date", "duration", "jurisdiction", "party"})
_HEADING_BOOST = 0.12  # added, times the share of the question's words in the heading in force
# Where a contract says who its parties are and when it was made, whatever its wording: the preamble
# ("... by and between A ("Seller") and B ("Buyer")") in its opening. A sentence with the structure a
# question's kind of answer has gets _STRUCTURE_BOOST (times its strength); one on the first page
# _OPENING_BOOST more, for the questions the opening answers (the parties, the date of the agreement).
_STRUCTURE_BOOST = 0.25
_OPENING_BOOST = 0.1
# A question about a known kind of clause (pipeline.clause_match): a sentence with the clause's wording
# gets _CLAUSE_BOOST, one under the clause's heading _CLAUSE_HEADING_BOOST more.
_CLAUSE_BOOST = 0.15
_CLAUSE_HEADING_BOOST = 0.08
_CLAUSE_STRONG_BOOST = 0.1  # ... and one with its operative wording ("hereby grants ... a license") this more
_PREAMBLE = re.compile(r"\b(?:by and between|by and among|between|among|entered into by)\b", re.IGNORECASE)
_PARTIES_QUESTION = re.compile(r"\bwho (?:are|were|is) the part|\bpart(?:y|ies)\b.{0,40}\b(?:signed|sign|entered|execut)", re.IGNORECASE)
@dataclass(frozen=True)
class _Anchor:
    """A date or duration question whose answer sits in a sentence of a known shape."""

    kind: str  # the answer kind it applies to
    question: re.Pattern[str]  # what the question asks
    sentence: re.Pattern[str]  # the words of a sentence that gives that answer
    opening: bool  # the opening (first page) gives it
    periods: bool  # a period ("five (5) years from the Effective Date") answers it
    renewal: bool  # a sentence about renewal may give it (else: a renewal gives the next term, not this one)


def _re(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.IGNORECASE)


_ANCHORS = (
    _Anchor("date", _re(r"\beffective|\bcommenc|\bstart|\bbegin"),
            _re(r"\beffective\b|\bcommenc\w*|\bbegin\w*|\bstart\w*|\bcome into force\b"), True, False, False),
    _Anchor("date", _re(r"\bdate of (?:this|the) (?:contract|agreement)|\bdated\b|\bsigned\b|\bexecuted\b|\bagreement date\b"),
            _re(r"\bdated\b|\bmade\b|\bentered into\b|\bexecuted\b|\bas of\b"), True, False, False),
    # The renewal term: a sentence that renews or extends the agreement.
    _Anchor("duration", _re(r"^(?!.*\bnotice\b).*\brenew"),
            _re(r"\brenew\w*|\bextend\w*|\bextension\b|\bsuccessive\b"), False, True, True),
)
_RECITAL = re.compile(r"^\W*(?:WHEREAS|RECITALS?)\b", re.IGNORECASE)
_PERIOD_STRENGTH = 0.7  # answer_kinds.date_values' strength of a period that fixes a date
# A date the sentence names as this agreement's date: 'July 11, 2006 (the "Effective Date")', 'as of
# May 1, 2019 (hereinafter the "Agreement Date")'. It answers a question about when the agreement is
# dated or takes effect before any other date, and it is worth more than a date merely given.
_DEFINED_DATE = re.compile(
    r"\s*,?\s*\(\s*(?:the\s+|hereinafter\s+(?:(?:called|referred\s+to\s+as)\s+)?(?:the\s+)?|herein\s+)?[\"'“”‘’]*\s*"
    r"(?:Effective|Commencement|Agreement|Execution|Signing|Start)\s+Date\b",
    re.IGNORECASE,
)
_DEFINED_DATE_STRENGTH = 1.2
# "the Purchase Agreement, dated", "Stock Option Plan dated as of": the date that follows dates that document.
_ANOTHER_DOCUMENT = re.compile(
    r"\b(?!This\b|this\b|THIS\b)[A-Z][\w-]*\s+(?:Agreement|Plan|Contract|Lease|Amendment|Note|Letter|Order)s?\)?,?\s+"
    r"(?:dated|made|executed)\s+(?:as\s+of\s+)?(?:the\s+)?$"
)
# Sentence vectors an answerer keeps (384 floats each, about 6 MiB): a warm service is asked about the
# same contracts again and again, and embedding the evidence's sentences is most of an answer's time.
SENTENCE_CACHE_SIZE = 4096


# -- boilerplate: passages and lines that cannot answer a content question ----------------------------

_FOOTER_LINE = re.compile(
    r"^(?:page\s+\d+(?:\s+of\s+\d+)?|-?\s*\d{1,3}\s*-?|\d{1,3}\s+of\s+\d{1,3}|source:\s.*|"
    r"confidential(?:\s+treatment)?(?:\s+requested)?.*|\[\*+\].*omitted.*|table of contents)$",
    re.IGNORECASE,
)
_TOC_LINE = re.compile(r"(?:\.\s?){4,}\s*\d{1,3}\s*$|^(?:item|article|section|part)\s+\w+\.?\s.{3,80}?\s\d{1,3}$", re.IGNORECASE)
_SIGNATURE = re.compile(
    r"\b(?:by|name|title|its|date|signature|print name|authorized signatory)\s*:\s*(?:_{2,}|/s/|\S)|_{4,}|\bIN WITNESS WHEREOF\b|/s/\s",
    re.IGNORECASE,
)
_CERTIFICATION = re.compile(
    r"\bI have reviewed this\b|\bSarbanes-Oxley\b|\b18 U\.S\.C\.?\s+(?:Section\s+)?1350\b|\bSection\s+(?:302|906)\b|"
    r"\b(?:hereby\s+)?certif(?:y|ies),? (?:pursuant|that)\b|\bRule 13a-14|\bRule 15d-14",
    re.IGNORECASE,
)
_COVER = re.compile(
    r"\bUNITED STATES SECURITIES AND EXCHANGE COMMISSION\b|\bCommission file number\b|\bIndicate by check mark\b|"
    r"\b(?:I\.R\.S\.|IRS) Employer Identification\b|\bSecurities registered pursuant to Section 12",
    re.IGNORECASE,
)
_EXHIBIT_INDEX = re.compile(r"\bEXHIBIT INDEX\b|\bIndex to Exhibits\b|\bExhibit\s+(?:No\.|Number)\s+Description\b", re.IGNORECASE)


def boilerplate_passage(text: str, context: str = "") -> str | None:
    """Why a whole passage cannot answer a content question (a table of contents, a cover page, an
    exhibit index, a certification), or None. Structure first: leaders and page numbers, form language."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    toc = sum(bool(_TOC_LINE.search(ln)) for ln in lines)
    if re.search(r"\btable of contents\b", context + "\n" + text[:300], re.IGNORECASE) and toc >= 2 or toc >= 4:
        return "a table of contents"
    if len(_COVER.findall(text)) >= 2:
        return "a cover page"
    if _EXHIBIT_INDEX.search(text) or _EXHIBIT_INDEX.search(context):
        return "an exhibit index"
    if len(_CERTIFICATION.findall(text)) >= 1 and re.search(r"\bcertif", text + context, re.IGNORECASE):
        return "a certification"
    return None


def boilerplate_sentence(sentence: str) -> str | None:
    """Why one sentence is boilerplate (a signature block, certification language), or None."""
    if len(_SIGNATURE.findall(sentence)) >= 2 or re.search(r"\bIN WITNESS\b|\bhave (?:duly )?executed this\b", sentence, re.IGNORECASE):
        return "a signature block"
    if _CERTIFICATION.search(sentence):
        return "a certification"
    if re.search(r"\bPortions denoted with an asterisk have been omitted\b|\brequest for confidential treatment\b", sentence, re.IGNORECASE):
        return "a confidential-treatment legend"
    return None


def _line_key(line: str) -> str:
    return re.sub(r"\d+", "#", " ".join(line.split())).casefold()


def running_lines(evidence: list[Evidence]) -> frozenset[str]:
    """Lines (digits ignored) that recur on several pages of one document among the evidence:
    running headers and footers the retrieved passages carry."""
    pages: dict[str, set[str]] = {}
    counts: Counter[tuple[str, str]] = Counter()
    for ev in evidence:
        key_page = f"{ev.doc_sha256}:{ev.page}"
        for line in ev.text.splitlines():
            key = _line_key(line)
            if len(re.findall(r"[a-z]", key)) >= 6 and key not in pages.setdefault(key_page, set()):
                pages[key_page].add(key)
                counts[(ev.doc_sha256, key)] += 1
    return frozenset(key for (_, key), n in counts.items() if n >= 2)


def _segments(text: str, running: frozenset[str]) -> list[tuple[int, int]]:
    """Spans of ``text`` between its boilerplate lines (footers, page numbers, running headers)."""
    out, start, cursor = [], 0, 0
    for raw in text.split("\n"):
        line = raw.strip()
        if line and (_FOOTER_LINE.match(line) or _line_key(line) in running):
            if cursor > start:
                out.append((start, cursor))
            start = cursor + len(raw) + 1
        cursor += len(raw) + 1
    if len(text) > start:
        out.append((start, len(text)))
    return out


@dataclass
class _Candidate:
    label: str
    sentence: str
    cosine: float
    overlap: float
    heading: float = 0.0  # share of the question's words in the heading in force
    value: str | None = None  # the answer of the wanted kind in this sentence
    structure: float = 0.0  # 0..1: the sentence has the structure of the wanted answer (a preamble, a dated clause)
    opening: bool = False  # on the document's first page, and the question is one the opening answers
    clause: bool = False  # has the wording of the clause the question asks about (clause_match)
    clause_heading: bool = False  # ... and stands under that clause's heading
    clause_strong: bool = False  # ... has the clause's operative wording

    @property
    def lexical(self) -> bool:
        """Shares something with the question besides meaning: a word, the heading, the clause's
        wording, a value of the wanted kind, the answer's structure."""
        return bool(self.overlap > 0 or self.heading > 0 or self.clause or self.value or self.structure > 0)

    @property
    def score(self) -> float:
        return (0.75 * self.cosine + 0.25 * self.overlap + _HEADING_BOOST * self.heading
                + _STRUCTURE_BOOST * self.structure + _OPENING_BOOST * self.opening
                + _CLAUSE_BOOST * self.clause + _CLAUSE_HEADING_BOOST * (self.clause and self.clause_heading)
                + _CLAUSE_STRONG_BOOST * (self.clause and self.clause_strong))


class ExtractiveReasoner:
    name = "extractive"
    notice = NOTICE

    def __init__(
        self,
        embed: Callable[[list[str]], np.ndarray],
        *,
        min_score: float = 0.42,
        min_value_score: float = 0.36,
        max_quotes: int = 3,
        relative_cutoff: float = 0.85,
        min_clause_score: float = 0.30,
        prefilter: bool = True,
    ):
        self.embed = embed
        # A vector may be reused only if it does not depend on the texts it was batched with: true of the
        # fp32 question session (whatever the documents' backend), not of int8, whose activations are
        # scaled per batch.
        encoder = getattr(embed, "__self__", None)
        self._reuse_vectors = encoder is not None and getattr(encoder, "fp32_questions", False) is True
        self._vectors: OrderedDict[str, np.ndarray] = OrderedDict()
        self._vectors_lock = threading.Lock()  # one answerer serves the service's concurrent asks
        self.min_score = min_score
        self.min_value_score = min_value_score  # a sentence holding the wanted kind of answer needs less
        self.max_quotes = max_quotes
        self.relative_cutoff = relative_cutoff  # keep quotes scoring within this share of the best
        self.min_clause_score = min_clause_score  # a sentence with the asked clause's wording needs this
        self.prefilter = prefilter  # embed only the sentences that share something with the question

    def answer(
        self,
        question: str,
        evidence: list[Evidence],
        history: list[ChatTurn] | None = None,
        on_delta=None,
    ) -> ReasonerOutput:
        kind, rule = kind_rule(question)
        core = question_core(question)
        profile = asked_clause(question)
        steps = [
            "Program steps of Docket's extractive answerer (not a language model's reasoning).",
            f"1. Answer wanted: {kind} (question rule: {rule})"
            + (f"; clause asked about: {profile.name}." if profile else "."),
        ]
        table = table_answer(question, evidence, self._embed)  # a figure read from, or computed on, statement cells
        if table is not None:
            return self._output("answered", table.answer, steps + table.steps, on_delta, citations=table.citations)
        candidates, skipped = self._candidates(question, core, kind, evidence, profile)
        steps.append(
            f"2. Split {len(evidence)} evidence passages into sentences; skipped as boilerplate: "
            + (", ".join(f"{n} {why}" for why, n in skipped.items()) if skipped else "none") + "."
        )
        steps.append(
            f"3. Scored {len(candidates)} sentences: 0.75 x cosine similarity to the question (MiniLM) + 0.25 x "
            f"share of the question's content words present + {_HEADING_BOOST} x share of them in the heading in force."
        )
        ranked = sorted(candidates, key=lambda c: c.score, reverse=True)
        for c in ranked[:5]:
            steps.append(
                f"   {c.label} score {c.score:.3f} (cosine {c.cosine:.3f}, words {c.overlap:.2f}, heading {c.heading:.2f}"
                f"{', value ' + repr(c.value) if c.value else ''}{', clause wording' if c.clause else ''}"
                f"{', operative wording' if c.clause_strong else ''}{', clause heading' if c.clause and c.clause_heading else ''}"
                f"): {c.sentence[:90]!r}"
            )
        best = ranked[0].score if ranked else 0.0
        if kind in VALUE_KINDS:
            with_value = [c for c in ranked if c.value and c.score >= self.min_value_score]
            if profile is not None:
                # The value of a clause is read from a sentence stating that clause: a warranty's
                # duration from a warranty, not from the force-majeure sentence beside it.
                with_value = [c for c in with_value if c.clause]
            # A sentence with the structure the answer has (a preamble naming the parties, a sentence
            # dating this agreement) answers before one that only holds a value of the kind, and one
            # that names its date as the agreement's (_DEFINED_DATE) before any other.
            with_value = ([c for c in with_value if c.structure >= _DEFINED_DATE_STRENGTH]
                          or [c for c in with_value if c.structure > 0] or with_value)
            if not with_value:
                said = _shorten(core)
                reason = f"No {kind} found in the {len(evidence)} sources for '{said}'."
                steps.append(f"4. No sentence scoring at least {self.min_value_score} holds {KIND_WORDS[kind]}: refused.")
                return self._output("refused", f"{NOT_FOUND} {reason}", steps, on_delta)
            top = with_value[0]
            others = [c for c in _distinct(ranked) if c.score >= max(self.min_score, top.score * self.relative_cutoff)
                      and c.sentence != top.sentence and c.value][: self.max_quotes - 1]
            steps.append(f"4. Answer {top.value!r} read from {top.label} with the kind's pattern; quoted its sentence"
                         + (f" and {len(others)} more." if others else "."))
            lines = [f"{top.value} [{top.label}]", f"{_quote(top.sentence)} [{top.label}]"]
            lines += [f"{_quote(c.sentence)} [{c.label}]" for c in others]
            return self._output("answered", "\n".join(lines), steps, on_delta,
                                citations=_unique([top.label] + [c.label for c in others]))
        if profile is not None:
            return self._answer_clause(profile, core, ranked, evidence, steps, on_delta)
        if best < self.min_score:
            steps.append(f"4. Best score {best:.3f} is below the support threshold {self.min_score}: refused.")
            reason = f"No passage of the {len(evidence)} sources scored as addressing '{_shorten(core)}'."
            return self._output("refused", f"{NOT_FOUND} {reason}", steps, on_delta)
        chosen = [c for c in ranked if c.score >= max(self.min_score, best * self.relative_cutoff)]
        chosen = _distinct(chosen)[: self.max_quotes]
        steps.append(
            f"4. Quoted {len(chosen)} sentence(s) scoring at least {max(self.min_score, best * self.relative_cutoff):.3f}."
        )
        answer = "\n".join(f"{_quote(c.sentence)} [{c.label}]" for c in chosen)
        return self._output("answered", answer, steps, on_delta, citations=_unique(c.label for c in chosen))

    def _answer_clause(self, profile: ClauseProfile, core: str, ranked: list[_Candidate], evidence: list[Evidence],
                       steps: list[str], on_delta) -> ReasonerOutput:
        """A question about a known kind of clause: quote the best sentences that have the clause's
        wording; refuse, saying what was looked for, when none has it or none scores enough."""
        stating = [c for c in ranked if c.clause]
        if not stating or stating[0].score < self.min_clause_score:
            why = (f"no sentence has the wording of {profile.looks_for}" if not stating else
                   f"the best sentence with its wording scores {stating[0].score:.3f}, below {self.min_clause_score}")
            steps.append(f"4. Looked for {profile.looks_for} ({profile.name}): {why}; refused.")
            reason = f"No passage of the {len(evidence)} sources states {profile.looks_for}."
            return self._output("refused", f"{NOT_FOUND} {reason}", steps, on_delta)
        cutoff = max(self.min_clause_score, stating[0].score * self.relative_cutoff)
        chosen = _distinct([c for c in stating if c.score >= cutoff])[: self.max_quotes]
        steps.append(f"4. Quoted {len(chosen)} sentence(s) with the wording of {profile.looks_for} ({profile.name}), "
                     f"scoring at least {cutoff:.3f}.")
        answer = "\n".join(f"{_quote(c.sentence)} [{c.label}]" for c in chosen)
        return self._output("answered", answer, steps, on_delta, citations=_unique(c.label for c in chosen))

    def _candidates(
        self, question: str, core: str, kind: str, evidence: list[Evidence], profile: ClauseProfile | None = None
    ) -> tuple[list[_Candidate], Counter[str]]:
        sentences: list[tuple[Evidence, str]] = []
        skipped: Counter[str] = Counter()
        running = running_lines(evidence)
        for ev in evidence:
            why = boilerplate_passage(ev.text, ev.context)
            if why:
                skipped[why] += 1
                continue
            for seg_start, seg_end in _segments(ev.text, running):
                segment = ev.text[seg_start:seg_end]
                for start, end in _sentence_or_line_spans(segment, kind):
                    # Whitespace is folded (PDF line wraps); the words are the source's, verbatim.
                    sentence = re.sub(r"\s+", " ", segment[start:end]).strip()
                    if len(sentence.split()) < _MIN_SENTENCE_WORDS and not (kind == "amount" and _is_table_row(sentence)):
                        continue
                    why = boilerplate_sentence(sentence)
                    if why:
                        skipped[why] += 1
                        continue
                    sentences.append((ev, sentence))
        if not sentences:
            return [], skipped
        terms = {t for t in tokenize(core) if t not in _QUESTION_WORDS}
        parties = kind == "party" and bool(_PARTIES_QUESTION.search(core))
        anchor = next((a for a in _ANCHORS if a.kind == kind and a.question.search(core)), None)
        notice = kind == "duration" and bool(re.search(r"\bnotice\b", core, re.IGNORECASE))
        out = []
        for ev, sentence in sentences:
            words = set(tokenize(sentence))
            overlap = len(terms & words) / len(terms) if terms else 0.0
            heading = len(terms & set(tokenize(ev.context))) / len(terms) if terms and ev.context else 0.0
            value = _nearest_value(kind, sentence, terms, notice) if kind in VALUE_KINDS else None
            structure, opening = 0.0, False
            if parties:
                named = _party_names(sentence)
                if _PREAMBLE.search(sentence) and len(named) >= 2:
                    structure, value = 1.0, "; ".join(named)
                opening = ev.page == 1
            elif anchor is not None:
                # When an agreement is dated or takes effect is a date, or a date by reference ("the last
                # date of signature"); a period from it ("five (5) years from the Effective Date") is when
                # its term ends. A recital, or a date that dates another document ("the Purchase Agreement,
                # dated July 4, 2000"), does not date this one; a renewal gives the next term.
                if kind == "date":
                    found = [(start, text, _DEFINED_DATE_STRENGTH if _DEFINED_DATE.match(sentence, start + len(text)) else strength)
                             for start, text, strength in date_values(sentence)
                             if (anchor.periods or strength != _PERIOD_STRENGTH) and not _dates_another_document(sentence, start)]
                    found.sort(key=lambda f: -f[2])  # stable: the sentence's order among equals
                else:
                    found = _nearest_to_anchor(kind, sentence, anchor)
                if (found and anchor.sentence.search(sentence) and not _RECITAL.match(sentence)
                        and (anchor.renewal or not re.search(r"\brenew", sentence, re.IGNORECASE))):
                    structure, value = found[0][2], found[0][1]
                opening = anchor.opening and ev.page == 1
            clause = profile is not None and states_clause(profile, sentence)
            under = clause and heading_matches(profile, ev.context)
            strong = clause and states_clause_strongly(profile, sentence)
            out.append(_Candidate(ev.label, sentence, 0.0, overlap, heading, value, structure, opening,
                                  clause, under, strong))
        # Only sentences that share something with the question (a content word, the heading's words,
        # the clause's wording, a value of the wanted kind) are embedded: embedding is most of an
        # answer's cost, and a sentence sharing nothing with the question is seldom the answer.
        if self.prefilter:
            out = [c for c in out if c.lexical]
        if out:
            vectors = self._embed([core] + [c.sentence for c in out])
            for c, cosine in zip(out, vectors[1:] @ vectors[0], strict=True):
                c.cosine = float(cosine)
        return out, skipped

    def _embed(self, texts: list[str]) -> np.ndarray:
        """``embed(texts)``, the vectors of texts met before taken from the cache where they may be reused."""
        if not self._reuse_vectors:
            return self.embed(texts)
        with self._vectors_lock:
            known = {t: self._vectors[t] for t in texts if t in self._vectors}
            for t in known:
                self._vectors.move_to_end(t)
        todo = list(dict.fromkeys(t for t in texts if t not in known))
        if todo:
            fresh = dict(zip(todo, self.embed(todo), strict=True))
            with self._vectors_lock:
                self._vectors.update(fresh)
                while len(self._vectors) > SENTENCE_CACHE_SIZE:
                    self._vectors.popitem(last=False)
            known.update(fresh)
        return np.stack([known[t] for t in texts])

    def _output(self, status, answer, steps, on_delta, citations=None) -> ReasonerOutput:
        trace = "\n".join(steps)
        if on_delta:
            on_delta("trace", trace)
            on_delta("answer", answer)
        return ReasonerOutput(
            status=status,
            answer=answer,
            trace=trace,
            trace_format="program-steps",
            citations=citations or [],
            call=CallRecord(
                provider="docket-extractive",
                parameters={"min_score": self.min_score, "min_value_score": self.min_value_score,
                            "min_clause_score": self.min_clause_score, "max_quotes": self.max_quotes},
            ),
        )


def _party_names(sentence: str) -> list[str]:
    """The parties a preamble names: company names ("Driven Deliveries, Inc."), else the defined terms
    they are given ("(the “Distributor”)"), each as written, in order."""
    names = [m.group(0).strip(" ,") for m in _CORPORATE.finditer(sentence)]
    if len(names) < 2:
        names += [m.group(0).strip(" ()") for m in _DEFINED_TERM.finditer(sentence)]
    return list(dict.fromkeys(n for n in names if n))[:4]


def _nearest_to_anchor(kind: str, sentence: str, anchor: _Anchor) -> list[tuple[int, str, float]]:
    """The values of ``kind`` in the sentence nearest first to the anchor's words ("automatic annual
    renewals": the renewal is annual, not the initial "two (2) years" the sentence starts with); a
    notice period ("sixty (60) days prior to the expiration") is not a term."""
    plain = " ".join(sentence.split())
    marks = [m.start() for m in anchor.sentence.finditer(plain)]
    spans = [(start, text) for start, text in value_spans(kind, plain)
             if not re.search(r"\bnoti(?:ce|fication)\b", text, re.IGNORECASE)
             and not re.match(r"\s*(?:\([^)]*\)\s*)?(?:prior|before|in advance|notice)\b", plain[start + len(text):], re.IGNORECASE)]
    if not marks:
        return []
    return sorted(((start, text, 1.0) for start, text in spans), key=lambda v: min(abs(v[0] - m) for m in marks))


def _dates_another_document(sentence: str, offset: int) -> bool:
    """Whether the date at ``offset`` of the (whitespace-folded) sentence dates another document."""
    plain = " ".join(sentence.split())
    return bool(_ANOTHER_DOCUMENT.search(plain[max(0, offset - 80): offset]))


def _quote(sentence: str) -> str:
    """The sentence in double quotes: curly ones when it holds straight ones ("short"), so grounding
    reads one quoted passage, not two."""
    return f"“{sentence}”" if '"' in sentence else f'"{sentence}"'


def _nearest_value(kind: str, sentence: str, terms: set[str], notice: bool = False) -> str | None:
    """Of the values of ``kind`` in the sentence, the one with most of the question's words near it
    (the 60 characters either side); the first on a tie. A date question takes the strongest date
    first (a calendar date over a period over a date by reference, ``answer_kinds.date_values``); a
    question about a notice period (``notice``) takes a period of notice first ("sixty (60) days' prior
    written notice", "ninety (90) days prior to the end of the term") over the term it is given in."""
    if kind == "date":
        dates = date_values(sentence)
        strongest = [(start, text) for start, text, strength in dates if strength == dates[0][2]] if dates else []
        found = strongest
    else:
        found = value_spans(kind, sentence)
        if notice:
            found = [(start, text) for start, text in found if _is_notice_period(sentence, start, text)] or found
    if len(found) <= 1:
        return found[0][1] if found else None

    def near(item: tuple[int, str]) -> int:
        start, value = item
        window = sentence[max(0, start - 60): start + len(value) + 60]
        return len(terms & set(tokenize(window)))

    return max(found, key=near)[1]


# A period that ends an abbreviation, not a sentence: "Dec. 8, 2005", "Acme Co. (the Seller)", "No. 5",
# "Mr. Smith". The chunker's sentence rule splits there (chunk boundaries need no more); a quote may not.
# An abbreviation that can end a sentence ("... and Acme Inc. The term ...") is joined only to what
# cannot start one: a number or a parenthesis.
_TITLE_END = re.compile(r"\b(?:Mr|Mrs|Ms|Dr)\.$")
_ABBREVIATION_END = re.compile(
    r"(?:\b(?:Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sept?|Oct|Nov|Dec|No|Nos|Inc|Corp|Co|Ltd|Sec|Art|Para)|\b(?:[A-Z]\.){1,3}[A-Z])\.$"
)


def _whole_sentences(text: str, spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """``spans`` with each one that ends in an abbreviation joined to the next."""
    out: list[tuple[int, int]] = []
    for start, end in spans:
        if out and "\n\n" not in text[out[-1][1]:start]:
            before = text[out[-1][0]:out[-1][1]]
            if _TITLE_END.search(before) or (_ABBREVIATION_END.search(before) and text[start] in "0123456789("):
                out[-1] = (out[-1][0], end)
                continue
        out.append((start, end))
    return out


_NOTICE_PERIOD = re.compile(r"(?:notice|notification)$", re.IGNORECASE)
_COUNTED_BACK = re.compile(r"\s*(?:['’]s?\s+)?(?:\w+\s+){0,2}(?:prior to|before|in advance of|preceding)\b", re.IGNORECASE)


def _is_notice_period(sentence: str, start: int, value: str) -> bool:
    """A duration given as notice: it ends in "notice", or it is counted back from an event."""
    plain = " ".join(sentence.split())
    return bool(_NOTICE_PERIOD.search(value) or _COUNTED_BACK.match(plain, start + len(value)))


def _sentence_or_line_spans(text: str, kind: str) -> list[tuple[int, int]]:
    """Sentences; for an amount, also each line of a table (a label and its numbers on one line)."""
    spans = _whole_sentences(text, sentence_spans(text))
    if kind == "amount":
        cursor = 0
        for raw in text.split("\n"):
            if _is_table_row(raw.strip()):
                spans.append((cursor, cursor + len(raw)))
            cursor += len(raw) + 1
    return spans


def _is_table_row(line: str) -> bool:
    return bool(re.match(r"^[A-Za-z(][^\d]{2,}", line)) and len(re.findall(r"\(?\$?\s?\d[\d,]*(?:\.\d+)?\)?", line)) >= 1


def _shorten(text: str, limit: int = 80) -> str:
    text = " ".join(text.split()).rstrip("?")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _normalise(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().lower()


def _distinct(candidates: list[_Candidate]) -> list[_Candidate]:
    """Overlapping chunks repeat sentences; quote each sentence once."""
    seen, out = set(), []
    for c in candidates:
        key = _normalise(c.sentence)
        if key not in seen:
            seen.add(key)
            out.append(c)
    return out


def _unique(labels) -> list[str]:
    return list(dict.fromkeys(labels))
