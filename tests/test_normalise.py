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
