"""Order-free comparison of two texts: bag-of-words F1 over lower-cased \\w+ tokens.

Used to check a hidden text layer against the page image, and by bench/ocr_quality.py against gold
text (the same tokenisation reproduces ../shared/eval's 0.67 for plain Tesseract on FUNSD).
"""

from __future__ import annotations

import re
from collections import Counter

_WORD = re.compile(r"\w+")


def word_bag(text: str) -> Counter[str]:
    return Counter(_WORD.findall(text.lower()))


def bag_of_words_f1(reference: str, candidate: str) -> float:
    expected, found = word_bag(reference), word_bag(candidate)
    matched = sum((expected & found).values())
    if matched == 0:
        return 0.0
    precision = matched / sum(found.values())
    recall = matched / sum(expected.values())
    return 2 * precision * recall / (precision + recall)
