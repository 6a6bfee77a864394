"""What kind of answer a question asks for, and whether an answer's text contains one.

A small, ordered rule set over the question's words (docs/reasoning.md "Addresses the question"
lists it). Grounding uses it to tell an answer that is verbatim but beside the point (a page footer,
a filing's certification, a table header) from one that answers; the offline answerer can use the
same rules to look for the wanted kind in its evidence.

Kinds: ``amount``, ``percentage`` (a rate: "6.5%", "LIBOR plus 2%"), ``date``, ``duration``, ``jurisdiction``, ``party``, ``yes_no_clause``, ``list``,
and ``unspecified`` when no rule matches (then nothing is checked and the report says so).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

AnswerKind = Literal["amount", "percentage", "date", "duration", "jurisdiction", "party", "yes_no_clause", "list", "unspecified"]

# How the kind is named in a sentence: "it does not state a duration".
KIND_WORDS: dict[str, str] = {
    "amount": "an amount",
    "percentage": "a percentage or rate",
    "date": "a date",
    "duration": "a duration",
    "jurisdiction": "a governing law or jurisdiction",
    "party": "a party",
    "yes_no_clause": "a clause that says whether",
    "list": "a list",
    "unspecified": "an answer of a known kind",
}


@dataclass(frozen=True)
class _Rule:
    kind: AnswerKind
    pattern: re.Pattern[str]
    says: str  # the rule in words, for docs and the report


def _rule(kind: AnswerKind, pattern: str, says: str) -> _Rule:
    return _Rule(kind, re.compile(pattern, re.IGNORECASE), says)


# First match wins. Rules on how the question starts come first: "How much notice" is a duration
# although "how much" usually asks for an amount, "Is there a cap" asks whether a clause exists
# although "cap" usually asks for an amount.
QUESTION_RULES: tuple[_Rule, ...] = (
    _rule("duration", r"^(?:how long|how much (?:notice|time)|for how long|how many (?:business |calendar )?(?:days|weeks|months|years))\b",
          "starts 'how long', 'how much notice/time', 'how many days/weeks/months/years'"),
    _rule("date", r"^(?:when|(?:on|by|as of) what date|what date|which date|on which date)\b", "starts 'when', 'what date', 'on what date'"),
    _rule("amount", r"^how (?:much|many)\b", "starts 'how much' or 'how many' (other than days, weeks, ...)"),
    _rule("party", r"^(?:who|whom|whose|which (?:party|parties|company|entity|companies|entities))\b", "starts 'who', 'which party'"),
    _rule("list", r"^(?:list|name all|enumerate|identify all)\b", "starts 'list', 'name all', 'enumerate'"),
    _rule("yes_no_clause", r"^(?:is|are|does|do|did|can|could|may|must|shall|should|will|would|has|have|was|were|whether)\b",
          "starts 'is/are/does/do/can/may/must/shall/will/has/have/was/were' (a yes/no question about a clause)"),
    _rule("jurisdiction", r"\b(?:governing law|governed by|law (?:governs|that governs|applies)|whose laws?|which (?:state|country|jurisdiction)(?:'s|/country's)?\s*(?:laws?)?|which (?:laws?|courts?)|jurisdiction|venue|choice of law)\b",
          "mentions 'governing law', 'which law', 'which state/country', 'jurisdiction', 'venue'"),
    _rule("date", r"\b(?:what is the (?:effective |agreement |expiration |termination |closing )?date|date (?:of|when|on which)|(?:effective|expiration|agreement|closing) date)\b",
          "mentions 'what is the date', 'date of', 'effective/expiration date'"),
    _rule("duration", r"\b(?:notice period|period of notice|how long|duration|(?:initial |renewal )?term\b(?! sheet)|length of|warranty period|cure period|lock-?up period)",
          "mentions 'notice period', 'duration', 'term', 'length of'"),
    # A rate is asked for as a rate: "the interest rate" is not answered by "a consulting rate of $18,000".
    _rule("percentage", r"\b(?:interest rate|rate of interest|interest (?:is|accrues|shall accrue)|percentage|percent|per cent|"
          r"(?:tax|growth|discount|royalty|commission|default|annual|effective|margin) rate|apr|basis points)\b",
          "mentions 'interest rate', 'percentage', 'percent', 'tax/growth/royalty/... rate'"),
    _rule("amount", r"\b(?:amount|revenue|revenues|sales|income|expenditure|expenditures|capex|cost|costs|price|fee|fees|payment|royalt(?:y|ies)|"
          r"cash flow|earnings|eps|margin|ratio|rate|percentage|percent|dividend|debt|assets|liabilities|equity|value|total|cap|budget|salary|compensation|"
          r"turnover|growth|profit|loss|spend(?:ing)?|balance|ppne|pp&e|ebitda|cash|inventor(?:y|ies)|expenses?|capital|net \w+)\b",
          "mentions an amount word: amount, revenue, expenditure, cost, price, fee, margin, ratio, rate, ..."),
    _rule("party", r"\b(?:parties|party|counterparty|licensor|licensee|signator(?:y|ies)|name of the (?:company|entity))\b", "mentions 'party', 'parties', 'licensor', ..."),
    _rule("list", r"^(?:what|which) (?:are|were) the\b|\bwhich \w+(?: \w+)? (?:are|were)\b", "starts 'what are the' or 'which ... are'"),
)

# A question often starts with where to look ("In the NETGEAR DISTRIBUTOR AGREEMENT (NETGEAR): ...",
# "Using the cash flow statement, answer ...: how much ..."): the rules read what follows the last colon
# of such a lead-in, and the whole question when there is none.
_LEAD_IN = re.compile(r"^[^?]{0,300}:\s+(?=\S)")
_POLITE = re.compile(r"^(?:please|kindly|tell me|can you tell me|could you tell me)\s+", re.IGNORECASE)


def _question_core(question: str) -> str:
    text = " ".join(question.split())
    # The question proper is the sentence with the question mark; instructions around it are dropped.
    # A new sentence starts with a capital: "a licensee (incl. sublicensor) and ..." is one question.
    sentences = re.split(r"(?<=[?.!])\s+(?=[A-Z\"“(])", text)
    asked = [s for s in sentences if s.endswith("?")]
    core = asked[0] if asked else text
    lead = _LEAD_IN.match(core)
    if lead and not core[: lead.end()].rstrip().endswith("?"):
        core = core[lead.end():]
    return _POLITE.sub("", core.strip())


def answer_kind(question: str) -> AnswerKind:
    """The kind of answer ``question`` asks for (the first rule of ``QUESTION_RULES`` that matches)."""
    return kind_rule(question)[0]


def kind_rule(question: str) -> tuple[AnswerKind, str]:
    """The kind and the rule that decided it, in words (for the record)."""
    core = _question_core(question)
    for rule in QUESTION_RULES:
        if rule.pattern.search(core):
            return rule.kind, rule.says
    return "unspecified", "no rule matched"


# -- what an answer of each kind looks like --------------------------------------------------------

_NUMBER_WORDS = (
    "one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen twenty thirty forty fifty sixty seventy eighty ninety hundred thousand "
    "a an several"
).split()
_COUNT = r"(?:\d+(?:[.,]\d+)?|(?:" + "|".join(_NUMBER_WORDS) + r")(?:[\s-](?:" + "|".join(_NUMBER_WORDS) + r"))*)"
_TIME_UNIT = r"(?:business |calendar |working )?(?:days?|weeks?|months?|years?|quarters?|hours?)"
# The count starts a word: not the "an" of "than thirty (30) days".
_DURATION = re.compile(
    r"\b" + _COUNT + r"(?:\s*\(\s*\d+\s*\))?\s*[-\s]?" + _TIME_UNIT + r"\b"
    r"|\b(?:perpetual(?:ly)?|indefinite(?:ly)?|in perpetuity|until terminated|annual(?:ly)?|month-to-month|year-to-year)\b",
    re.IGNORECASE,
)
_MONTH = r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)"
_DATE = re.compile(
    r"\b" + _MONTH + r"\.?\s+\d{1,2}(?:st|nd|rd|th)?\s?,?\s+\d{4}\b"
    r"|\b\d{1,2}(?:st|nd|rd|th)?\s+(?:day\s+of\s+)?" + _MONTH + r",?\s+\d{4}\b"
    r"|\b\d{4}-\d{2}-\d{2}\b|\b\d{1,2}[/.]\d{1,2}[/.]\d{2,4}\b"
    r"|\b" + _MONTH + r",?\s+\d{4}\b"
    r"|\b(?:19|20)\d{2}\b"
    r"|\b(?:effective date|date (?:of|hereof)|upon (?:execution|signing)|date first (?:written|above)|first date (?:above )?written)\b",
    re.IGNORECASE,
)
_CURRENCY = r"(?:[$€£¥₹]|\b(?:usd|eur|gbp|chf|jpy|us\$|rmb|cad|aud)\b)"
_AMOUNT = re.compile(
    _CURRENCY + r"\s?\(?-?\d"
    r"|\d(?:[\d,.]*\d)?\s?(?:%|percent\b|per cent\b|basis points\b|bps\b|(?:thousand|million|billion|trillion|mn|bn|k)\b|"
    r"(?:dollars|euros|pounds|cents|shares|units|times)\b|x\b)"
    r"|\b(?:" + "|".join(_NUMBER_WORDS) + r")\s+(?:dollars|euros|pounds|percent|per cent)\b"
    r"|(?<![\w.,])\(?\d{1,3}(?:,\d{3})+(?:\.\d+)?\)?"  # a table cell: 1,577 or (1,577)
    r"|(?<![\w.,])\d+\.\d+\b",  # a ratio or a rate: 24.26, 0.67
    re.IGNORECASE,
)
_PERCENT = re.compile(
    r"\(?-?\d(?:[\d,.]*\d)?\)?\s?(?:%|percent\b|per cent\b|basis points\b|bps\b)"
    r"|\b(?:" + "|".join(_NUMBER_WORDS) + r")(?:[\s-]\w+)?\s+(?:percent|per cent)\b"
    r"|\b(?:prime|libor|sofr|euribor|base)(?:\s+rate)?\s*(?:plus|\+)\s*\d",
    re.IGNORECASE,
)
# A number that names where something is, not how much: "page 12", "Section 4.2", "Form 10-K".
_REFERENCE_NUMBER = re.compile(
    r"\b(?:page|p\.|pp\.|section|sections|§|article|clause|exhibit|schedule|item|note|form|rule|part|annex|appendix)\s*\d[\d.\-a-z]*",
    re.IGNORECASE,
)
_US_STATES = (
    "Alabama Alaska Arizona Arkansas California Colorado Connecticut Delaware Florida Georgia Hawaii Idaho "
    "Illinois Indiana Iowa Kansas Kentucky Louisiana Maine Maryland Massachusetts Michigan Minnesota "
    "Mississippi Missouri Montana Nebraska Nevada Ohio Oklahoma Oregon Pennsylvania Tennessee Texas Utah "
    "Vermont Virginia Washington Wisconsin Wyoming"
).split() + [
    "New Hampshire", "New Jersey", "New Mexico", "New York", "North Carolina", "North Dakota", "Rhode Island",
    "South Carolina", "South Dakota", "West Virginia", "District of Columbia", "Puerto Rico",
]
_COUNTRIES = (
    "England Wales Scotland Ireland France Germany Italy Spain Portugal Netherlands Belgium Luxembourg "
    "Switzerland Austria Sweden Norway Denmark Finland Poland Greece Canada Mexico Brazil Argentina Chile "
    "China Japan Korea India Singapore Australia Israel Bermuda Cayman Ontario Quebec Alberta Taiwan Malaysia "
    "Russia Turkey Thailand Indonesia Philippines Vietnam Cyprus Malta Liechtenstein Jersey Guernsey"
).split() + [
    "United States", "United Kingdom", "Hong Kong", "New Zealand", "South Africa", "British Columbia",
    "British Virgin Islands", "Cayman Islands", "Isle of Man", "European Union", "U.S.A", "USA", "U.K.",
]
_PLACE = re.compile(r"\b(?:" + "|".join(re.escape(n) for n in sorted(_US_STATES + _COUNTRIES, key=len, reverse=True)) + r")\b")
_JURISDICTION = re.compile(
    r"\blaws? of (?:the )?[A-Z]\w+|\bcourts? (?:of|in|located in|sitting in) (?:the )?[A-Z]\w+|\b(?:federal|state) law\b",
)
# A company name ending in its legal form, also in capitals ("VIVINT SOLAR, INC.") and with the small
# words names hold ("Fruit of the Earth, Inc.").
_CORPORATE = re.compile(
    r"\b[A-Z][\w&.,'-]*(?:\s+(?:(?:of|the|and|&|de|du|von)\s+)?[A-Z][\w&.,'-]*)*,?\s+(?:Inc|Incorporated|LLC|L\.L\.C|Ltd|Limited|Corp|Corporation|Co|Company|"
    r"LLP|LP|L\.P|PLC|plc|GmbH|AG|S\.A|SA|N\.A|B\.V|N\.V|S\.p\.A|Pty|AB|AS|Trust|Bank|Group|Holdings|"
    r"INC|INCORPORATED|LTD|LIMITED|CORP|CORPORATION|COMPANY|HOLDINGS|GROUP|TRUST|BANK)\b\.?"
)
_DEFINED_TERM = re.compile(r"[“\"(]\s*(?:the\s+)?[“\"]?[A-Z][\w-]*(?:\s+[A-Z][\w-]*){0,3}[”\"]\s*\)?")
_NAME_RUN = re.compile(r"(?<![.!?]\s)(?<!^)\b[A-Z][a-z]+(?:\s+(?:of\s+|and\s+|&\s+)?[A-Z][a-z]+)+\b")
_ROLE = re.compile(
    r"\b(?:the\s+)?(?:Company|Consultant|Distributor|Licensor|Licensee|Supplier|Customer|Client|Vendor|Buyer|Seller|"
    r"Purchaser|Contractor|Provider|Reseller|Franchisor|Franchisee|Partner|Employer|Employee|Executive|Agent|Manufacturer|"
    r"Sponsor|Affiliate|Developer|Publisher|Lender|Borrower|Landlord|Tenant|Parties)\b"
)
_CLAUSE_WORDS = re.compile(
    r"\b(?:shall|may|must|will|agrees?|agreed|entitled|right|rights|obligat\w+|required?|requires|prohibit\w*|permit\w*|"
    r"restrict\w*|not|no|neither|nor|exclusive\w*|covenants?|warrants?|grants?|granted|consent|waive\w*|liable|liability|"
    r"terminat\w+|yes|none)\b",
    re.IGNORECASE,
)
_LIST_SEPARATORS = re.compile(r"[;,]|\band\b|\bor\b|\n|\(\s*(?:[a-h]|i{1,3}|iv|v)\s*\)", re.IGNORECASE)


# Capitalised runs that name a part of a document, not a party: "Consulting Agreement", "Table of Contents".
_DOCUMENT_WORDS = frozenset(
    "agreement contract amendment addendum page exhibit section article schedule annex appendix table contents "
    "form report statement statements notes item part confidential treatment request index signature signatures "
    "title name date effective term terms consulting distributor strategic alliance services annual quarterly".split()
)


class _Found:
    def __init__(self, text: str) -> None:
        self._text = text

    def group(self, _: int = 0) -> str:
        return self._text


def _person_name(text: str) -> _Found | None:
    """A run of capitalised words that is a name (not only document words like "Consulting Agreement")."""
    for match in _NAME_RUN.finditer(text):
        words = [w.casefold() for w in re.findall(r"[A-Za-z]+", match.group(0)) if w not in ("of", "and")]
        if any(w not in _DOCUMENT_WORDS for w in words):
            return _Found(match.group(0))
    return None


def _without_references(text: str) -> str:
    return _REFERENCE_NUMBER.sub(" ", text)


# Words of a yes/no question that do not say what it is about.
_QUESTION_STOPWORDS = frozenset(
    "the a an is are does do did can could may must shall should will would has have was were whether there any "
    "this that these those contract agreement document party parties counterparty one other either each such "
    "of to for in on by with from or and as at be been being it its their his her under upon including includes "
    "include contain contains clause provision provide providing provides based data certain some all also than "
    "which what who when where how if not no into out about after before during ends end".split()
)


def _stem(word: str) -> str:
    return word.casefold()[:5]


def topic_words(question: str) -> set[str]:
    """The question's content words (as 5-letter stems): what a yes/no question is about."""
    core = _question_core(question)
    return {_stem(w) for w in re.findall(r"[^\W\d_]{3,}", core) if w.casefold() not in _QUESTION_STOPWORDS}


