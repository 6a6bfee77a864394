"""Query analysis: what of a question is its content, and how documents are likely to phrase it.

Analysts' questions come wrapped in instructions ("Give a response to the question by relying on the
details shown in the cash flow statement. Round your answer to two decimal places."). Embedded whole,
the instructions pull the question vector towards every page that talks about answers and statements;
scored whole by BM25, "answer", "question" and "details" match everywhere. So a question is split into
clauses and each clause is classed:

- *content*: what is asked ("What is the FY2018 capital expenditure amount for 3M?");
- *definition*: "X is defined as: ..." (its line items matter, its algebra does not);
- *instruction*: how to answer ("Round ...", "Answer in USD millions", "If ... then state that");
- *reference*: which document to look in ("In the NETGEAR DISTRIBUTOR AGREEMENT (NETGEAR): ..."),
  weighed as content across many documents and as an instruction within the one it names.

The dense encoder reads the content clauses plus the names of any statement the question points to
(named anywhere, instructions included); BM25 weights content terms 1.0, definition terms 0.5,
instruction terms 0.2. A small glossary adds the words filings and contracts use for what questions
call by another name ("capex" -> "purchases of property, plant and equipment"; "cash flow statement" ->
"Consolidated Statements of Cash Flows"; "which law governs" -> "governing law"), at weight 0.5.
The glossary was written while reading FinanceBench and CUAD questions (see docs/retrieval.md).

Within the one document searched, the company a question names first ("What drove Acme Corp's gross
margin?") weighs as an instruction too: the filing names itself on every page's header and throughout its
exhibits (subsidiary lists, certifications), so the name matches those rather than the answer.

A caller that knows a domain passes *expanders* (``QueryExpander``): for a question they recognise, how
an answering passage is usually worded, which the encoder reads after the question and BM25 weighs at
the expansion's weight. The store holds them; ``pipeline.clause_match.clause_expansion`` is Docket's.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ingest.lexical import tokenize

CONTENT, DEFINITION, INSTRUCTION, REFERENCE = "content", "definition", "instruction", "reference"
WEIGHTS = {CONTENT: 1.0, DEFINITION: 0.5, INSTRUCTION: 0.2}
# A reference ("In the NETGEAR DISTRIBUTOR AGREEMENT (NETGEAR): ...") names where to look. Across many
# documents it picks the document, so its terms count as content; within the one document it names, they
# match its title page and running headers and nothing the question asks, so they count as instructions.
REFERENCE_WEIGHT = {False: WEIGHTS[CONTENT], True: WEIGHTS[INSTRUCTION]}  # keyed by "one document searched"
# The company a question names ("Best Buy's gross margins") is, within its own filing, in every running
# header, exhibit and certification, as a reference is: there it weighs as an instruction (see named_terms).
NAME_WEIGHT = WEIGHTS[INSTRUCTION]
EXPANSION_WEIGHT = 0.5

_INSTRUCTION = re.compile(
    r"(?i)^(?:please\s+)?(?:give|answer|round|calculate|compute|approach|assume|assuming|use|using|respond|"
    r"provide|express|show|base|utili[sz]e|address|focus|report|state|explain|note|do\s+not|don't|"
    r"if\b.*\b(?:then|state|explain)\b|this\s+includes|(?:the\s+)?answer\s+should)"
)
# "In the NETGEAR DISTRIBUTOR AGREEMENT (NETGEAR): ...": which document to look in, not what to look for.
_REFERENCE = re.compile(r"(?i)^(?:in|within|from|according\s+to|under|per)\s+[^?]{1,200}$")
_DEFINITION = re.compile(r"(?i)\b(?:is|are)\s+defined\s+as\b|^define\b|\bdefined\s+as\b")
_CLAUSE_END = re.compile(r"(?<=[.?!])\s+(?=[A-Z(\"“])")

# Statement names: added to the dense query and to BM25 at full weight, wherever the question says them.
_STATEMENTS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern, re.I), expansion)
    for pattern, expansion in (
        (r"cash[\s-]*flows?\s+statements?|statements?\s+of\s+cash\s+flows?", "Consolidated Statements of Cash Flows"),
        (r"balance\s+sheets?|statements?\s+of\s+financial\s+position", "Consolidated Balance Sheets"),
        (
            r"income\s+statements?|\bP&L\b|profit\s+and\s+loss|statements?\s+of\s+(?:operations|income|earnings)",
            "Consolidated Statements of Operations Income Earnings",
        ),
    )
)
# Other names for what a question asks about: BM25 only, at EXPANSION_WEIGHT.
_GLOSSARY: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern, re.I), expansion)
    for pattern, expansion in (
        (r"\bcapex\b|capital\s+expenditures?", "purchases of property plant and equipment capital expenditures"),
        (r"\bpp&?n?e\b|fixed\s+assets?", "property plant and equipment net"),
        (r"\bcogs\b|cost\s+of\s+goods\s+sold", "cost of sales cost of goods sold"),
        (r"\bd&a\b|\bebitda\b", "depreciation and amortization operating income"),
        (r"\bebit\b|operating\s+margin", "operating income margin"),
        (r"capital[\s-]+intensive", "purchases of property plant and equipment capital expenditures total assets"),
        (r"\bsegments?\b", "business segment net sales operating income"),
        (r"\bgrowth\b|\bgrow\b", "increase change percent"),
        (r"\bsg&a\b", "selling general and administrative expenses"),
        (r"gross\s+margin", "gross profit cost of sales"),
        (r"top\s*line|\brevenues?\b", "net sales revenues"),
        (r"quick\s+ratio|liquidity", "total current assets total current liabilities"),
        (r"\bdpo\b|days\s+payable", "accounts payable"),
        (r"inventory\s+turnover", "inventories cost of sales"),
        (r"interest\s+coverage", "interest expense"),
        (r"legal\s+battles?|lawsuits?|litigation", "legal proceedings litigation"),
        (r"\bacquisitions?\b|\bacquired\b", "acquisitions business combinations"),
        (r"law\s+governs|governing\s+law", "governing law governed by the laws of"),
        (r"terminat\w*\s+.*without\s+cause|terminat\w*\s+for\s+convenience", "terminate for convenience upon notice"),
        (r"cap\s+on\s+liability", "limitation of liability"),
        (r"\bassign(?:ed|ment)?\b", "assignment assign"),
        (r"signed\s+this\s+contract|parties", "by and between parties"),
        (r"date\s+of\s+(?:this|the)\s+(?:contract|agreement)", "dated as of made and entered into effective date"),
        (r"initial\s+term|term\s+expire", "term commence continue until expire years"),
        (r"renewal|renew", "renewal term automatically renew"),
    )
)


# Which financial statement a question is about. Named ("in the cash flow statement") counts fully;
# implied by a line item or ratio that only that statement (or those statements) reports counts half.
# Used by the search to favour chunks on the pages of those statements (see ingest.retrieval).
CASH_FLOWS, BALANCE_SHEET, INCOME = "cash_flows", "balance_sheet", "income"
STATEMENT_KINDS = (CASH_FLOWS, BALANCE_SHEET, INCOME)
NAMED_WEIGHT, IMPLIED_WEIGHT = 1.0, 0.5
_NAMED_KIND: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern, re.I), kind)
    for pattern, kind in (
        (r"cash[\s-]*flows?\s+statements?|statements?\s+of\s+cash\s+flows?", CASH_FLOWS),
        (r"balance\s+sheets?|statements?\s+of\s+financial\s+(?:position|condition)", BALANCE_SHEET),
        (r"income\s+statements?|\bP&L\b|profit\s+and\s+loss|statements?\s+of\s+(?:operations|income|earnings)", INCOME),
    )
)
_IMPLIED_KINDS: tuple[tuple[re.Pattern[str], tuple[str, ...]], ...] = tuple(
    (re.compile(pattern, re.I), kinds)
    for pattern, kinds in (
        (r"\bcapex\b|capital\s+expenditures?|cash\s+(?:flows?\s+)?from\s+(?:operating|investing|financing)|"
         r"operating\s+cash\s+flows?|free\s+cash\s+flows?|\bd&a\b|depreciation\s+and\s+amortization", (CASH_FLOWS,)),
        (r"\bpp&?n?e\b|fixed\s+assets?|total\s+assets|current\s+(?:assets|liabilities)|quick\s+ratio|"
         r"current\s+ratio|working\s+capital|accounts\s+(?:payable|receivable)|\bliabilit(?:y|ies)\b|"
         r"cash\s+(?:and|&)\s+cash\s+equivalents", (BALANCE_SHEET,)),
        (r"\brevenues?\b|net\s+sales|top\s*line|gross\s+(?:margin|profit)|operating\s+(?:margin|income)|"
         r"net\s+income|\bcogs\b|cost\s+of\s+(?:goods\s+sold|sales)|\bsg&a\b|\bebit(?:da)?\b|"
         r"earnings\s+per\s+share|\beps\b", (INCOME,)),
        (r"capital[\s-]+intensive", (BALANCE_SHEET, CASH_FLOWS, INCOME)),
        (r"turnover|\bdpo\b|days\s+payable|return\s+on\s+(?:assets|equity)", (BALANCE_SHEET, INCOME)),
    )
)
# Questions whose answer sits in a document's opening (the preamble of a contract: its title, parties,
# date): "Who are the parties that signed this contract?", "What is the date of this contract?".
_OPENING = re.compile(
    r"(?i)\bwho\s+(?:are\s+the\s+parties|signed)|\bparties\s+(?:that|who|to\s+th|of\s+th)|"
    r"\bdate\s+of\s+(?:this|the)\s+(?:contract|agreement)|\b(?:contract|agreement)(?:'s|’s)?\s+(?:effective\s+)?date\b|"
    r"\bname\s+of\s+(?:this|the)\s+(?:contract|agreement)"
)


@dataclass(frozen=True)
class QueryPlan:
    """What the dense encoder embeds, the BM25 terms with their weights, and the document signals asked for."""

    text: str
    terms: dict[str, float]
    clauses: list[tuple[str, str]] = field(default_factory=list)  # (class, clause), for traces and tests
    statements: dict[str, float] = field(default_factory=dict)  # statement kind -> NAMED/IMPLIED_WEIGHT
    opening: bool = False  # the question asks what a document's opening says (parties, date)
    # The terms by which the question names documents (``naming_terms``): searched over several, the
    # documents whose file names hold them best are where it asks to look (``ingest.retrieval.named_versions``).
    names: dict[str, float] = field(default_factory=dict)


def split_clauses(question: str) -> list[str]:
    """Sentences, and the two sides of a colon that introduces the question ("... balance sheet: what is")."""
    clauses = []
    for sentence in _CLAUSE_END.split(question.strip()):
        head, colon, tail = sentence.partition(": ")
        if colon and (_INSTRUCTION.match(head) or _REFERENCE.match(head)) and tail:
            clauses += [head, tail]
        else:
            clauses.append(sentence)
    return [c.strip() for c in clauses if c.strip()]


def classify(clause: str) -> str:
    if _REFERENCE.match(clause) and not clause.rstrip().endswith("?"):
        return REFERENCE
    if _DEFINITION.search(clause):
        return DEFINITION
    if _INSTRUCTION.match(clause):
        return INSTRUCTION
    return CONTENT


@dataclass(frozen=True)
class QueryExpansion:
    """How a passage that answers the question is likely worded, from a caller that knows the domain
    (``pipeline.clause_match`` knows how contracts word each clause a review asks about). The dense
    encoder reads it after the question's content; BM25 weighs its words at ``weight``."""

    passage: str
    weight: float = EXPANSION_WEIGHT


