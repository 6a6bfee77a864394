"""pipeline.normalise: the typesetting grounding folds away before it compares a quote with its source."""

from __future__ import annotations

from pipeline.normalise import flat, quote_forms, source_forms


def test_flat_folds_quotes_dashes_spaces_ligatures_blanks_and_case() -> None:
    assert flat("“Oﬃce”\u00a0—\u2009the  Party’s\u00adfee\n") == "\"office\" - the party'sfee"
    assert flat("Name: ________  ____ Date ........ 3") == flat("Name: _ Date ... 3") == "name: _ date ... 3"


def test_a_hyphenated_line_break_reads_both_ways_in_a_source_and_in_a_quote() -> None:
    assert source_forms("termi-\nnation and well-\n  known") == (
        "termi- nation and well- known", "termination and wellknown", "termi-nation and well-known",
    )
    assert source_forms("no break here") == ("no break here",)
    assert set(quote_forms("termi- nation")) == {"termi- nation", "termination", "termi-nation"}
    assert quote_forms("a plain quote") == ("a plain quote",)


def test_figures_are_one_number_however_written_and_dates_keep_their_readings() -> None:
    from decimal import Decimal

    from pipeline.figures import computation, date_in, dates_in, number_in, numbers_in

    source = numbers_in("Capital expenditure was 1,577.00 (in millions) and 5 plants.")
    (written,) = numbers_in("$1.577 billion")
    assert written.value == Decimal("1577000000") and number_in(written, numbers_in("$1,577 million"))
    assert number_in(numbers_in("1.6 billion")[0], numbers_in("1,577 million"))  # rounded as the answer writes it
    assert not number_in(numbers_in("5,000")[0], source)  # no scale word: 5 is not 5,000
    found, blanked = dates_in("signed 03/04/2021 here")
    assert found[0][0] == {(2021, 3, 4), (2021, 4, 3)} and "2021" not in blanked
    assert date_in({(2021, 3, 31)}, set(), "made the 31st day of march, 2021")
    assert computation("Computed: 10 + 5 = 16.") == ({Decimal(16)}, ["computed 16 but 10 + 5 = 15"])