@dataclass(frozen=True)
class KindCheck:
    """Whether an answer has the kind of answer its question asks for."""

    kind: AnswerKind
    rule: str  # the question rule that decided the kind
    found: str | None  # the piece of the answer that is of that kind
    addresses: bool | None  # None: the kind is unspecified, so it was not checked

    def to_dict(self) -> dict:
        return {"kind": self.kind, "rule": self.rule, "found": self.found, "addresses": self.addresses}


def check_kind(question: str, answer: str) -> KindCheck:
    """Does ``answer`` contain the kind of answer ``question`` asks for? A yes/no question about a
    clause is answered by a clause (shall, may, must, not, ...) that shares a content word with it."""
    kind, rule = kind_rule(question)
    if kind == "unspecified":
        return KindCheck(kind, rule, None, None)
    found = kind_found(kind, answer)
    if kind == "yes_no_clause":
        topic = topic_words(question)
        said = {_stem(w) for w in re.findall(r"[^\W\d_]{3,}", answer)}
        shares = not topic or bool(topic & said)
        strongly, signalled = _states_asked_clause(question, answer)
        if found is None and shares and signalled:
            found = signalled  # "The minimum logo size is 1” or 25mm.": the clause's words, no modal verb
        elif found is not None and not shares and not strongly:
            found = None
    return KindCheck(kind, rule, found, found is not None)


