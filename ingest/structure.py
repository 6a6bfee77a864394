"""Document structure read from page text: headings, clause numbers, statement titles, running headers.

A chunk alone often does not say what it is about: the rows of a cash-flow table never repeat the words
"cash flows", and the body of clause 12.3 never says "Governing Law". This module finds, for any point of
a page, the headings in force there, so the chunker can carry them into each chunk's ``context`` (embedded
and indexed with the chunk, never quoted as its text).

Everything here is layout-free heuristics on lines of text (the same for PyMuPDF, pypdf and OCR pages):

- a *page title* is the run of heading-like lines at the top of a page ("3M Company and Subsidiaries /
  Consolidated Statement of Cash Flows / Years ended December 31 / (Millions) 2018 2017 2016");
- a *section heading* is a numbered or capitalised short line ("5. SHIPMENT, CANCELLATION", "ARTICLE 12",
  "NOTE 5. Acquisitions") or an inline clause title ("12.3 Governing Law. This Agreement ..."); it stays in
  force, across pages, until the next heading of the same or a higher level;
- *running headers and footers* (a line on many pages, page numbers aside) are boilerplate, never headings.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from ingest.models import PageText

# Levels: 1 = a major section (ARTICLE, NOTE, "5. TERM"), 2 = a minor one (5.2, "A. Returns", table groups).
MAJOR, MINOR = 1, 2

_KEYWORD_HEADING = re.compile(
    r"^(?:ARTICLE|Article|SECTION|Section|SCHEDULE|Schedule|EXHIBIT|Exhibit|ANNEX|Annex|APPENDIX|Appendix|"
    r"PART|Part|ITEM|Item|NOTE|Note)\s+(?:\d+[A-Z]?|[IVXLC]+)\b"
)
_NUMBERED = re.compile(r"^(\d{1,2}(?:\.\d{1,2})*)\.?\s+\S")  # "5. TERM", "12.3 Governing Law"
_LETTERED = re.compile(r"^(?:[A-Z]|\(?[a-z]{1,3}\)|\(?[ivx]{1,4}\))[.)]\s+\S")  # "A. Returns", "(a) ..."
# "12.3 Governing Law. This Agreement ..." / "A. SHIPMENT. Unless ...": a clause that opens with its title.
_INLINE_TITLE = re.compile(
    r"^((?:\d{1,2}(?:\.\d{1,2})*\.?|[A-Z][.)]|\([a-z0-9]{1,3}\))\s+"
    r"[A-Z][A-Za-z’'&/,\- ]{2,60}?)[.:]\s+(?=[A-Z(\"“])"
)
_STATEMENT_TITLE = re.compile(
    r"(?i)\b(?:consolidated|combined|condensed)\b.*\b(?:statements?|balance\s+sheets?)\b"
    r"|\bstatements?\s+of\s+(?:cash\s+flows?|operations|income|earnings|comprehensive|financial\s+position|"
    r"(?:share|stock)holders|changes)"
    r"|\bbalance\s+sheets?\b"
)
# The three primary statements by their titles: a heading that is the title and nothing else (a qualifier
# such as "Consolidated" required, a parenthesis allowed), so "Balance Sheet:" in the MD&A or "Amounts
# recognized in the Consolidated Balance Sheet" in a note are not statement pages. Matched with spaces
# removed: PyMuPDF reads some filings' titles as "Consolidated Statement of Cash Flow s".
_QUALIFIER = r"(?:consolidated|condensed|combined|unaudited|interim)+"
_STATEMENT_KIND = tuple(
    (kind, re.compile(rf"^(?:{_QUALIFIER}(?:{title})|statements?of{_QUALIFIER}(?:{items}))(?:unaudited)?$"))
    for kind, title, items in (
        ("cash_flows", r"statements?ofcashflows?|cashflows?statements?", r"cashflows?"),
        ("balance_sheet", r"balancesheets?|statements?offinancial(?:position|condition)", r"financial(?:position|condition)"),
        (
            "income",
            r"statements?of(?:operations|income|earnings)(?:andcomprehensive(?:income|loss))?|incomestatements?",
            r"(?:operations|income|earnings)",
        ),
    )
)
# Lines of a table's column header: years, periods, units ("(Millions)", "2018 2017", "Q2 2023").
_COLUMN_HEADER = re.compile(
    r"(?i)^(?:\(?(?:in\s+)?(?:millions|thousands|billions|dollars)[^)]*\)?|(?:fy|q[1-4]\s*)?(?:19|20)\d\d(?:\s+(?:fy|q[1-4]\s*)?(?:19|20)\d\d)*"
    r"|(?:years?|quarters?|three|six|nine|twelve|months)\s+ended.*|at\s+\w+\s+\d{1,2}.*|as\s+of\s+.*)$"
)
_SMALL_WORDS = frozenset("a an and as at by for from in of on or the to with under per vs".split())
_MAX_HEADING_WORDS = 14
_PAGE_TITLE_LINES = 8


@dataclass(frozen=True)
class Heading:
    start: int  # character offset of the heading in the page text
    text: str
    level: int


@dataclass(frozen=True)
class PageStructure:
    """The page title (top-of-page heading lines) and the section headings of one page, in order."""

    title: str
    headings: tuple[Heading, ...]


def _clean(line: str) -> str:
    return " ".join(line.split())


def _boilerplate_key(line: str) -> str:
    """A line with digits removed: running footers differ only in their page number."""
    return re.sub(r"\d+", "#", _clean(line)).lower()


def _lines(text: str) -> list[tuple[int, str]]:
    out, cursor = [], 0
    for raw in text.split("\n"):
        if raw.strip():
            out.append((cursor + len(raw) - len(raw.lstrip()), _clean(raw)))
        cursor += len(raw) + 1
    return out


def running_lines(pages: list[PageText]) -> frozenset[str]:
    """Lines (digits ignored) found on at least 3 pages and on a third of them: headers and footers."""
    if len(pages) < 3:
        return frozenset()
    counts = Counter(key for page in pages for key in {_boilerplate_key(line) for _, line in _lines(page.text)})
    threshold = max(3, len(pages) // 3)
    return frozenset(key for key, n in counts.items() if n >= threshold and re.search(r"[a-z]", key))


def document_label(path: str) -> str:
    """The document's file name as words: it names the company, party or period more often than not."""
    return re.sub(r"[_\s]+", " ", Path(path).stem).strip()


