"""The current Mistral models: reasoning_effort (sent only where it is taken), the successor's
response shapes (thinking chunks in content, streamed as chunk lists), vLLM's reasoning fields, and
a 404 or deprecation reply that names the setting to change and the models the endpoint offers.

The server is tests/fake_llm.py; the client is the real MagistralReasoner."""

from __future__ import annotations

import pytest
from fake_llm import (  # noqa: F401  (fake_llm is a fixture)
    TEST_KEY,
    fake_llm,
    mistral_2509,
    mistral_medium_3_5,
    mistral_model_cards,
    model_deprecated,
    model_not_found,
    reasoning_both_fields,
    vllm,
    vllm_old,
)

from pipeline.llm import MagistralReasoner
from pipeline.llm.client import reasoning_effort_sent
from pipeline.reasoning import Evidence
from pipeline.settings import LLMSettings, load_settings

TRACE = "S1 is the 2018 cash-flow statement, in millions; S2 is 2017."
ANSWER = "Capital expenditure in 2018 was $1,577 million [S1]."
SOURCES = [
    Evidence("S1", 1, 101, "1" * 64, "3M_2018_10K.pdf", 60, 0, 70,
             "Purchases of property, plant and equipment (PP&E) (1,577) in 2018.", 0.9, "pymupdf"),
]


def reasoner(fake, **overrides) -> MagistralReasoner:
    return MagistralReasoner(fake.llm_settings(**{"max_retries": 0, **overrides}), sleep=lambda s: None)


# -- reasoning_effort ------------------------------------------------------------------------------


def test_the_mistral_preset_uses_the_successor_with_reasoning_effort_high():
    settings = load_settings(config="mistral")
    assert (settings.llm.model, settings.llm.reasoning_effort) == ("mistral-medium-3-5", "high")
    onprem = load_settings(config="onprem")
    assert onprem.llm.model == "mistralai/Magistral-Small-2509" and onprem.llm.reasoning_effort is None


@pytest.mark.parametrize(
    ("provider", "model", "effort", "sent"),
    [
        ("mistral", "mistral-medium-3-5", "high", "high"),
        ("mistral", "mistral-small-2603", "none", "none"),
        ("mistral", "magistral-medium-2509", "high", None),  # Magistral reasons through its prompt
        ("mistral", "mistral-medium-3-5", None, None),
        ("openai-compatible", "mistralai/Magistral-Small-2509", None, None),
        ("openai-compatible", "mistralai/Mistral-Small-4", "low", "low"),
    ],
)
def test_reasoning_effort_is_sent_only_where_it_is_taken(fake_llm, provider, model, effort, sent):
    assert reasoning_effort_sent(LLMSettings(provider=provider, model=model, reasoning_effort=effort)) == sent
    fake_llm.script(mistral_medium_3_5(TRACE, ANSWER))
    out = reasoner(fake_llm, provider=provider, model=model, reasoning_effort=effort).answer("Capex 2018?", SOURCES)
    body = fake_llm.chat_requests[0].body
    assert body.get("reasoning_effort") == sent and ("reasoning_effort" in body) == (sent is not None)
    assert out.call.parameters["sent"].get("reasoning_effort") == sent  # the record says what went on the wire


def test_a_bad_reasoning_effort_is_a_settings_error():
    with pytest.raises(ValueError, match="reasoning_effort"):
        LLMSettings(reasoning_effort="maximum")


# -- the successor's response shapes ------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
def test_mistral_medium_3_5_thinking_chunks_give_the_trace_and_the_answer(fake_llm, stream):
    reply = mistral_medium_3_5(TRACE, ANSWER)
    # The recorded shape: every streamed delta's content is a list of typed chunks.
    assert all(isinstance(c["choices"][0]["delta"]["content"], list) for c in reply.chunks)
    fake_llm.script(reply)
    live: list[tuple[str, str]] = []
    out = reasoner(fake_llm, model="mistral-medium-3-5", reasoning_effort="high").answer(
        "Capex 2018?", SOURCES, on_delta=(lambda k, t: live.append((k, t))) if stream else None
    )
    assert (out.status, out.trace, out.answer, out.trace_format) == ("answered", TRACE, ANSWER, "thinking")
    assert out.call.model_returned == "mistral-medium-3-5"
    if stream:
        kinds = [k for k, _ in live]
        assert kinds == sorted(kinds, key=lambda k: k != "trace")  # the trace first, then the answer
        assert "".join(t for k, t in live if k == "answer") == ANSWER
        assert out.call.raw_response["stream"] is True


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
def test_reasoning_effort_none_gives_a_plain_answer_without_a_trace(fake_llm, stream):
    fake_llm.script(mistral_medium_3_5("", ANSWER))
    out = reasoner(fake_llm, model="mistral-medium-3-5", reasoning_effort="none").answer(
        "Capex 2018?", SOURCES, on_delta=(lambda k, t: None) if stream else None
    )
    assert (out.status, out.trace, out.answer, out.trace_format) == ("answered", "", ANSWER, "none")