# A caller's knowledge of how documents word an answer: the question in, an expansion (or None) out.
QueryExpander = Callable[[str], "QueryExpansion | None"]


def plan_query(question: str, expanders: Sequence[QueryExpander] = (), *, one_document: bool = False) -> QueryPlan:
    """The query for ``question``; ``one_document`` when the search is restricted to a single document
    or to the documents the question names (see ``REFERENCE_WEIGHT``), and ``expanders`` the caller's
    knowledge of how answers are worded."""
    clauses = [(classify(c), c) for c in split_clauses(question)]
    if not any(kind == CONTENT for kind, _ in clauses):
        clauses = [(CONTENT, c) for _, c in clauses]  # all instructions: the instructions are the question
    weights = {**WEIGHTS, REFERENCE: REFERENCE_WEIGHT[one_document]}
    terms: Counter[str] = Counter()
    names = named_terms(clauses) if one_document else set()
    for kind, clause in clauses:
        for term in tokenize(clause):
            weight = weights[kind]
            if term in names and kind == CONTENT:
                weight = NAME_WEIGHT
            terms[term] = max(terms[term], weight)
    statements = [expansion for pattern, expansion in _STATEMENTS if pattern.search(question)]
    for expansion in statements:
        for term in tokenize(expansion):
            terms[term] = max(terms[term], WEIGHTS[CONTENT])
    for pattern, expansion in _GLOSSARY:
        if pattern.search(question):
            for term in tokenize(expansion):
                terms[term] = max(terms[term], EXPANSION_WEIGHT)
    passages = []
    for expand in expanders:
        expansion = expand(question)
        if expansion is not None:
            passages.append(expansion.passage)
            for term in tokenize(expansion.passage):
                terms[term] = max(terms[term], expansion.weight)
    text = " ".join([*(c for kind, c in clauses if kind in (CONTENT, REFERENCE)), *statements, *passages])
    return QueryPlan(
        text=text, terms=dict(terms), clauses=clauses, statements=statement_kinds(question),
        opening=bool(_OPENING.search(question)), names=naming_terms(clauses),
    )