def _states_asked_clause(question: str, answer: str) -> tuple[bool, str | None]:
    """Whether ``answer`` has the operative wording of the clause ``question`` asks about ("you hereby
    assign ... all right, title and interest" for who owns what a party creates; it may share no word
    with the question: "IPRs" for "intellectual property"), and the words of its signal it has, if any."""
    from pipeline.clause_match import asked_clause, states_clause_strongly

    profile = asked_clause(question)
    if profile is None:
        return False, None
    plain = " ".join(answer.split())
    signal = profile.signal.search(plain)
    return states_clause_strongly(profile, plain), signal.group(0) if signal else None


def kind_found(kind: AnswerKind, text: str) -> str | None:
    """The first piece of ``text`` that is an answer of ``kind`` ("30 days", "State of California",
    "$1,577 million"), or None. ``unspecified`` finds nothing: nothing was asked of a known kind."""
    plain = " ".join(text.translate(_TYPOGRAPHY).split())
    if kind == "duration":
        found = _DURATION.search(plain)
    elif kind == "date":
        found = _DATE.search(plain) or _DURATION.search(plain)  # "five years after the Effective Date"
    elif kind == "amount":
        found = _AMOUNT.search(_without_references(plain))
    elif kind == "percentage":
        found = _PERCENT.search(_without_references(plain))
    elif kind == "jurisdiction":
        cased = _uncapitalised(plain)
        found = _PLACE.search(cased) or _JURISDICTION.search(cased)
        return plain[found.start():found.end()].strip() if found else None
    elif kind == "party":
        found = _CORPORATE.search(plain) or _DEFINED_TERM.search(plain) or _ROLE.search(plain) or _person_name(plain)
    elif kind == "yes_no_clause":
        found = _CLAUSE_WORDS.search(plain)
    elif kind == "list":
        items = [p for p in _LIST_SEPARATORS.split(plain) if p and re.search(r"[^\W\d_]{2,}", p)]
        return plain[:80] if len(items) >= 2 else None
    else:
        return None
    return found.group(0).strip() if found else None


