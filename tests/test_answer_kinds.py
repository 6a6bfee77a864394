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
