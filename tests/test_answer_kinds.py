"""A rate is asked for as a rate: a dollar amount that happens to sit beside the word "rate" is not it."""

import pytest

from pipeline.answer_kinds import answer_kind, check_kind, value_span

RATE_QUESTION = "What is the interest rate on the company's revolving credit facility?"


@pytest.mark.parametrize(
    "question",
    [RATE_QUESTION, "What was the effective tax rate in 2018?", "What percentage of revenue came from Asia?",
     "What royalty rate does the licensee pay?"],
)
def test_rate_questions_want_a_percentage(question):
    assert answer_kind(question) == "percentage"


def test_a_consulting_fee_does_not_answer_an_interest_rate_question():
    answer = '$18,000 [S2]\n"The Company shall pay Consultant a flat fee consulting rate of $18,000 per month." [S2]'
    check = check_kind(RATE_QUESTION, answer)
    assert check.kind == "percentage" and check.addresses is False


@pytest.mark.parametrize(
    ("text", "span"),
    [("Borrowings bear interest at 6.5% per annum.", "6.5%"),
     ("a rate of twenty-five percent of Net Sales", "twenty-five percent"),
     ("the margin is 125 basis points over SOFR", "125 basis points")],
)
def test_percentages_are_read_as_written(text, span):
    assert value_span("percentage", text) == span
    assert check_kind("What is the interest rate?", f"{text} [S1]").addresses is True


def test_amount_questions_are_unchanged():
    assert answer_kind("What was the capital expenditure in 2018?") == "amount"
    assert answer_kind("How much is the monthly consulting fee?") == "amount"


def test_an_abbreviation_does_not_end_the_question():
    # "(incl. sublicensor)" and "etc. if" used to cut the question, so the rest was read as its core.
    assert answer_kind("Does the contract contain a license grant to a licensee (incl. sublicensor) and the affiliates of such licensee?") == "yes_no_clause"
    assert answer_kind("Is there a fee increase or consent requirement, etc. if one party's use exceeds a threshold?") == "yes_no_clause"


def test_date_values_put_a_calendar_date_before_a_period_and_a_reference():
    from pipeline.answer_kinds import date_values

    preamble = "This Agreement is made and entered into as of this 19th day of July 2018, by and between A Corp. and B LLC."
    assert [(v, s) for _, v, s in date_values(preamble)] == [("19th day of July 2018", 1.0)]
    assert [(v, s) for _, v, s in date_values("This Agreement will be in effect for three (3) years from the Effective Date.")] == [("three (3) years", 0.7)]
    assert date_values("This Agreement shall become effective as of the first date above written.")[0][1:] == ("the first date above written", 0.5)
    # A date only named is the last resort, and "date of first intended use" is no date at all.
    assert date_values("Each party shall appoint a manager after the Effective Date.")[0][2] == 0.2
    assert [v for _, v, s in date_values("submitted at least 7 days prior to the date of first intended use, on May 1, 2019") if s == 1.0] == ["May 1, 2019"]


def test_a_date_given_by_reference_addresses_a_date_question():
    # The answerer reads "the first date above written" as the date (date_values); the grounding check
    # must take it as a date too, or the answerer's own verbatim answer is withheld.
    from pipeline.answer_kinds import check_kind

    for sentence in ("This Agreement shall become effective as of the first date above written.",
                     "IN WITNESS WHEREOF the parties have signed as of the date first written above."):
        assert check_kind("What is the date of this contract?", f'"{sentence}" [S1]').addresses, sentence
    assert not check_kind("What is the date of this contract?", '"The Distributor shall pay all fees." [S1]').addresses


def test_a_clause_stated_in_other_words_addresses_the_yes_no_question_about_it():
    # "IPRs" shares no word with "intellectual property"; the clause's operative wording ("hereby assign
    # ... right, title and interest") still states it. A sentence with neither does not address it.
    question = ("Does intellectual property created by one party become the property of the counterparty, either per "
                "the terms of the contract or upon the occurrence of certain events?")
    stated = ('"To the extent that such IPRs do not vest automatically in the Company by operation of law, you hereby '
              'assign to the Company all of your right, title and interest in any existing and future IPRs." [S1]')
    assert check_kind(question, stated).addresses
    assert not check_kind(question, '"You shall not disclose any of the Company\'s confidential information." [S1]').addresses


def test_a_clause_stated_without_a_modal_verb_addresses_the_question_about_it():
    # No "shall" or "may": the sentence still has the clause's words (a minimum) and the question's topic.
    question = "Is there a minimum order size or minimum amount or units per-time period that one party must buy?"
    assert check_kind(question, '"The minimum logo size is 1” or 25mm." [S1]').addresses
    # A running header shares the topic word but states nothing of the clause.
    assert not check_kind(question, '"Exhibit B - Purchase Order Form" [S1]').addresses