_TYPOGRAPHY = str.maketrans({"“": '"', "”": '"', "‘": "'", "’": "'", "–": "-", "—": "-", "\u00a0": " "})


# == The offline answerer's value spans (helper K, issue 17 "The offline answerer answers") ========
# What the extractive answerer puts first: the answer of the wanted kind as the source writes it,
# a little wider than ``kind_found`` ("30 days' prior written notice", "State of California",
# "$1,577 million"), always a substring of the text given (so it can be checked against the page).

_AMOUNT_SPAN = re.compile(
    r"(?:" + _CURRENCY + r")\s?\(?-?\d[\d,]*(?:\.\d+)?\)?(?:\s?(?:thousand|million|billion|trillion|mn|bn)\b)?"
    r"|\(?-?\d[\d,]*(?:\.\d+)?\)?\s?(?:%|percent\b|per cent\b|basis points\b|(?:thousand|million|billion|trillion)\b(?:\s+(?:dollars|euros|pounds))?)",
    re.IGNORECASE,
)
_NOTICE_TAIL = re.compile(
    r"(?:['’]s?)?(?:\s+(?:prior|advance|previous))?(?:\s+(?:written|express|advance))*\s+(?:notice|notification)\b",
    re.IGNORECASE,
)
_STATE_OF = re.compile(
    r"\b(?:the\s+)?(?:State|Commonwealth|Province|Republic|Kingdom|Federal Republic|People's Republic)\s+of\s+(?:the\s+)?"
    r"(?:" + "|".join(re.escape(n) for n in sorted(_US_STATES + _COUNTRIES, key=len, reverse=True)) + r")\b"
)
_GOVERNED_BY = re.compile(r"\b(?:govern\w*|constru\w*|interpret\w*|laws?\s+of|choice of law)\b", re.IGNORECASE)


