"""Which kind of contract clause a question asks about, and which sentences state such a clause.

The offline answerer ranks sentences by their similarity to the question. A clause is often worded
unlike the question that asks about it ("Is there a requirement for insurance that must be maintained
by one party ..." against "ENVISION warrants that it carries general liability insurance of $1 million
per occurrence"), so similarity alone refuses clauses that are there and quotes near misses. A
``ClauseProfile`` names one clause category (CUAD's categories, which are the clauses a contract
review asks about), how a question about it is recognised, the wording a sentence stating such a clause
has (its *signal*), and the headings such a clause is found under. The answerer prefers sentences with
the signal, prefers them further under a matching heading, and refuses, saying what it looked for, when
no sentence of the evidence has the signal.

The signals are drafting language (the words a clause of the category cannot do without), written
from CUAD's category descriptions and common contract wording, not from the evaluation contracts;
``docs/reasoning.md`` says on which split each choice was checked.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from ingest.query import QueryExpansion


@dataclass(frozen=True)
class ClauseProfile:
    name: str  # the category as CUAD names it ("Anti-Assignment")
    question: re.Pattern[str]  # a question about this clause
    signal: re.Pattern[str]  # a sentence that states such a clause
    heading: re.Pattern[str]  # the heading of a section holding such a clause
    looks_for: str  # what the answerer looked for, in words, for a refusal
    # The clause's operative wording ("hereby grants ... a license", "may not assign ... without ...
    # consent"), stronger than the signal's words, which a sentence that only mentions the clause has too.
    strong: re.Pattern[str] | None = None


def _p(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.IGNORECASE | re.DOTALL)


def _profile(name: str, question: str, signal: str, heading: str, looks_for: str, strong: str | None = None) -> ClauseProfile:
    return ClauseProfile(name, _p(question), _p(signal), _p(heading), looks_for, _p(strong) if strong else None)


_LICENSE = r"licen[cs]\w*"
# "exclusive" as exclusivity: not "non-exclusive", nor an exclusive remedy, jurisdiction or ownership.
_EXCLUSIVE = (r"(?<![-\w])exclusiv\w*\b(?!\s+(?:remed\w*|jurisdiction|venue|forum|courts?|property|owner\w*|right to terminate|"
              r"of\b|basis\s+for\s+determining|(?:\w+\s+){0,2}agreement\b))")

# First match wins: most-favoured-nation (its question mentions licensing) and the specific license questions before the general one, exceptions to restrictions
# before the restrictions, a cap before uncapped liability's wider wording.
PROFILES: tuple[ClauseProfile, ...] = (
    _profile(
        "Most Favored Nation",
        r"\bmost[- ]favou?red\b|\bbetter terms\b|\bmore favou?rable\b",
        r"\bmost[- ]favou?red\b|\bmore favou?rable\b|\bless favou?rable\b|\bbetter (?:terms|prices?|pricing|rates?)\b|"
        r"\b(?:lower|lowest|best) (?:prices?|pricing|rates?|terms)\b|\bequal (?:to )?or (?:better|lower)\b",
        r"most favou?red|pricing|price",
        "a most-favoured-nation clause (the other party gets any better terms given to a third party)",
    ),    _profile(
        "Competitive Restriction Exception",
        r"\b(?:exceptions?|carve-?outs?)\b.{0,80}\b(?:non-?compet\w*|exclusiv\w*|no-?solicit\w*|restrict\w*)",
        r"\bexcept\w*\b|\bnotwithstanding\b|\bprovided,?\s+(?:however|that)\b|\bshall not (?:prevent|restrict|prohibit|preclude|limit|apply)\b|"
        r"\bnothing (?:in|herein)\b.{0,80}\b(?:prevent|restrict|prohibit|preclude|limit)\w*",
        r"non-?compet|exclusiv|restrict|solicit",
        "an exception or carve-out to a non-compete, exclusivity or no-solicit restriction",
        r"\b(?:shall|will) be (?:permitted|entitled|free|allowed)\b|\bnothing (?:in|herein|contained)\b.{0,120}\b(?:prevent|restrict|prohibit|preclude|limit)\w*|"
        r"\bshall not (?:prevent|restrict|prohibit|preclude|apply to)\b|^\W*(?:\(?\w{1,3}[.)]\s*)?(?:notwithstanding|provided,? however|except)\b",
    ),
    _profile(
        "No-Solicit Of Employees",
        r"\b(?:solicit\w*|hir\w+|recruit\w*|employ\w*)\b.{0,80}\b(?:employees?|personnel|staff|contractors?)\b",
        r"\b(?:solicit\w*|hire|hiring|recruit\w*|employ)\b.{0,120}\b(?:employees?|personnel|staff|consultants?|contractors?)\b|"
        r"\b(?:employees?|personnel|staff)\b.{0,80}\b(?:solicit\w*|hire|hiring|recruit\w*)\b",
        r"solicit|hir(?:e|ing)|employees|personnel",
        "a restriction on soliciting or hiring the other party's employees",
    ),
    _profile(
        "No-Solicit Of Customers",
        r"\bsolicit\w*\b.{0,80}\b(?:customers?|clients?|partners?|suppliers?)\b|\b(?:customers?|clients?)\b.{0,40}\bsolicit",
        r"\b(?:solicit\w*|induce\w*|entic\w+|divert\w*|interfere\w*)\b.{0,150}\b(?:customers?|clients?|suppliers?|accounts?|business)\b|"
        r"\b(?:not|no)\b.{0,60}\b(?:market|sell|offer|provide|call on|contact)\w*\b.{0,60}\b(?:customers?|clients?)\b",
        r"solicit|customers|interfer",
        "a restriction on soliciting the other party's customers",
    ),
    _profile(
        "Non-Compete",
        r"\bnon-?compet\w*|\bcompet\w*\b",
        r"\bnon-?compet\w*|\bcompet\w+|\bsimilar (?:to the )?(?:products?|services?|business)\b|\bengage[sd]?\b.{0,60}\b(?:business|activit\w+)\b",
        r"compet|restrictive covenant",
        "a restriction on competing",
    ),
    _profile(
        "Exclusivity",
        r"\bexclusiv\w*",
        _EXCLUSIVE + r"|\bsole (?:and exclusive )?(?:source|supplier|distributor|provider|reseller|agent|licensee|manufacturer)\b|"
        r"\ball (?:of )?(?:its|their|the|such)?\s*(?:requirements|needs)\b|\bonly from\b|"
        r"\bshall not\b.{0,80}\b(?:sell|license|appoint|engage|purchase|market|distribute|offer|promote|endorse|use)\b.{0,120}\b(?:third part\w+|any other|other (?:than|persons?|companies|parties)|competitor\w*|anyone)",
        r"exclusiv",
        "an exclusive dealing commitment (exclusive rights, sole supplier, all requirements, a prohibition on dealing with others)",
        r"\b(?:appoints?|grants?|granted)\b.{0,120}" + _EXCLUSIVE + r"|" + _EXCLUSIVE + r"\s+(?:right|license|licensee|distributor|supplier|provider|reseller|agent|basis)\b|\bexclusively\b",
    ),
    _profile(
        "Non-Disparagement",
        r"\bdisparag\w*",
        r"\bdisparag\w*|\bderogatory\b|\bnegative (?:statements?|comments?|remarks?)\b|\bdefam\w+|\bdiscredit\w*|\bill of\b|"
        r"\btarnish\w*|\bdisrepute\b|\b(?:harm|damage|injure)\w*\b.{0,40}\b(?:reputation|goodwill)\b",
        r"disparag",
        "a duty not to disparage",
    ),
    _profile(
        "Termination For Convenience",
        r"\bwithout cause\b|\bfor convenience\b|\bterminat\w+\b.{0,60}\b(?:at any time|for any reason|without (?:cause|reason))",
        r"\bterminat\w+\b.{0,200}\b(?:for any reason|for no reason|without cause|for convenience|at any time|with or without cause|in its (?:sole )?discretion)\b|"
        r"\b(?:for any reason|for no reason|without cause|for convenience|at any time|with or without cause)\b.{0,200}\bterminat\w+|"
        r"\bterminat\w+\b.{0,120}\b(?:upon|on|by giving|with)\b.{0,40}\b(?:days|months)\b.{0,30}\bnotice\b",
        r"terminat",
        "a right to terminate without cause or by notice alone",
        r"\b(?:for convenience|without cause|for any reason|for no reason|with or without cause)\b",
    ),
    _profile(
        "Rofr/Rofo/Rofn",
        r"\bfirst (?:refusal|offer|negotiation)\b|\brof[ron]\b",
        r"\bfirst (?:right|option)\b|\bright of first\b|\bfirst (?:refusal|offer|negotiation)\b|\boption to (?:purchase|acquire|license|buy)\b|"
        r"\bright to (?:match|purchase|acquire|negotiate)\b|\boffer\w*\b.{0,60}\bfirst\b",
        r"first refusal|first offer|first negotiation|option|right of first",
        "a right of first refusal, first offer or first negotiation",
        r"\bright of first (?:refusal|offer|negotiation)\b|\bfirst right (?:of|to) (?:refusal|offer|negotiat\w*|purchase)\b",
    ),
    _profile(
        "Change Of Control",
        r"\bchange (?:of|in) control\b|\bmerger\b|\bacquisition\b",
        r"\bchange (?:of|in) (?:control|ownership)\b|\bmerg\w+|\bacqui\w+|\bconsolidat\w+|\breorgani[sz]\w+|"
        r"\b(?:all|substantially all) of (?:its|the|their)\b.{0,30}\b(?:assets|business|stock|shares|equity)\b|\boperation of law\b|"
        r"\bcontrolling (?:interest|shareholder)\b|\bvoting (?:stock|securities|power)\b",
        r"change of control|change in control|assign",
        "a clause triggered by a change of control, merger or sale of the business",
        r"\bchange (?:of|in) (?:control|ownership)\b",
    ),
    _profile(
        "Anti-Assignment",
        r"\bassign\w*\b|\btransfer\w*\b.{0,40}\b(?:contract|agreement)\b",
        r"\b(?:assign\w*|transfer\w*|delegat\w*)\b.{0,200}\b(?:consent|approv\w+|null and void|void|notice|not\b|neither\b)|"
        r"\b(?:not|neither|no)\b.{0,120}\b(?:assign\w*|transfer\w*|delegat\w*)\b",
        r"assign",
        "a clause requiring consent or notice to assign the agreement",
        r"\b(?:not|neither|no)\b.{0,120}\bassign\w*\b.{0,200}\b(?:consent|approv\w+)|\bassign\w*\b.{0,200}\b(?:without|prior)\b.{0,60}\b(?:consent|approv\w+)|\bassign\w*\b.{0,150}\bnull and void\b",
    ),
    _profile(
        "Revenue/Profit Sharing",
        r"\b(?:share|sharing)\b.{0,40}\b(?:revenues?|profits?)\b|\b(?:revenues?|profits?)\b.{0,30}\bshar\w*|\broyalt\w*",
        r"\broyalt\w*|\brevenues?\b|\bprofits?\b|\bnet sales\b|\bgross (?:sales|receipts|revenues?)\b|\bcommissions?\b|"
        r"\bpercent(?:age)?\b|%|\bproceeds\b",
        r"royalt|revenue|profit|compensation|payment|commission|fees",
        "a duty to share revenue or profit (royalties, a share of sales, commissions)",
        r"\b(?:pay|paid|payable|receive|entitled|shared?)\b.{0,120}(?:\broyalt\w*|\b(?:percent|percentage)\b|%|\bshare of\b|\bcommissions?\b)",
    ),
    _profile(
        "Price Restrictions",
        r"\b(?:raise|increase|reduce|lower|change|adjust)\w*\b.{0,30}\bprices?\b|\bprice restrict\w*",
        r"\bpric\w+\b.{0,150}\b(?:increas\w*|rais\w*|reduc\w*|chang\w*|adjust\w*|not exceed|fixed|firm|same)\b|"
        r"\b(?:increas\w*|rais\w*|reduc\w*|chang\w*|adjust\w*)\b.{0,80}\bpric\w+",
        r"pric",
        "a restriction on raising or lowering prices",
    ),
    _profile(
        "Minimum Commitment",
        r"\bminimum\b",
        r"\bminimum\b|\bnot less than\b|\bno less than\b|\bat least\b|\bshall (?:purchase|order|buy|sell|deliver|provide)\b|"
        r"\b(?:purchase|order|sales?) (?:commitment|targets?|quotas?|milestones?|forecasts?)\b|\bquota\b",
        r"minimum|purchase|order|commitment|forecast",
        "a minimum purchase, order or volume commitment",
        r"\b(?:purchase|order|buy|sell|deliver|provide|achieve|meet)\w*\b.{0,80}\b(?:minimum|not less than|no less than|at least)\b|\bminimum\b.{0,40}\b(?:order|purchase|quantit\w+|volume|amount|number|commitment)\b",
    ),
    _profile(
        "Volume Restriction",
        r"\bthreshold\b|\bvolume\b|\bexceed\w*\b.{0,60}\b(?:use|usage|limit)",
        r"\bexceed\w*|\bthresholds?\b|\bvolumes?\b|\bin excess of\b|\bmaximum\b|\bup to\b|\bnot more than\b|\bno more than\b|\blimit\w*\b.{0,40}\b(?:number|quantity|usage|use)\b",
        r"volume|usage|limit|quantit",
        "a fee increase or consent required when use exceeds a threshold",
    ),
    _profile(
        "Joint Ip Ownership",
        r"\bjoint\w*\b.{0,40}\bown\w*|\bshared ownership\b|\bco-?own\w*",
        r"\bjoint\w*\b.{0,80}\b(?:own\w*|property|title)\b|\bco-?own\w*|\bown\w*\b.{0,200}\bjoint\w*|\b(?:developed|created|conceived|made)\s+jointly\b|\bequal(?:ly)?\b.{0,40}\b(?:undivided|interest|own\w*)",
        r"intellectual property|ownership|inventions|proprietary",
        "joint or shared ownership of intellectual property",
    ),
    _profile(
        "Ip Ownership Assignment",
        r"\bintellectual property\b.{0,80}\b(?:become|property of|own\w*|assign\w*)|\b(?:ip|intellectual property) ownership\b|\bwho owns\b",
        r"\b(?:sole(?: and exclusive)?|exclusive) property\b|\bshall (?:own|be owned|belong|vest|become)\b|\bowns?\b|\bownership\b|"
        r"\bright,? title,? and interest\b|\bvest\w*|\bhereby (?:assigns?|transfers?|conveys?)\b|\bworks? (?:made )?for hire\b|\bshall assign\b",
        r"intellectual property|ownership|inventions|proprietary|work product",
        "intellectual property of one party becoming the other's",
        r"\bhereby (?:assigns?|transfers?|conveys?)\b|\bshall (?:be|become|remain) the (?:sole )?(?:and exclusive )?(?:property|owner)\b|\bshall (?:solely |exclusively )?own\b|\bworks? (?:made )?for hire\b",
    ),
    _profile(
        "Source Code Escrow",
        r"\bescrow\b|\bsource code\b",
        r"\bescrow\w*|\bsource code\b",
        r"escrow|source code",
        "a source code escrow",
    ),
    _profile(
        "Unlimited/All-You-Can-Eat-License",
        r"\bunlimited\b|\ball[- ]you[- ]can[- ]eat\b|\benterprise\b.{0,20}\blicen",
        r"\bunlimited\b|\benterprise(?:-wide)?\b|\ball[- ]you[- ]can[- ]eat\b|\bwithout (?:limit|limitation|restriction)\b.{0,40}\b(?:number|use|usage|copies|users)\b|"
        r"\bno additional (?:fees?|charges?|costs?)\b|\bany number of (?:users?|copies|installations?|seats?|devices?|sites?|locations?|times)\b",
        _LICENSE,
        "an unlimited-usage or enterprise license",
    ),
    _profile(
        "Irrevocable Or Perpetual License",
        r"\birrevocabl\w*|\bperpetu\w*",
        r"\birrevocabl\w*|\bperpetu\w*",
        _LICENSE,
        "a license that is irrevocable or perpetual",
    ),
    _profile(
        "Affiliate License-Licensor",
        r"\baffiliates? of (?:the )?licensor\b|\blicen[cs]\w*\b.{0,40}\bby (?:the )?affiliates?\b",
        r"\b(?:affiliat|subsidiar)\w*\b.{0,200}\b(?:licen[cs]\w*|grant\w*)|\b(?:licen[cs]\w*|grant\w*)\b.{0,200}\b(?:affiliat|subsidiar)\w*",
        _LICENSE,
        "a license granted by, or of intellectual property of, the licensor's affiliates",
    ),
    _profile(
        "Affiliate License-Licensee",
        r"\blicen[cs]\w*\b.{0,80}\baffiliat\w*|\baffiliat\w*\b.{0,40}\blicensee",
        r"\b(?:affiliat|subsidiar)\w*\b.{0,200}\b(?:licen[cs]\w*|grant\w*|sub-?licens\w*)|\b(?:licen[cs]\w*|grant\w*)\b.{0,200}\b(?:affiliat|subsidiar)\w*",
        _LICENSE,
        "a license granted to the licensee's affiliates",
    ),
    _profile(
        "Non-Transferable License",
        r"\btransfer\w*\b.{0,40}\blicen[cs]\w*|\blicen[cs]\w*\b.{0,60}\btransfer\w*|\bnon-?transferable\b",
        r"\bnon-?transfer\w*|\bnon-?assignable\b|\bnon-?sub-?licens\w*|\bnot (?:be )?(?:transfer\w*|assign\w*|sub-?licens\w*)|"
        r"\bmay not\b.{0,40}\b(?:transfer|assign|sub-?licens\w*)|\bwithout\b.{0,40}\bconsent\b|\bpersonal to\b",
        _LICENSE + r"|assign",
        "a limit on transferring the license granted",
    ),
    _profile(
        "License Grant",
        r"\blicen[cs]\w*",
        r"\b(?:grants?|granted|granting)\b.{0,200}\b(?:licen[cs]\w*|sub-?licens\w*|rights?)\b|\blicen[cs]\w*\b.{0,100}\b(?:grant\w*)\b|"
        r"\bhereby licen[cs]es\b|\b(?:right|licen[cs]e) to use\b",
        _LICENSE + r"|grant",
        "a license granted by one party to the other",
        r"\b(?:hereby\s+)?grants?\b.{0,200}\blicen[cs]e\b|\bhereby licen[cs]es\b",
    ),
    _profile(
        "Post-Termination Services",
        r"\bafter (?:the )?(?:termination|expiration)\b|\bpost-?termination\b|\bwind-?down\b|\btransition\b",
        r"\b(?:after|following|upon|on|post-?)\s*(?:the\s+|any\s+|such\s+)?(?:termination|expiration|expiry)\b|\bsurviv\w+|"
        r"\bwind-?down\b|\btransition\w*|\bsell[- ]off\b|\blast[- ]time buy\b|\blast[- ]buy\b",
        r"terminat|expir|effect of|surviv",
        "an obligation after termination or expiration",
        r"^\W*(?:\(?\w{1,3}[.)]\s*)?(?:upon|after|following|on)\s+(?:the\s+|any\s+|such\s+)?(?:termination|expiration|expiry)\b|\b(?:after|following)\b.{0,30}\b(?:termination|expiration)\b.{0,80}\b(?:shall|will|may)\b",
    ),
    _profile(
        "Audit Rights",
        r"\baudit\w*|\binspect\w*",
        r"\baudit\w*|\binspect\w*|\bexamin\w*|\bbooks\b|\brecords\b|\baccess to\b.{0,40}\b(?:premises|facilit\w+|locations?)\b",
        r"audit|records|inspection|books",
        "a right to audit or inspect books, records or premises",
        r"\b(?:right|entitled|may|shall be permitted)\b.{0,60}\b(?:audit|inspect|examin)\w*",
    ),
    _profile(
        "Cap On Liability",
        r"\bcap on liabilit\w*|\blimit\w* (?:of|on) (?:its |the )?liabilit\w*|\bmaximum (?:amount|liability)\b|\bliabilit\w*\b.{0,30}\b(?:cap|limit)",
        r"\bliab\w*\b.{0,250}\b(?:exceed\w*|limited to|in no event|maximum|aggregate|cap)\b|\bin no event\b.{0,150}\bliab\w*|"
        r"\bshall not be liable\b|\b(?:consequential|incidental|indirect|special|punitive)\b.{0,80}\bdamages\b|"
        r"\b(?:action|claim|suit|proceeding)s?\b.{0,120}\b(?:brought|commenced|filed)\b.{0,80}\b(?:within|after|more than)\b",
        r"liabilit|damages|limitation",
        "a cap or limit on liability (a maximum amount, excluded damages, a time limit for claims)",
        r"\bin no event\b.{0,200}\b(?:exceed\w*|liab\w*)|\b(?:aggregate|total|maximum|cumulative) liabilit\w*|\bliabilit\w*\b.{0,120}\b(?:shall not exceed|limited to|not to exceed)\b",
    ),
    _profile(
        "Uncapped Liability",
        r"\buncapped\b|\bunlimited liabilit\w*|\bliabilit\w*\b.{0,30}\buncap",
        r"\b(?:limitations?|limits?|caps?|exclusions?)\b.{0,150}\b(?:shall not apply|do(?:es)? not apply|will not apply|not be limited)\b|"
        r"\b(?:except|excluding|other than|does not apply to)\b.{0,150}\b(?:indemnif\w*|breach of (?:its )?(?:confidential\w*|section)|gross negligence|"
        r"willful|wilful|infring\w*|fraud)\b|\bunlimited\b|\bliab\w*\b.{0,60}\b(?:for all|any and all)\b",
        r"liabilit|damages|limitation|indemnif",
        "liability that is uncapped (a limitation that does not apply to some breach)",
        r"\b(?:limitations?|limits?|exclusions?)\b.{0,150}\b(?:shall not apply|do(?:es)? not apply|will not apply)\b|^\W*except (?:for|with respect to|in the case of)\b.{0,200}\bliab",
    ),
    _profile(
        "Liquidated Damages",
        r"\bliquidated damages\b|\btermination fee\b",
        r"\bliquidated damages\b|\btermination (?:fee|charge|payment)\b|\bbreak(?:-?up)? fee\b|\bpenalt\w+|\bearly termination\b.{0,40}\b(?:fee|charge|payment)\b",
        r"liquidated|damages|termination",
        "liquidated damages or a termination fee",
    ),
    _profile(
        "Warranty Duration",
        r"\bwarrant\w*\b.{0,80}\b(?:duration|period|how long|long)\b|\b(?:duration|period)\b.{0,40}\bwarrant\w*",
        r"\bwarrant\w*|\bguarant\w*|\bdefect\w*",
        r"warrant",
        "a warranty period",
    ),
    _profile(
        "Insurance",
        r"\binsur\w*",
        r"\binsur\w*|\bpolic(?:y|ies) of\b|\bcoverage\b",
        r"insurance",
        "a requirement to hold insurance",
        r"\b(?:maintain|carry|carries|obtain|procure|secure|provide|keep)\b.{0,120}\binsur\w*",
    ),
    _profile(
        "Covenant Not To Sue",
        r"\bnot to sue\b|\bcontest\w*\b.{0,40}\bvalidity\b|\bbring\w*\b.{0,20}\bclaims?\b",
        r"\b(?:contest|challeng|disput|attack|oppos)\w*\b.{0,100}\b(?:validity|ownership|title|rights?|trademarks?|patents?)\b|\bnot (?:to )?sue\b|"
        r"\bcovenants? not to\b|\brelease\w*\b.{0,60}\bclaims?\b|\bwaive\w*\b.{0,60}\bclaims?\b",
        r"covenant|release|validity|ownership|intellectual property|trademark",
        "a restriction on contesting the other party's intellectual property or bringing claims",
    ),
    _profile(
        "Third Party Beneficiary",
        r"\bbeneficiar\w*|\bnon-?contracting part",
        r"\bbeneficiar\w*",
        r"beneficiar",
        "a third-party beneficiary",
    ),
    _profile(
        "Governing Law",
        r"\bgoverning law\b|\bgovern\w*\b|\bchoice of law\b|\bwhose laws?\b|\bwhich (?:state|country)\b",
        r"\bgovern\w*|\bconstru\w*|\binterpret\w*|\blaws? of\b|\benforce\w*",
        r"governing law|applicable law|choice of law|jurisdiction|governing",
        "a governing-law clause",
        r"\bgoverned by\b|\bconstrued (?:and enforced )?in accordance with\b|\blaws of\b.{0,80}\bgovern",
    ),
)


# How a clause of each category is commonly drafted: one typical sentence, written from CUAD's category
# descriptions and common contract wording (not from the evaluation contracts). A search for a question
# about the clause reads it beside the question (``clause_expansion``): the question asks in a reader's
# words ("Is consent required if the contract is assigned?"), the contract answers in a drafter's.
EXEMPLARS: dict[str, str] = {
    "Most Favored Nation": "If Supplier offers more favorable prices or terms to any other customer, Supplier shall offer "
                           "the same more favorable prices and terms to Customer.",
    "Competitive Restriction Exception": "Notwithstanding the foregoing, nothing in this Section shall prevent or restrict "
                                         "either party from engaging in the excepted business.",
    "No-Solicit Of Employees": "Neither party shall, during the term and for one year thereafter, solicit for employment "
                               "or hire any employee of the other party.",
    "No-Solicit Of Customers": "Neither party shall solicit, induce or divert any customer or client of the other party.",
    "Non-Compete": "During the term, neither party shall engage in any business that competes with the products or "
                   "services of the other party.",
    "Exclusivity": "Company appoints Distributor as its exclusive distributor and shall not appoint any other "
                   "distributor or sell the products to any third party.",
    "Non-Disparagement": "Neither party shall make any disparaging or derogatory statements about the other party.",
    "Termination For Convenience": "Either party may terminate this Agreement at any time, without cause, upon thirty "
                                   "(30) days prior written notice.",
    "Rofr/Rofo/Rofn": "Before offering the rights to any third party, Company shall first offer them to the other party, "
                      "which shall have a right of first refusal.",
    "Change Of Control": "In the event of a change of control, merger or sale of all or substantially all of the assets "
                         "of a party, the other party may terminate this Agreement.",
    "Anti-Assignment": "Neither party may assign or transfer this Agreement or any rights or obligations hereunder "
                       "without the prior written consent of the other party.",
    "Revenue/Profit Sharing": "Company shall pay the other party a royalty equal to a percentage of the net sales, "
                              "revenues or profits it receives.",
    "Price Restrictions": "The prices shall remain fixed and shall not be increased during the term.",
    "Minimum Commitment": "Customer shall purchase a minimum quantity of products of not less than the minimum annual "
                          "amount.",
    "Volume Restriction": "If use exceeds the maximum number or threshold, additional fees shall apply or the other "
                          "party's consent is required.",
    "Joint Ip Ownership": "Intellectual property developed jointly by the parties shall be jointly owned by both parties.",
    "Ip Ownership Assignment": "Contractor hereby assigns to Company all right, title and interest in the intellectual "
                               "property and work product created hereunder.",
    "Source Code Escrow": "Licensor shall deposit the source code with an escrow agent, to be released to Licensee on a "
                          "release event.",
    "Unlimited/All-You-Can-Eat-License": "Licensee may use the licensed product for an unlimited number of users, copies "
                                         "and sites at no additional fee.",
    "Irrevocable Or Perpetual License": "Licensor grants Licensee a perpetual, irrevocable, worldwide license.",
    "Affiliate License-Licensor": "The license includes the intellectual property owned by Licensor and its affiliates.",
    "Affiliate License-Licensee": "The license granted to Licensee extends to its affiliates and subsidiaries.",
    "Non-Transferable License": "The license is non-transferable and non-sublicensable and may not be assigned without "
                                "consent.",
    "License Grant": "Licensor hereby grants to Licensee a non-exclusive license to use the licensed technology and "
                     "trademarks.",
    "Post-Termination Services": "Upon termination or expiration of this Agreement, the party shall continue to provide "
                                 "transition services and may sell off its remaining inventory.",
    "Audit Rights": "Each party shall keep accurate books and records, which the other party may inspect and audit upon "
                    "reasonable notice.",
    "Cap On Liability": "In no event shall either party's aggregate liability under this Agreement exceed the amounts "
                        "paid, nor shall either party be liable for indirect or consequential damages.",
    "Uncapped Liability": "The limitations of liability shall not apply to breaches of confidentiality, indemnification "
                          "obligations, gross negligence or willful misconduct.",
    "Liquidated Damages": "The breaching party shall pay liquidated damages or a termination fee in the amount stated.",
    "Warranty Duration": "Supplier warrants that the products shall be free from defects for a period of twelve (12) "
                         "months from delivery.",
    "Insurance": "Each party shall maintain general liability insurance with coverage of at least one million dollars "
                 "per occurrence.",
    "Covenant Not To Sue": "Licensee shall not contest or challenge the validity of Licensor's patents or trademarks, or "
                           "bring any claim against Licensor.",
    "Third Party Beneficiary": "Nothing in this Agreement confers any rights on any person other than the parties; there "
                               "are no third-party beneficiaries.",
    "Governing Law": "This Agreement shall be governed by and construed in accordance with the laws of the State of.",
}


def clause_profile(question: str) -> ClauseProfile | None:
    """The clause category ``question`` asks about (the first profile whose question pattern
    matches the question proper), or None."""
    for profile in PROFILES:
        if profile.question.search(question):
            return profile
    return None


@lru_cache(maxsize=1024)
def asked_clause(question: str) -> ClauseProfile | None:
    """The clause category a whole question (lead-in and instructions included) asks about: the
    ``clause_profile`` of its question proper. Cached, as the search, the passages added after it, the
    answerer and grounding each ask it of the same question."""
    from pipeline.answer_kinds import question_core

    return clause_profile(question_core(question))


def states_clause(profile: ClauseProfile, sentence: str) -> bool:
    return bool(profile.signal.search(sentence))


def states_clause_strongly(profile: ClauseProfile, sentence: str) -> bool:
    return profile.strong is not None and bool(profile.strong.search(sentence))


def heading_matches(profile: ClauseProfile, context: str) -> bool:
    """Whether the heading in force (the last part of the passage's heading context) is this clause's."""
    heading = context.rsplit("|", 1)[-1] if context else ""
    return bool(heading.strip()) and bool(profile.heading.search(heading))


# Passages a question about a known clause may add to the retrieved ones: the search for the question
# ranks passages worded like the question, and a clause is often worded unlike it ("Is there a
# requirement for insurance ..." against "Distributor warrants that it carries general liability
# insurance ..."); a second search for what the clause says finds those.
MAX_EXTRA_PASSAGES = 3
EXTRA_SEARCH_K = 5


def passages_to_add(question: str, evidence: list, search) -> list:
    """For a question about a known kind of clause none of whose ``evidence`` passages has the clause's
    wording, up to ``MAX_EXTRA_PASSAGES`` passages found by ``search(query, k)`` for the clause's
    description (``looks_for``) that ``evidence`` lacks, in the search's order; empty otherwise. ``search`` is the ask's own search (same collection,
    documents and filters), so nothing the caller may not read is added. The same seam as
    ``pipeline.table_answers.rows_to_add``: the caller shows them after the retrieved sources."""
    profile = asked_clause(question)
    # A passage with the clause's wording is already there: the answerer quotes it; nothing is added.
    if profile is None or any(states_clause(profile, " ".join(e.text.split())) for e in evidence):
        return []
    seen = {e.chunk_id for e in evidence}
    return [h for h in search(profile.looks_for, EXTRA_SEARCH_K) if h.chunk_id not in seen][:MAX_EXTRA_PASSAGES]


# The exemplar's words count as much as the question's own in BM25: the exemplar is what an answering
# clause says (chosen on questions_more part 1/2 and checked on part 2/2, docs/retrieval.md).
EXEMPLAR_WEIGHT = 1.0


def clause_expansion(question: str) -> QueryExpansion | None:
    """The store's query expander (``ingest.query.QueryExpander``): for a question about a known kind of
    clause, how such a clause is commonly drafted (``EXEMPLARS``); None otherwise."""
    profile = asked_clause(question)
    if profile is None or profile.name not in EXEMPLARS:
        return None
    return QueryExpansion(EXEMPLARS[profile.name], weight=EXEMPLAR_WEIGHT)