# A word of a company's name: capitalised or a digit-led word with a letter ("Best", "CVS", "3M", "JnJ").
_NAME_WORD = re.compile(r"[A-Z0-9][\w&.\-]*[A-Za-z][\w&.\-]*|[A-Z]")
# Capitalised but not a name: periods and currencies ("FY2022", "Q2", "USD"), and the words statements
# and the glossary use ("EBITDA", "Consolidated Balance Sheet").
_PERIOD_OR_CURRENCY = re.compile(r"(?:FY|Q[1-4]|H[12])\d*|USD|EUR|GBP|JPY")
_STATEMENT_WORDS = frozenset(
    "consolidated condensed statement statements balance sheet sheets income operations cash flow flows "
    "earnings".split()
)


_FINANCE_PATTERNS = tuple(p for p, _ in (*_STATEMENTS, *_GLOSSARY, *_NAMED_KIND, *_IMPLIED_KINDS))


def _finance_word(word: str) -> bool:
    return word.lower() in _STATEMENT_WORDS or any(p.fullmatch(word) for p in _FINANCE_PATTERNS)


def named_terms(clauses: Sequence[tuple[str, str]]) -> set[str]:
    """Terms of the first name the content clauses give: the first run of capitalised words after a
    clause's first word ("Best Buy's", "for 3M", "Has CVS Health reported"). A question about a filing
    names its company first; within that one filing the name is on every page's running header, in the
    exhibits and certifications, so it says nothing about where the answer is. A later name ("spin off
    Upjohn") is what the question asks about and keeps its weight. A reference clause is weighed on its
    own (``REFERENCE_WEIGHT``)."""
    return {term for word in first_name(clauses) for term in tokenize(word)}