def _uncapitalised(text: str) -> str:
    """``text`` in title case when it is set in capitals ("GOVERNED BY THE LAWS OF THE COMMONWEALTH OF
    PENNSYLVANIA"), else as it is: the place names are matched by their capital initials, and capitals
    are typesetting. Title case keeps the length of ASCII text, so a span found in it is the text's span."""
    letters = [c for c in text if c.isalpha()]
    if len(letters) < 12 or sum(c.isupper() for c in letters) < 0.8 * len(letters):
        return text
    cased = text.title()
    return cased if len(cased) == len(text) else text


def question_core(question: str) -> str:
    """The question proper, without a lead-in ("In the X AGREEMENT: ...") or instructions around it."""
    return _question_core(question)


def value_span(kind: AnswerKind, text: str) -> str | None:
    """The answer of ``kind`` in ``text`` as written there (whitespace folded), or None."""
    plain = " ".join(text.split())
    if kind == "duration":
        found = _DURATION.search(plain)
        if not found:
            return None
        end = found.end()
        tail = _NOTICE_TAIL.match(plain, end)
        return plain[found.start(): tail.end() if tail else end].strip()
    if kind == "jurisdiction":
        # The place named in a governing-law phrase comes before a place in an address.
        cased = _uncapitalised(plain)  # same length: a span of it is the same span of the sentence
        governed = _GOVERNED_BY.search(cased)
        offset = governed.start() if governed else 0
        for pattern in (_STATE_OF, _PLACE, _JURISDICTION):
            found = pattern.search(cased, offset) or pattern.search(cased)
            if found:
                return plain[found.start():found.end()].strip()
        return None
    if kind == "amount":
        bare = _without_references(plain)
        found = _AMOUNT_SPAN.search(bare) or _AMOUNT.search(bare)
        if not found:
            return None
        span = found.group(0).strip()
        return span if span in plain else None
    if kind in ("date", "party", "percentage"):
        found = kind_found(kind, plain)
        return found if found and found in plain else None
    return None


