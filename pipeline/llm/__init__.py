"""Magistral through the ``openai`` client: prompt, response shapes, streaming, retries."""

from pipeline.grounding import REFUSAL_SENTENCE, is_refusal
from pipeline.llm.client import LLMCallError, MagistralReasoner, OnDelta, redact_base_url
from pipeline.llm.prompt import Prompt, build_messages, default_token_counter, neutralise
from pipeline.llm.shapes import Completion, StreamAssembler, parse_completion, parse_stream

__all__ = [
    "REFUSAL_SENTENCE",
    "Completion",
    "LLMCallError",
    "MagistralReasoner",
    "OnDelta",
    "Prompt",
    "StreamAssembler",
    "build_messages",
    "default_token_counter",
    "is_refusal",
    "neutralise",
    "parse_completion",
    "parse_stream",
    "redact_base_url",
]
