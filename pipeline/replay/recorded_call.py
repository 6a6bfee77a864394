"""The language model asked again exactly as it was: the recorded messages, model and parameters.

``RecordedCallReasoner`` is ``MagistralReasoner`` with one difference: the prompt it sends is the one the
original call recorded, not one built again from the evidence (the prompt template may have changed since,
and a frozen replay asks what was asked). It still builds the prompt from the replayed evidence, to tell
whether today's Docket would have sent the same messages (``rebuilt_same``) and which sources it carries.

The model, temperature, top_p, max_tokens, seed and system prompt form come from the call record's
parameters. A provider that takes a seed (Mistral's ``random_seed``, an OpenAI-compatible ``seed``) gets
the recorded one; an answer recorded without a seed (``llm.seed`` unset) is replayed without one, and a
model sampling at temperature > 0 without a seed may then answer otherwise (docs/replay.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from pipeline.llm import MagistralReasoner, Prompt
from pipeline.settings import LLMSettings


def recorded_llm_settings(base: LLMSettings, call: dict[str, Any]) -> LLMSettings:
    """``base`` (the recorded settings' llm section, or today's) with the call record's own parameters."""
    parameters = call.get("parameters") or {}
    values: dict[str, Any] = {}
    if call.get("model_requested"):
        values["model"] = call["model_requested"]
    for name in ("temperature", "top_p"):
        if parameters.get(name) is not None:
            values[name] = float(parameters[name])
    for name in ("max_tokens", "context_budget_tokens"):
        if parameters.get(name) is not None:
            values[name] = int(parameters[name])
    if "seed" in parameters:
        values["seed"] = parameters["seed"]
    if parameters.get("system_format") in ("chunks", "text"):
        values["system_format"] = parameters["system_format"]  # the form that was sent: no fallback to the other
    if "template_opens_trace" in parameters:
        values["template_opens_trace"] = bool(parameters["template_opens_trace"])
    return base.model_copy(update=values)


@dataclass
class RecordedCallReasoner(MagistralReasoner):
    recorded_messages: list[dict[str, Any]] = field(default_factory=list)
    rebuilt_same: bool | None = None  # set on the first prompt: whether today's prompt equals the recorded one

    def build_prompt(self, question, evidence, history, fmt) -> Prompt:
        prompt = super().build_prompt(question, evidence, history, fmt)
        if self.rebuilt_same is None:
            self.rebuilt_same = prompt.messages == self.recorded_messages
        return replace(prompt, messages=self.recorded_messages)
