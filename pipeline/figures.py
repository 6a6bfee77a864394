"""Numbers and dates as grounding reads them: found in text, normalised, and compared with a source's.

"$1,577 million", "1577.00" and "1.577 billion" are one number; "5" is not "5,000" unless a scale word
says so; a figure rounded to the precision the answer writes still matches its source. A date is
compared by its readings (03/04/2021 is 3 April or 4 March), and legal prose ("the 31st day of March,
2021") by its parts. A sentence that says it computed a figure is checked by its arithmetic instead.
"""

from __future__ import annotations

import ast
import operator
import re
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

_SCALES = {
    "thousand": 3, "k": 3, "million": 6, "mn": 6, "mm": 6, "m": 6, "billion": 9, "bn": 9, "b": 9,
    "trillion": 12, "tn": 12,
}
_NUMBER = re.compile(
    r"(?<![\w.,])(?P<num>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?)"
    r"(?:(?P<tight>k|m|bn|mn|b)\b|\s?(?P<word>thousand|million|billion|trillion|bn|mn|mm|tn)\b)?",
    re.IGNORECASE,
)
_MONTHS = {
    name: i
    for i, names in enumerate(
        ("jan january", "feb february", "mar march", "apr april", "may", "jun june", "jul july",
         "aug august", "sep sept september", "oct october", "nov november", "dec december"),
        start=1,
    )
    for name in names.split()
}
_MONTH = r"(?P<month>" + "|".join(sorted(_MONTHS, key=len, reverse=True)) + r")\.?"
_DATES = [
    re.compile(_MONTH + r"\s+(?P<day>\d{1,2})(?:st|nd|rd|th)?,?\s+(?P<year>\d{4})\b", re.I),
    re.compile(r"\b(?P<day>\d{1,2})(?:st|nd|rd|th)?\s+(?:day\s+of\s+)?" + _MONTH + r",?\s+(?P<year>\d{4})\b", re.I),
    re.compile(r"\b(?P<year>\d{4})-(?P<mnum>\d{2})-(?P<day>\d{2})\b"),
    re.compile(r"\b(?P<a>\d{1,2})[/.](?P<b>\d{1,2})[/.](?P<year>\d{4})\b"),
    re.compile(r"\b" + _MONTH + r",?\s+(?P<year>\d{4})\b", re.I),
]

Date = tuple[int, int, int | None]


@dataclass(frozen=True)
class Number:
    """A number as written (``text``) and its value with any scale word applied."""

    value: Decimal
    mantissa: Decimal
    scaled: bool  # written with a scale word (million, bn, ...)
    text: str


def numbers_in(text: str) -> list[Number]:
    """Every number in ``text`` ("1,577", "2.5bn", "40 million"), in order."""
    out = []
    for m in _NUMBER.finditer(text):
        try:
            mantissa = Decimal(m.group("num").replace(",", ""))
        except InvalidOperation:
            continue
        scale = (m.group("tight") or m.group("word") or "").casefold()
        out.append(Number(mantissa.scaleb(_SCALES.get(scale, 0)), mantissa, bool(scale), m.group(0)))
    return out


def dates_in(text: str) -> tuple[list[tuple[set[Date], tuple[int, int]]], str]:
    """Dates in ``text`` (each as its possible readings, with its span) and the text with them blanked."""
    found: list[tuple[set[Date], tuple[int, int]]] = []
    for pattern in _DATES:
        for m in pattern.finditer(text):
            if any(s < m.end() and m.start() < e for _, (s, e) in found):
                continue
            groups = m.groupdict()
            year = int(groups["year"])
            if groups.get("a"):  # 03/04/2021: month/day or day/month
                a, b = int(groups["a"]), int(groups["b"])
                readings = {(year, x, y) for x, y in ((a, b), (b, a)) if 1 <= x <= 12 and 1 <= y <= 31}
            else:
                month = int(groups["mnum"]) if groups.get("mnum") else _MONTHS[groups["month"].casefold()]
                day = int(groups["day"]) if groups.get("day") else None
                readings = {(year, month, day)}
            if readings:
                found.append((readings, m.span()))
    blanked = text
    for _, (s, e) in found:
        blanked = blanked[:s] + " " * (e - s) + blanked[e:]
    return found, blanked