@pytest.mark.parametrize("builder", [vllm, vllm_old, reasoning_both_fields], ids=["reasoning", "reasoning_content", "both"])
@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
def test_vllm_reasoning_and_the_older_reasoning_content_are_both_read_once(fake_llm, builder, stream):
    fake_llm.script(builder(TRACE, ANSWER))
    out = reasoner(fake_llm, provider="openai-compatible", model="mistralai/Magistral-Small-2509").answer(
        "Capex 2018?", SOURCES, on_delta=(lambda k, t: None) if stream else None
    )
    assert (out.trace, out.answer) == (TRACE, ANSWER)  # a trace sent under both names is not doubled


# -- a retired or deprecated model names the setting and what is offered ------------------------------


def test_a_404_names_the_setting_and_the_models_the_endpoint_offers(fake_llm):
    fake_llm.models = mistral_model_cards(
        "mistral-medium-3-5", "mistral-small-2603", "magistral-medium-2509",
        deprecated={"magistral-medium-2509": "mistral-medium-3-5"},
    )
    fake_llm.script(model_not_found("magistral-medium-2506"))
    out = reasoner(fake_llm, model="magistral-medium-2506").answer("q?", SOURCES)
    assert out.status == "error" and "\n" not in out.error and TEST_KEY not in out.error
    for words in ("'magistral-medium-2506'", "(404)", "llm.model", "DOCKET_LLM_MODEL",
                  "the endpoint offers: mistral-medium-3-5, mistral-small-2603", "deprecated: magistral-medium-2509"):
        assert words in out.error, out.error
    listed = [r for r in fake_llm.requests if r.path.endswith("/models")]
    assert len(listed) == 1 and listed[0].headers["authorization"] == f"Bearer {TEST_KEY}"


def test_a_deprecation_reply_is_read_as_one_and_lists_the_models(fake_llm):
    fake_llm.models = mistral_model_cards("mistral-medium-3-5")
    fake_llm.script(model_deprecated("magistral-medium-latest", status=400))
    out = reasoner(fake_llm, model="magistral-medium-latest").answer("q?", SOURCES)
    assert out.status == "error"
    assert "deprecated or retired" in out.error and "llm.model" in out.error and "DOCKET_LLM_MODEL" in out.error
    assert "the endpoint offers: mistral-medium-3-5" in out.error


def test_a_404_from_an_endpoint_without_a_model_list_says_so(fake_llm):
    fake_llm.script(model_not_found("mistral-medium-3-5"))
    out = reasoner(fake_llm, model="mistral-medium-3-5").answer("q?", SOURCES)
    assert "llm.model" in out.error and "model list could not be read (HTTP 404)" in out.error


def test_check_model_says_whether_the_configured_name_is_offered(fake_llm):
    fake_llm.models = mistral_model_cards("mistral-medium-3-5", "magistral-small-2509",
                                          deprecated={"magistral-small-2509": "mistral-small-2603"})
    assert reasoner(fake_llm, model="mistral-medium-3-5").check_model().startswith("model 'mistral-medium-3-5' is offered")
    gone = reasoner(fake_llm, model="mistral-medium-3.5").check_model()
    assert "is not offered" in gone and "llm.model" in gone and "mistral-medium-3-5" in gone
    old = reasoner(fake_llm, model="magistral-small-2509").check_model()
    assert "is deprecated" in old and "replaced by mistral-small-2603" in old


def test_without_a_key_mistrals_model_list_is_not_asked_for(fake_llm):
    fake_llm.models = mistral_model_cards("mistral-medium-3-5")
    r = MagistralReasoner(LLMSettings(provider="mistral", base_url=fake_llm.base_url, api_key=None))
    assert "no API key" in r.check_model()
    assert not fake_llm.requests