def naming_terms(clauses: Sequence[tuple[str, str]]) -> dict[str, float]:
    """The terms by which a question names the documents it is about: a reference clause's ("In the
    SUPPLY AGREEMENT (Acme): ..."), and its first name's (``first_name``), whose words also count joined,
    as file names write a name (BESTBUY_2023_10K for "Best Buy's"). Every one weighs 1: how rare each is
    among the searched documents' names decides (``ChunkFacts.name_match``)."""
    terms = dict.fromkeys((t for kind, clause in clauses if kind == REFERENCE for t in tokenize(clause)), 1.0)
    words = first_name(clauses)
    joined = ["".join(words)] if len(words) > 1 else []
    terms.update(dict.fromkeys((t for word in [*words, *joined] for t in tokenize(word)), 1.0))
    return terms


def first_name(clauses: Sequence[tuple[str, str]]) -> list[str]:
    """The words of the first run of capitalised words after a content clause's first word, without
    periods, currencies and the words of statements and the glossary (see ``named_terms``)."""
    for kind, clause in clauses:
        if kind != CONTENT:
            continue
        run: list[str] = []
        for word in clause.split()[1:]:
            bare = word.strip("\"'“”()")
            core = bare.strip("?,.:;!").removesuffix("'s").removesuffix("’s")
            if _NAME_WORD.fullmatch(core) and not _PERIOD_OR_CURRENCY.fullmatch(core) and not _finance_word(core):
                run.append(core)
                if core != bare:
                    break  # "Best Buy's", "CVS Health?": a possessive or punctuation ends the name
            elif run:
                break
        if run:
            return run
    return []


def statement_kinds(question: str) -> dict[str, float]:
    """Statement kind -> weight: NAMED_WEIGHT when the question names it, else IMPLIED_WEIGHT when a line
    item or ratio of the question is read from it."""
    kinds: dict[str, float] = {}
    for pattern, kinds_of in _IMPLIED_KINDS:
        if pattern.search(question):
            kinds.update(dict.fromkeys(kinds_of, IMPLIED_WEIGHT))
    for pattern, kind in _NAMED_KIND:
        if pattern.search(question):
            kinds[kind] = NAMED_WEIGHT
    return kinds


def plain_query(question: str) -> QueryPlan:
    """The question as it is: every term weight 1, the whole text embedded (query analysis off)."""
    return QueryPlan(text=question, terms=dict.fromkeys(tokenize(question), 1.0), clauses=[(CONTENT, question)])
