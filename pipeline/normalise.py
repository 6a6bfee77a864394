"""Text as grounding compares it: the typesetting a reader does not see, taken out of quotes and sources.

A quote copied from a PDF differs from the page's text layer in ways no reader notices: typographic
quotes and dashes, spaces of other widths, soft hyphens, ligatures, a word hyphenated across a line,
a form's blank drawn with more or fewer underscores, leader dots. ``flat`` folds those (and case and
whitespace) away; ``source_forms`` and ``quote_forms`` give the readings of a hyphenated line break.
What is left after them is a real difference, which grounding reports.
"""

from __future__ import annotations

import re

_CHAR_MAP = str.maketrans(
    {
        "“": '"', "”": '"', "„": '"', "‟": '"', "«": '"', "»": '"', "″": '"', "＂": '"',
        "‘": "'", "’": "'", "‚": "'", "‛": "'", "′": "'", "`": "'", "´": "'",
        "–": "-", "—": "-", "−": "-", "‐": "-", "‑": "-", "‒": "-", "―": "-", "﹣": "-", "－": "-",
        # Spaces of every width, and characters that take none (soft hyphen, zero-width, BOM).
        "\u00a0": " ", "\u2002": " ", "\u2003": " ", "\u2004": " ", "\u2005": " ", "\u2006": " ",
        "\u2007": " ", "\u2008": " ", "\u2009": " ", "\u200a": " ", "\u202f": " ", "\u205f": " ", "\u3000": " ",
        "\u00ad": None, "\u200b": None, "\u200c": None, "\u200d": None, "\u2060": None, "\ufeff": None,
        # Ligatures a PDF's text layer keeps and a reader does not see.
        "ﬀ": "ff", "ﬁ": "fi", "ﬂ": "fl", "ﬃ": "ffi", "ﬄ": "ffl", "ﬅ": "st", "ﬆ": "st",
        # prompt.neutralise's look-alikes map back, so a quote of a defused passage still matches.
        "‹": "<", "›": ">", "⟦": "[", "⟧": "]",
    }
)
_HYPHEN_BREAK = re.compile(r"(\w)-[ \t]*\n\s*(\w)")
# After flattening a line break is a space: "termi- nation" in a quote copied from a page.
_HYPHEN_SPACE = re.compile(r"(\w)- (\w)")
# A form's blank is a run of underscores whose length (and spacing) typesetting decides: "___" == "_".
_UNDERSCORES = re.compile(r"_+(?:\s*_+)*")
_LEADER_DOTS = re.compile(r"\.{4,}|(?:\. ){3,}\.?")


def flat(text: str) -> str:
    """``text`` with quotes, dashes, spaces and ligatures in one form, blanks and leader dots shortened,
    whitespace collapsed and case folded."""
    folded = " ".join(text.translate(_CHAR_MAP).split()).casefold()
    return _LEADER_DOTS.sub("...", _UNDERSCORES.sub("_", folded))


def source_forms(text: str) -> tuple[str, ...]:
    """A source's text as compared: as is, with words hyphenated across lines joined ("termi-\\nnation"
    -> "termination"), and with the break dropped but the hyphen kept ("well-\\nknown" -> "well-known")."""
    forms = [flat(text)]
    if _HYPHEN_BREAK.search(text):
        forms += [flat(_HYPHEN_BREAK.sub(r"\1\2", text)), flat(_HYPHEN_BREAK.sub(r"\1-\2", text))]
    return tuple(dict.fromkeys(forms))


def quote_forms(quote: str) -> tuple[str, ...]:
    """A quote as compared: as written, and with a hyphen before a line break joined either way
    (not yet flattened: the caller splits it at ellipses first)."""
    forms = [quote]
    if _HYPHEN_BREAK.search(quote) or _HYPHEN_SPACE.search(quote):
        for keep in ("", "-"):
            joined = _HYPHEN_BREAK.sub(rf"\1{keep}\2", quote)
            forms.append(_HYPHEN_SPACE.sub(rf"\1{keep}\2", " ".join(joined.split())))
    return tuple(dict.fromkeys(forms))
