"""The offline answerer: it quotes the evidence verbatim, or says the documents do not answer.

It is not a language model and never claims to be one: it ranks the sentences of the retrieved
evidence against the question (cosine similarity of the same MiniLM encoder, plus the share of the
question's content words the sentence contains), and answers with the best few sentences, each in
quotes with its [S#] citation. ``embed`` is the encoder's question path (``Encoder.encode_for_question``:
ONNX Runtime, no torch), so answering costs no model load beyond the one that embedded the question. When no sentence clears the support threshold it refuses. Its trace
lists the program's own steps (what it compared and what it chose), labelled as such.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ingest.chunking import sentence_spans
from ingest.lexical import tokenize
from pipeline.reasoning import ChatTurn, Evidence, ReasonerOutput

NOT_FOUND = "Not found in the documents."
NOTICE = (
    "Docket's extractive answerer quoted the passages below verbatim; it is not a language model and "
    "does not interpret them."
)
# Words of a question that say what kind of answer is wanted rather than what it is about.
_QUESTION_WORDS = frozenset(
    "agreement contract document please give provide answer question details shown state based "
    "relying response information according".split()
)
_MIN_SENTENCE_WORDS = 6  # shorter "sentences" are headings and fragments, not answers


@dataclass
class _Candidate:
    label: str
    sentence: str
    cosine: float
    overlap: float

    @property
    def score(self) -> float:
        return 0.75 * self.cosine + 0.25 * self.overlap


class ExtractiveReasoner:
    name = "extractive"
    notice = NOTICE

    def __init__(
        self,
        embed: Callable[[list[str]], np.ndarray],
        *,
        min_score: float = 0.42,
        max_quotes: int = 3,
        relative_cutoff: float = 0.85,
    ):
        self.embed = embed
        self.min_score = min_score
        self.max_quotes = max_quotes
        self.relative_cutoff = relative_cutoff  # keep quotes scoring within this share of the best

    def answer(
        self,
        question: str,
        evidence: list[Evidence],
        history: list[ChatTurn] | None = None,
        on_delta=None,
    ) -> ReasonerOutput:
        steps = [
            "Program steps of Docket's extractive answerer (not a language model's reasoning).",
            f"1. Split {len(evidence)} evidence passages into sentences.",
        ]
        candidates = self._candidates(question, evidence)
        steps.append(
            f"2. Scored {len(candidates)} sentences: 0.75 x cosine similarity to the question "
            "(MiniLM) + 0.25 x share of the question's content words present."
        )
        ranked = sorted(candidates, key=lambda c: c.score, reverse=True)
        for c in ranked[:5]:
            steps.append(
                f"   {c.label} score {c.score:.3f} (cosine {c.cosine:.3f}, words {c.overlap:.2f}): {c.sentence[:90]!r}"
            )
        best = ranked[0].score if ranked else 0.0
        if best < self.min_score:
            steps.append(f"3. Best score {best:.3f} is below the support threshold {self.min_score}: refused.")
            return self._output("refused", NOT_FOUND, steps, on_delta)
        chosen = [c for c in ranked if c.score >= max(self.min_score, best * self.relative_cutoff)]
        chosen = _distinct(chosen)[: self.max_quotes]
        steps.append(
            f"3. Quoted {len(chosen)} sentence(s) scoring at least {max(self.min_score, best * self.relative_cutoff):.3f}."
        )
        answer = "\n".join(f'"{c.sentence}" [{c.label}]' for c in chosen)
        return self._output("answered", answer, steps, on_delta, citations=_unique(c.label for c in chosen))

    def _candidates(self, question: str, evidence: list[Evidence]) -> list[_Candidate]:
        sentences: list[tuple[str, str]] = []
        for ev in evidence:
            for start, end in sentence_spans(ev.text):
                # Whitespace is folded (PDF line wraps); the words are the source's, verbatim.
                sentence = re.sub(r"\s+", " ", ev.text[start:end])
                if len(sentence.split()) >= _MIN_SENTENCE_WORDS:
                    sentences.append((ev.label, sentence))
        if not sentences:
            return []
        vectors = self.embed([question] + [s for _, s in sentences])
        cosines = vectors[1:] @ vectors[0]
        terms = {t for t in tokenize(question) if t not in _QUESTION_WORDS}
        out = []
        for (label, sentence), cosine in zip(sentences, cosines, strict=True):
            words = set(tokenize(sentence))
            overlap = len(terms & words) / len(terms) if terms else 0.0
            out.append(_Candidate(label, sentence, float(cosine), overlap))
        return out

    def _output(self, status, answer, steps, on_delta, citations=None) -> ReasonerOutput:
        trace = "\n".join(steps)
        if on_delta:
            on_delta("trace", trace)
            on_delta("answer", answer)
        return ReasonerOutput(
            status=status,
            answer=answer,
            trace=trace,
            trace_format="program-steps",
            citations=citations or [],
            provider="docket-extractive",
            parameters={"min_score": self.min_score, "max_quotes": self.max_quotes},
        )


def _normalise(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().lower()


def _distinct(candidates: list[_Candidate]) -> list[_Candidate]:
    """Overlapping chunks repeat sentences; quote each sentence once."""
    seen, out = set(), []
    for c in candidates:
        key = _normalise(c.sentence)
        if key not in seen:
            seen.add(key)
            out.append(c)
    return out


def _unique(labels) -> list[str]:
    return list(dict.fromkeys(labels))