def value_spans(kind: AnswerKind, text: str) -> list[tuple[int, str]]:
    """Every answer of ``kind`` in ``text`` (whitespace folded) with its offset there: a sentence may
    name several durations ("three (3) years ... ninety (90) days before the end"); the answerer picks."""
    plain = " ".join(text.split())
    if kind == "duration":
        out = []
        for found in _DURATION.finditer(plain):
            tail = _NOTICE_TAIL.match(plain, found.end())
            out.append((found.start(), plain[found.start(): tail.end() if tail else found.end()].strip()))
        return out
    if kind == "date":
        return [(start, span) for start, span, _ in date_values(plain)]
    one = value_span(kind, plain)
    return [(plain.find(one), one)] if one else []


# A calendar date as written: "July 1, 2018", "the 19th day of July 2018", "1 March 1996", "12/31/2020".
_CALENDAR_DATE = re.compile(
    r"\b" + _MONTH + r"\.?\s+\d{1,2}(?:st|nd|rd|th)?\s?,?\s+\d{4}\b"
    r"|\b\d{1,2}(?:st|nd|rd|th)?\s+(?:day\s+of\s+)?" + _MONTH + r"\.?,?\s+\d{4}\b"
    r"|\b\d{4}-\d{2}-\d{2}\b|\b\d{1,2}/\d{1,2}/\d{2,4}\b"
    r"|\b" + _MONTH + r",?\s+\d{4}\b",
    re.IGNORECASE,
)
# A date given by reference, for a date question that has no calendar date to read.
_DATE_REFERENCE = re.compile(
    r"\b(?:the\s+)?(?:date first (?:written|above written|set forth)(?: above)?|first date (?:above )?written(?: above)?|"
    r"date of (?:this Agreement|execution|signature)|date hereof|last date of signature|upon (?:execution|signing))\b",
    re.IGNORECASE,
)


def date_values(text: str) -> list[tuple[int, str, float]]:
    """The dates a sentence gives, strongest first, as (offset, text, strength): calendar dates (1.0), a
    period that fixes the date ("three (3) years from the Effective Date", 0.7), a date by reference
    ("the date first written above", 0.5); only when there is none, a date it names ("the Effective Date", 0.2)."""
    plain = " ".join(text.split())
    out = [(m.start(), m.group(0), 1.0) for m in _CALENDAR_DATE.finditer(plain)]
    out += [(m.start(), m.group(0).strip(), 0.7) for m in _DURATION.finditer(plain) if not any(s <= m.start() < s + len(t) for s, t, _ in out)]
    out += [(m.start(), m.group(0).strip(), 0.5) for m in _DATE_REFERENCE.finditer(plain)]
    if not out:  # last: a date named, not given ("on the Effective Date"), as the grounding check reads a date
        named = kind_found("date", plain)
        out = [(plain.find(named), named, 0.2)] if named and named in plain else []
    return sorted(out, key=lambda v: (-v[2], v[0]))
