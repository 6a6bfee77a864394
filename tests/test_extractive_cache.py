"""The extractive answerer reuses the sentence vectors it has computed, and answers exactly as without.

A warm service is asked about the same contracts again and again; embedding the evidence's sentences is
most of an extractive answer's time, so the answerer keeps their vectors (``ExtractiveReasoner._embed``),
but only where a vector does not depend on the texts it was batched with (the fp32 question session).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from service_server import COLLECTION, copy_workspace, ingested_template

QUESTIONS = [
    "How much notice ends the consulting agreement?",
    "Which state's law governs the agreement?",
    "How is the consultant paid?",
    "Who are the parties to the agreement?",
]


@pytest.fixture(scope="module")
def docket(tmp_path_factory: pytest.TempPathFactory):
    from pipeline.app import Docket
    from pipeline.settings import load_settings

    base = tmp_path_factory.getbasetemp()
    home = copy_workspace(ingested_template(base), tmp_path_factory.mktemp("extractive-cache") / "home")
    return Docket(load_settings(home=home))


def evidence_for(docket, question: str):
    from pipeline.ask import to_evidence

    return to_evidence(docket.store.search(question, 5, collection=COLLECTION))


def test_reused_vectors_give_the_same_answers_and_a_repeat_embeds_nothing(docket) -> None:
    from pipeline.extractive import ExtractiveReasoner

    encoder = docket.store.encoder
    cached = ExtractiveReasoner(encoder.encode_for_question)
    plain = ExtractiveReasoner(lambda texts: encoder.encode_for_question(texts))  # no encoder behind it: no reuse
    assert cached._reuse_vectors and not plain._reuse_vectors
    embedded: list[str] = []

    def counting(texts: list[str]):
        embedded.extend(texts)
        return encoder.encode_for_question(texts)

    cached.embed = counting
    for question in QUESTIONS:
        evidence = evidence_for(docket, question)
        first, expected = cached.answer(question, evidence), plain.answer(question, evidence)
        assert (first.status, first.answer, first.citations, first.trace) == \
            (expected.status, expected.answer, expected.citations, expected.trace)
        assert embedded, "the first time, the sentences are embedded"
        assert len(embedded) == len(set(embedded))  # a text repeated within one answer is embedded once
        embedded.clear()
        again = cached.answer(question, evidence)
        assert embedded == []  # the question and every sentence were met before
        assert (again.answer, again.citations, again.trace) == (expected.answer, expected.citations, expected.trace)
    assert len(cached._vectors) >= len(QUESTIONS)


def test_int8_question_vectors_are_never_served_from_the_cache() -> None:
    """int8 activations are scaled per batch: a vector depends on its batch, so an answerer whose sentences
    go through the int8 session (int8 backend, onnx_queries off) embeds afresh every answer. The int8
    backend's default question session is the fp32 export, which may be kept, as the torch backend's."""
    from ingest.config import EmbeddingSettings
    from ingest.embedding import Encoder
    from pipeline.extractive import ExtractiveReasoner

    int8 = Encoder(EmbeddingSettings(backend="onnx-int8", onnx_queries=False))  # nothing is loaded until it encodes
    assert ExtractiveReasoner(int8.encode_for_question)._reuse_vectors is False
    for backend in ("torch", "onnx-int8"):
        fp32 = Encoder(EmbeddingSettings(backend=backend))
        assert ExtractiveReasoner(fp32.encode_for_question)._reuse_vectors is True, backend


def test_the_cache_keeps_the_most_recent_sentences_only(docket, monkeypatch: pytest.MonkeyPatch) -> None:
    import pipeline.extractive as extractive

    monkeypatch.setattr(extractive, "SENTENCE_CACHE_SIZE", 8)
    reasoner = extractive.ExtractiveReasoner(docket.store.encoder.encode_for_question)
    for question in QUESTIONS:
        reasoner.answer(question, evidence_for(docket, question))
        assert len(reasoner._vectors) == 8  # each answer embeds more than 8 texts: the oldest are dropped
