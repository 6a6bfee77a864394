"""Every response shape Magistral arrives in, parsed without a server (pure functions)."""

from __future__ import annotations

import pytest
from fake_llm import (
    llamacpp,
    mistral_2509,
    mistral_2509_repeated,
    ollama,
    tagged_string,
    vllm,
    vllm_old,
)

from pipeline.llm.shapes import StreamAssembler, parse_completion, parse_stream

TRACE = "S1 gives capex for 2018; S2 is about 2017, so I use S1."
ANSWER = "Capital expenditure in 2018 was $1,577 million [S1]."

SHAPES = {
    "mistral-2509-list": lambda **kw: mistral_2509(TRACE, ANSWER, **kw),
    "mistral-2509-repeated-chunks": lambda **kw: mistral_2509_repeated(TRACE, ANSWER, **kw),
    "mistral-2506-think-tags": lambda **kw: tagged_string(TRACE, ANSWER, tag="<think>", **kw),
    "raw-THINK-tags": lambda **kw: tagged_string(TRACE, ANSWER, tag="[THINK]", **kw),
    "vllm-reasoning": lambda **kw: vllm(TRACE, ANSWER, **kw),
    "vllm-reasoning_content": lambda **kw: vllm_old(TRACE, ANSWER, **kw),
    "llamacpp-reasoning_content": lambda **kw: llamacpp(TRACE, ANSWER, **kw),
    "ollama-reasoning": lambda **kw: ollama(TRACE, ANSWER, **kw),
}


@pytest.mark.parametrize("shape", SHAPES)
def test_non_streamed_shape_gives_trace_and_answer(shape):
    reply = SHAPES[shape]()
    got = parse_completion(reply.body)
    assert (got.trace, got.answer) == (TRACE, ANSWER)
    assert got.finish_reason == "stop"
    assert got.model == reply.body["model"]
    assert got.usage == reply.body["usage"]
    assert got.trace_open is False


@pytest.mark.parametrize("shape", SHAPES)
def test_streamed_shape_gives_the_same_turn_and_live_pieces(shape):
    reply = SHAPES[shape]()
    assembler = StreamAssembler()
    live = [piece for chunk in reply.chunks for piece in assembler.feed(chunk)] + assembler.flush()
    got = assembler.result()
    assert (got.trace, got.answer) == (TRACE, ANSWER)
    assert got.finish_reason == "stop"
    assert got.usage["total_tokens"] == 976
    # What was shown live is the whole trace and the whole answer, each under its own kind.
    assert "".join(t for k, t in live if k == "trace").strip() == TRACE
    assert "".join(t for k, t in live if k == "answer").strip() == ANSWER


@pytest.mark.parametrize("text", ["<think>\nweigh S1\n</think>\nYes [S1].", "[THINK]weigh S1[/THINK]Yes [S1]."])
def test_tags_split_at_every_position_across_deltas(text):
    for cut in range(1, len(text)):
        for second_cut in (cut, min(len(text), cut + 3)):
            parts = [text[:cut], text[cut:second_cut], text[second_cut:]]
            assembler = StreamAssembler()
            live = [p for part in parts for p in assembler.feed({"choices": [{"delta": {"content": part}}]})]
            live += assembler.flush()
            got = assembler.result()
            assert (got.trace, got.answer) == ("weigh S1", "Yes [S1]."), parts
            assert "".join(t for k, t in live if k == "answer").strip() == "Yes [S1].", parts
            assert not any("THINK" in t or "think>" in t for _, t in live), parts


def test_closing_tag_without_opening_is_a_trace_boundary_only_for_a_template_that_opens_the_trace():
    # Servers whose chat template already wrote <think> into the prompt send only the closer: a
    # configured shape (llm.template_opens_trace). Anywhere else a lone closer is answer text.
    body = {"choices": [{"message": {"content": "weigh S1\n</think>\nYes [S1]."}}]}
    got = parse_completion(body, template_opens_trace=True)
    assert (got.trace, got.answer) == ("weigh S1", "Yes [S1].")
    got = parse_completion(body)
    assert (got.trace, got.answer) == ("", "weigh S1\n</think>\nYes [S1].")


def test_text_empty_thinking_text_concatenates_by_type():
    content = [
        {"type": "text", "text": "Yes, "},
        {"type": "thinking", "thinking": []},
        {"type": "thinking", "thinking": [{"type": "text", "text": "first"}, {"type": "text", "text": " second"}]},
        {"type": "text", "text": "it does [S2]."},
    ]
    got = parse_completion({"choices": [{"message": {"content": content}, "finish_reason": "stop"}]})
    assert (got.trace, got.answer) == ("first second", "Yes, it does [S2].")


@pytest.mark.parametrize(
    "reply",
    [
        tagged_string(TRACE, "", finish="length"),
        tagged_string(TRACE, "", tag="[THINK]", finish="length"),
        mistral_2509(TRACE, "", finish="length"),
        vllm(TRACE, "", finish="length"),
    ],
    ids=["think-tag", "THINK-tag", "2509-list", "vllm"],
)
def test_truncated_inside_the_trace_is_open(reply):
    for got in (parse_completion(reply.body), parse_stream(reply.chunks)):
        assert got.trace == TRACE
        assert got.answer == ""
        assert got.trace_open is True
        assert got.finish_reason == "length"