def date_in(readings: set[Date], source_dates: set[Date], source_text: str) -> bool:
    for year, month, day in readings:
        if any(sy == year and sm == month and (day is None or sd == day) for sy, sm, sd in source_dates):
            return True
        # Legal prose ("the 31st day of March, 2021") that the patterns miss: the parts are all there.
        month_names = [n for n, i in _MONTHS.items() if i == month and len(n) > 3]
        if str(year) in source_text and any(n in source_text for n in month_names) and (
            day is None or re.search(rf"\b{day}(?:st|nd|rd|th)?\b", source_text)
        ):
            return True
    return False


def number_in(number: Number, sources: list[Number]) -> bool:
    """Equal after normalisation ("$1,577 million" == "1577.00" == "1.577 billion"), or equal to a
    source number rounded to the answer's precision when the answer keeps >= 2 significant digits."""
    exponent = number.mantissa.as_tuple().exponent
    digits = len(number.mantissa.normalize().as_tuple().digits)
    for source in sources:
        # Thousands/millions shifts only when a scale word says so: "5" must not match "5,000".
        shifts = range(-12, 13, 3) if (number.scaled or source.scaled) else (0,)
        for shift in shifts:
            value = source.value.scaleb(shift)
            if value == number.value:
                return True
            if digits >= 2 and isinstance(exponent, int):
                scale = number.value.adjusted() - number.mantissa.adjusted()
                quantum = Decimal(1).scaleb(exponent + scale)
                if value.quantize(quantum, rounding=ROUND_HALF_UP) == number.value:
                    return True
    return False


# -- computed numbers ---------------------------------------------------------------------------------

_COMPUTED = re.compile(r"\b(?:computed|calculated|calculation|derived|berechnet|calculé|calculado|calcolato)\b", re.I)
_EXPRESSION_TAIL = re.compile(r"[\d\s.,+\-−–×x*/÷()%$€£]+$")
_RESULT_HEAD = re.compile(r"\s*[$€£]?\s*(\d[\d,]*(?:\.\d+)?)\s*(%?)")
_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}


def _evaluate(expression: str) -> Decimal | None:
    cleaned = (
        expression.replace(",", "").replace("$", "").replace("€", "").replace("£", "").replace("%", "")
        .replace("×", "*").replace("x", "*").replace("÷", "/").replace("−", "-").replace("–", "-")
    )
    try:
        tree = ast.parse(cleaned.strip(), mode="eval").body
    except SyntaxError:
        return None

    def walk(node: ast.AST) -> Decimal:
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
            return Decimal(str(node.value))
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            return _OPS[type(node.op)](walk(node.left), walk(node.right))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -walk(node.operand)
        raise ValueError("not arithmetic")

    try:
        return walk(tree)
    except (ValueError, ArithmeticError):
        return None


def computation(sentence: str) -> tuple[set[Decimal], list[str]]:
    """For a sentence marked as computed: the results (exempt from the source check, wherever the
    sentence states them) and the problems with its arithmetic (an expression giving another result)."""
    if not _COMPUTED.search(sentence) or "=" not in sentence:
        return set(), []
    results: set[Decimal] = set()
    problems: list[str] = []
    for eq in re.finditer("=", sentence):
        result = _RESULT_HEAD.match(sentence, eq.end())
        if not result:
            continue
        claimed = Decimal(result.group(1).replace(",", ""))
        results.add(claimed)
        tail = _EXPRESSION_TAIL.search(sentence[: eq.start()])
        value = _evaluate(tail.group(0)) if tail and re.search(r"[+\-−–×x*/÷]", tail.group(0)) else None
        if value is None:
            continue
        candidates = [value, value * 100] if result.group(2) else [value]
        tolerance = max(abs(claimed) * Decimal("0.005"), Decimal(1).scaleb(claimed.as_tuple().exponent) / 2)
        if all(abs(c - claimed) > tolerance for c in candidates):
            problems.append(f"computed {result.group(1)} but {tail.group(0).strip()} = {value.normalize():f}")
    return results, problems


# Numbers a formula of a computed sentence may hold that are definitions, not figures a source states
# (the 2 of an average, the 365 of days outstanding, the 100 of a percentage).
FORMULA_CONSTANTS = frozenset({"2", "3", "4", "5", "12", "100", "360", "365"})
