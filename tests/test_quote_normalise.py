"""Quote matching normalises what typesetting changes and a reader would not: typographic quotes and
dashes, runs of underscores, hyphenation at line ends, ligatures, non-breaking and other spaces,
whitespace runs. And what it must not forgive: a changed word is still not found."""

from __future__ import annotations

from pathlib import Path

import pymupdf
import pytest

from conftest import DRIVEN, SAMPLES
from pipeline.grounding import check_grounding, split_sentences
from pipeline.reasoning import Evidence


def source(text: str, label: str = "S1") -> Evidence:
    return Evidence(label, int(label[1:]), 1, "a" * 64, "contract.pdf", 3, 0, len(text), text, 0.8, "pymupdf")


def quote_found(quoted: str, page_text: str) -> bool:
    report = check_grounding(f'The page says "{quoted}" [S1].', [source(page_text)])
    assert report.quotes == 1, report  # the quote was checked, not skipped
    return not [p for p in report.problems if p.kind == "quote_not_found"]


@pytest.mark.parametrize(
    ("quoted", "page"),
    [
        ("the “Term.”", 'the "Term."'),  # curly vs straight double quotes
        ("the Company’s obligations", "the Company's obligations"),  # apostrophe
        ("Sections 2 – 4", "Sections 2 - 4"),  # en dash
        ("pre-approved", "pre‑approved"),  # non-breaking hyphen on the page
        ("Name: _", "Name: ______________"),  # a form's blank: the run's length is typesetting
        ("Date: ___ ___", "Date: _________"),
        ("termination of this Agreement", "termi-\nnation of this Agreement"),  # hyphenation at a line end
        ("well-known marks", "well-\nknown marks"),  # a real hyphen that fell at a line end
        ("termi- nation of this", "termination of this"),  # the quote kept the page's break
        ("the first Licensed Product", "the ﬁrst Licensed Product"),  # ligature fi on the page
        ("ﬂow of goods", "flow of goods"),  # ligature in the quote
        ("thirty (30) days", "thirty\u00a0(30)\u00a0days"),  # non-breaking spaces
        ("thirty (30) days", "thirty\u2009(30)\n\n   days"),  # thin space and a whitespace run
        ("ten business days", "ten busi\u00adness days"),  # soft hyphen
        ("zero width", "zero\u200b width"),
    ],
    ids=["curly-quotes", "apostrophe", "en-dash", "nb-hyphen", "underscores", "underscore-runs", "hyphen-break",
         "kept-hyphen", "quote-broken", "fi-ligature", "fl-in-quote", "nbsp", "thin-space", "soft-hyphen", "zero-width"],
)
def test_typesetting_differences_do_not_fail_a_quote(quoted, page):
    assert quote_found(quoted, page)


@pytest.mark.parametrize(
    ("quoted", "page"),
    [
        ("sixty (60) days", "thirty (30) days"),
        ("terminate this Agreement", "terminate that Agreement"),
        ("Printed Name: John Smith", "Printed Name: ______________"),
        ("the wellknown marks of Licensor", "the well known marks of Licensor"),
    ],
)
def test_a_changed_word_is_still_not_found(quoted, page):
    assert not quote_found(quoted, page)


def test_the_answerers_own_quote_of_a_defined_term_is_grounded():
    # Before: the curly quote closing “Term.” ended the sentence inside the straight-quoted passage,
    # the piece before it had no citation, and the quote was reported ungrounded (review confidence 0.00).
    page = "2. “Term.” The term of this Agreement shall be two (2) years from the Effective Date."
    answer = f'"{page}" [S1]'
    assert split_sentences(answer) == [answer]
    report = check_grounding(answer, [source(page)], question="What is the term of the agreement?")
    assert (report.verdict, report.problems, report.claims, report.grounded_claims) == ("grounded", [], 1, 1)
    assert report.checks == {"citations": "valid", "quotes": "found", "numbers": "none stated", "addresses_question": "yes"}


def test_quotes_from_a_real_pdf_page_match_after_typesetting_changes():
    # The consulting agreement's page 1, as PyMuPDF extracts it (non-breaking spaces, line breaks).
    with pymupdf.open(SAMPLES / DRIVEN) as pdf:
        page = pdf[0].get_text()
    sentence = " ".join(page.split("Consultant shall perform the following services:")[0].split()[-12:])
    assert len(sentence) > 40
    typeset = sentence.replace("'", "’").replace(" ", "\u00a0", 3)
    assert quote_found(typeset, page)
    assert not quote_found(sentence.replace("the", "a", 1) + " extra words", page)