def statement_kind(heading: str) -> str | None:
    """Which primary financial statement a heading is the title of ("cash_flows", "balance_sheet",
    "income"), if any. A parenthesis after the title ("(in millions)", "(unaudited)") is ignored."""
    if not heading[:1].isupper():
        return None  # "... recognized in the consolidated balance sheet." is the end of a sentence
    squeezed = re.sub(r"[^a-z]", "", re.sub(r"\(.*?\)", "", heading.lower()))
    for kind, pattern in _STATEMENT_KIND:
        if pattern.match(squeezed):
            return kind
    return None


def _is_title_case(words: list[str]) -> bool:
    significant = [w for w in words if w.lower() not in _SMALL_WORDS and re.match(r"[^\W\d_]", w)]
    if not significant:
        return False
    capitalised = sum(w[0].isupper() for w in significant)
    return capitalised / len(significant) >= 0.75


def heading_level(line: str) -> int | None:
    """MAJOR, MINOR, or None when ``line`` reads as body text, a number row or a fragment."""
    words = line.split()
    if not words or len(words) > _MAX_HEADING_WORDS or not re.search(r"[^\W\d_]{2}", line):
        return None
    if line[-1] in ",;" or (line[-1] == "." and len(words) > 6 and not line.isupper()):
        return None  # the end of a sentence, not a title
    letters = [c for c in line if c.isalpha()]
    upper = sum(c.isupper() for c in letters) / len(letters) >= 0.8
    if _KEYWORD_HEADING.match(line):
        return MAJOR
    numbered = _NUMBERED.match(line)
    if numbered and (upper or _is_title_case(words[1:])):
        return MAJOR if "." not in numbered.group(1) else MINOR
    if _LETTERED.match(line) and (upper or _is_title_case(words[1:])):
        return MINOR
    if upper and len(letters) >= 4:
        return MAJOR
    if _STATEMENT_TITLE.search(line) and len(words) <= 10:
        return MAJOR
    if _is_title_case(words) and len(words) <= 10 and not line.endswith("."):
        return MINOR
    return None


def page_structure(page: PageText, boilerplate: frozenset[str] = frozenset()) -> PageStructure:
    lines = [(start, line) for start, line in _lines(page.text) if _boilerplate_key(line) not in boilerplate]
    title_parts: list[str] = []
    for _, line in lines[:_PAGE_TITLE_LINES]:
        if heading_level(line) is not None or _COLUMN_HEADER.match(line) or line in ("$", "%"):
            if line not in ("$", "%"):
                title_parts.append(line)
            continue
        break
    headings: list[Heading] = []
    for start, line in lines:
        level = heading_level(line)
        if level is not None:
            headings.append(Heading(start, line, level))
            continue
        inline = _INLINE_TITLE.match(line)
        if inline and len(inline.group(1).split()) <= 8:
            headings.append(Heading(start, inline.group(1), MINOR))
    return PageStructure(_join_title(title_parts), tuple(headings))


def _join_title(parts: list[str]) -> str:
    """Title lines joined; consecutive column-header lines (2018 / 2017 / 2016) become one row."""
    out: list[str] = []
    for part in parts:
        if out and _COLUMN_HEADER.match(part) and re.fullmatch(r"[\d\sFYQfyq]+", part) and re.fullmatch(r"[\d\sFYQfyq]+", out[-1]):
            out[-1] = f"{out[-1]} {part}"
        else:
            out.append(part)
    return "; ".join(out)


@dataclass
class SectionTracker:
    """The headings in force as a reader walks a document page by page, position by position."""

    major: str = ""
    minor: str = ""

    def advance(self, heading: Heading) -> None:
        if heading.level == MAJOR:
            self.major, self.minor = heading.text, ""
        else:
            self.minor = heading.text

    def current(self) -> list[str]:
        return [h for h in (self.major, self.minor) if h]
