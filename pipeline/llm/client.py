"""``MagistralReasoner``: the Reasoner that asks Magistral through the ``openai`` client.

One request per answer, streamed or not, retried on 429/5xx with exponential backoff that honours
``Retry-After``; every failure becomes one line naming the setting to change; every call is recorded
whole in the ``ReasonerOutput``'s call record (messages, parameters, raw response, usage, latency,
the sources sent and the attempts made).
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from typing import Any, Callable
from urllib.parse import urlsplit, urlunsplit

import httpx
import openai
import tenacity

from pipeline.grounding import cited_labels, is_refusal
from pipeline.llm.prompt import Prompt, SystemFormat, build_messages
from pipeline.llm.shapes import Completion, DeltaKind, StreamAssembler, parse_completion
from pipeline.reasoning import CallRecord, ChatTurn, Evidence, ReasonerOutput
from pipeline.secrets import LiveMasker, mask_known_secrets, mask_secrets_in_logs, mask_text, url_secrets, usable_secrets
from pipeline.settings import LLMSettings

OnDelta = Callable[[DeltaKind, str], None]

KEY_ENV_VARS = "DOCKET_LLM_API_KEY (or MISTRAL_API_KEY)"
_NO_KEY_PLACEHOLDER = "not-needed"  # local servers ignore the key, but the openai client wants one
_CONTEXT_TOO_LONG = re.compile(
    r"context (?:length|size|window)|too (?:large|long) for|maximum context|prompt is too long|"
    r"exceeds the (?:available )?context|too many tokens",
    re.IGNORECASE,
)


_RETIRED = re.compile(r"deprecat|retired|no longer (?:available|supported|served)|sunset|decommission", re.IGNORECASE)
_MODELS_NAMED = 12  # a model list in an error line stops after this many names


class LLMCallError(Exception):
    """A call that failed for good; ``str()`` is one line naming what to change."""


def reasoning_effort_sent(settings: LLMSettings) -> str | None:
    """The ``reasoning_effort`` a request carries, or None when it carries none.

    Unset: never sent. Provider ``mistral``: sent to every model but the ``magistral-*`` ones, which
    reason through their system prompt (and ``prompt_mode``) and predate the field; Mistral Medium 3.5
    and Small 4 reason when it is ``low``..``high`` and not when it is ``none``. Provider
    ``openai-compatible``: sent when set, as the OpenAI field (the preset or the user decided that the
    server takes it)."""
    effort = settings.reasoning_effort
    if effort is None:
        return None
    if settings.provider == "mistral" and settings.model.casefold().startswith("magistral"):
        return None
    return effort


@dataclass(frozen=True)
class ModelList:
    """What ``GET /models`` said: the model ids offered, and those it marks deprecated."""

    ids: list[str]
    deprecated: dict[str, str]  # id -> deprecation date or replacement, as the endpoint says
    error: str | None = None  # why the list could not be read

    def describe(self, limit: int = _MODELS_NAMED) -> str:
        if self.error:
            return f"the endpoint's model list could not be read ({self.error})"
        if not self.ids:
            return "the endpoint lists no models"
        live = [m for m in self.ids if m not in self.deprecated]
        shown = ", ".join(live[:limit]) + (f" and {len(live) - limit} more" if len(live) > limit else "")
        text = f"the endpoint offers: {shown or 'none that is not deprecated'}"
        if self.deprecated:
            text += f" (deprecated: {', '.join(sorted(self.deprecated)[:limit])})"
        return text


@dataclass
class _Call:
    """What happened while making one answer's request: for the record and the error lines."""

    streamed: bool
    attempts: int = 0
    waits: list[float] = field(default_factory=list)


def redact_base_url(url: str) -> str:
    """Drop any user:password and query string (keys sometimes ride there) from a URL."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def _retry_after_seconds(exc: BaseException) -> float | None:
    response = getattr(exc, "response", None)
    if response is None:
        return None
    headers = response.headers
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            return max(0.0, float(value) * scale)
        except ValueError:
            continue  # an HTTP date: fall back to our own backoff
    return None


def _is_retryable(exc: BaseException) -> bool:
    if isinstance(exc, (openai.RateLimitError, openai.APITimeoutError, openai.APIConnectionError)):
        return True
    return isinstance(exc, openai.APIStatusError) and exc.status_code >= 500


def _error_body(exc: openai.APIStatusError) -> Any:
    try:
        return exc.response.json()
    except Exception:
        return exc.response.text if exc.response is not None else None


def _rejected_parameter(body: Any) -> tuple[str | None, str]:
    """(parameter name, reason) from a 400/422 body: Mistral's pydantic ``detail`` list or OpenAI's ``param``."""
    if not isinstance(body, dict):
        return None, str(body or "")[:200]
    error = body.get("error") if isinstance(body.get("error"), dict) else body
    message = error.get("message", body.get("detail", ""))
    details = message.get("detail") if isinstance(message, dict) else None
    details = details if isinstance(details, list) else body.get("detail")
    if isinstance(details, list) and details and isinstance(details[0], dict):
        loc = [str(p) for p in details[0].get("loc", []) if p != "body"]
        return (".".join(loc) or None), str(details[0].get("msg", ""))
    return error.get("param"), str(message)


@dataclass
class MagistralReasoner:
    """The ``Reasoner`` for Magistral on Mistral's API or any OpenAI-compatible server.

    ``answer(..., on_delta=f)`` streams and calls ``f("trace"|"answer", text)`` as pieces arrive.
    ``sleep`` is the wait between retries (tests pass a recorder instead of ``time.sleep``).
    """

    settings: LLMSettings
    retry_base_delay_s: float = 1.0
    retry_max_delay_s: float = 60.0
    sleep: Callable[[float], None] = time.sleep
    name: str = "magistral"

    def __post_init__(self) -> None:
        key = self.settings.api_key.get_secret_value() if self.settings.api_key else None
        self._key = key
        self._base_url = self.settings.resolved_base_url()
        # A provider may echo the key (or a key riding in the base URL) back in its answer, trace, raw
        # response or error body: all of them are masked before they reach the record or a log line.
        self._secrets = usable_secrets(
            [("llm.api_key", key or ""), *(("llm.base_url", v) for v in url_secrets(self._base_url))]
        )
        mask_secrets_in_logs(self._secrets)
        self._client = openai.OpenAI(
            api_key=key or _NO_KEY_PLACEHOLDER,
            base_url=self._base_url,
            max_retries=0,  # tenacity does the retrying, so the wait and the count are ours
            timeout=self.settings.timeout_s,
        )

    # -- the Reasoner protocol --------------------------------------------------------------------

    def answer(
        self,
        question: str,
        evidence: list[Evidence],
        history: list[ChatTurn] | None = None,
        on_delta: OnDelta | None = None,
    ) -> ReasonerOutput:
        fmt: SystemFormat = "text" if self.settings.system_format == "text" else "chunks"
        prompt = self.build_prompt(question, evidence, history, fmt)
        started = time.monotonic()
        call = _Call(streamed=on_delta is not None)
        try:
            if self.settings.provider == "mistral" and not self._key:
                raise LLMCallError(f"no API key for Mistral's API: set {KEY_ENV_VARS}")
            try:
                raw, completion = self._call(prompt, on_delta, call)
            except openai.APIStatusError as exc:
                if not self._should_flatten_system(exc, fmt):
                    raise
                fmt = "text"
                prompt = self.build_prompt(question, evidence, history, fmt)
                raw, completion = self._call(prompt, on_delta, call)
        except (openai.APIError, LLMCallError) as exc:
            message = self._one_line(exc, prompt, call)
            return self._record(prompt, fmt, call, started, status="error", error=message)
        return self._finish(prompt, fmt, call, started, raw, completion)

    def available_models(self) -> ModelList:
        """``GET {base_url}/models`` (Mistral's API and OpenAI-compatible servers both serve it): the
        model names to put in ``llm.model``. Mistral's API needs the key; without one nothing is asked."""
        if self.settings.provider == "mistral" and not self._key:
            return ModelList([], {}, error=f"no API key: set {KEY_ENV_VARS} to list Mistral's models")
        try:
            response = self._client.with_options(timeout=min(self.settings.timeout_s, 15.0)).models.with_raw_response.list()
            body = response.http_response.json()
        except (openai.APIError, httpx.HTTPError, ValueError) as exc:
            status = getattr(exc, "status_code", None)
            return ModelList([], {}, error=f"HTTP {status}" if status else type(exc).__name__)
        cards = body.get("data") if isinstance(body, dict) else None
        if not isinstance(cards, list):
            return ModelList([], {}, error="the reply has no 'data' list")
        ids, deprecated = [], {}
        for card in cards:
            if not isinstance(card, dict) or not isinstance(card.get("id"), str):
                continue
            ids.append(card["id"])
            # Mistral's model cards carry "deprecation" (a date) and "deprecation_replacement_model".
            if card.get("deprecation"):
                replacement = card.get("deprecation_replacement_model")
                deprecated[card["id"]] = str(card["deprecation"]) + (f", replaced by {replacement}" if replacement else "")
        return ModelList(ids, deprecated)

    def check_model(self, models: ModelList | None = None) -> str:
        """One line: is ``llm.model`` among the models the endpoint lists (and not deprecated)?
        ``models``: a list already read (``docket models check`` prints it too), else it is asked for."""
        models = models if models is not None else self.available_models()
        model = self.settings.model
        if models.error:
            return f"model '{model}' not checked: {models.describe()}"
        if model not in models.ids:
            return f"model '{model}' is not offered by {redact_base_url(self._base_url)}: set llm.model or DOCKET_LLM_MODEL; {models.describe()}"
        if model in models.deprecated:
            return f"model '{model}' is deprecated ({models.deprecated[model]}): set llm.model or DOCKET_LLM_MODEL; {models.describe()}"
        return f"model '{model}' is offered by {redact_base_url(self._base_url)}"

    # -- pieces -----------------------------------------------------------------------------------

    def build_prompt(
        self, question: str, evidence: list[Evidence], history: list[ChatTurn] | None, fmt: SystemFormat
    ) -> Prompt:
        return build_messages(
            question,
            evidence,
            history,
            budget_tokens=self.settings.context_budget_tokens,
            system_format=fmt,
        )

    def request_body(self, prompt: Prompt, stream: bool) -> dict[str, Any]:
        """The keyword arguments for ``chat.completions.create``, per provider."""
        s = self.settings
        body: dict[str, Any] = {
            "model": s.model,
            "messages": prompt.messages,
            "temperature": s.temperature,
            "top_p": s.top_p,
            "max_tokens": s.max_tokens,  # Mistral rejects max_completion_tokens
            "stream": stream,
        }
        if s.provider == "mistral":
            # Mistral's API answers 422 to fields it does not know (seed, stream_options, ...).
            extra: dict[str, Any] = {}
            if s.seed is not None:
                extra["random_seed"] = s.seed
            if self.settings.prompt_mode is not None:
                extra["prompt_mode"] = self.settings.prompt_mode
            if reasoning_effort_sent(s) is not None:
                extra["reasoning_effort"] = reasoning_effort_sent(s)
            if extra:
                body["extra_body"] = extra
        else:
            if s.seed is not None:
                body["seed"] = s.seed
            if stream:
                body["stream_options"] = {"include_usage": True}
            if reasoning_effort_sent(s) is not None:
                body["reasoning_effort"] = reasoning_effort_sent(s)
        return body

    def _call(
        self, prompt: Prompt, on_delta: OnDelta | None, call: _Call
    ) -> tuple[Any, Completion]:
        stream = on_delta is not None
        body = self.request_body(prompt, stream)

        def wait(state: tenacity.RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome else None
            backoff = self.retry_base_delay_s * 2 ** (state.attempt_number - 1)
            told = _retry_after_seconds(exc) if exc else None
            seconds = min(self.retry_max_delay_s, told if told is not None else backoff)
            call.waits.append(seconds)
            return seconds

        def once() -> tuple[Any, Completion]:
            call.attempts += 1
            if stream:
                return self._streamed(body, on_delta)
            response = self._client.chat.completions.with_raw_response.create(**body)
            try:
                raw = response.http_response.json()
            except ValueError as exc:
                raise LLMCallError(f"{redact_base_url(self._base_url)} answered with a body that is not JSON") from exc
            return raw, parse_completion(raw, template_opens_trace=self.settings.template_opens_trace)

        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception(_is_retryable),
            stop=tenacity.stop_after_attempt(self.settings.max_retries + 1),
            wait=wait,
            sleep=self.sleep,
            reraise=True,
        )
        return retrying(once)

    def _streamed(self, body: dict[str, Any], on_delta: OnDelta) -> tuple[Any, Completion]:
        # Read the SSE lines ourselves so the recorded chunks are exactly what the server sent,
        # list-form content and all, not the openai models' view of them.
        response = self._client.chat.completions.with_raw_response.create(**body)
        assembler = StreamAssembler(self.settings.template_opens_trace)
        chunks: list[dict[str, Any]] = []
        where = redact_base_url(self._base_url)
        live = LiveMasker(self._secrets)  # an echoed key is not shown live either
        try:
            for line in response.http_response.iter_lines():
                if not line.startswith("data:"):
                    continue
                data = line[len("data:") :].strip()
                if data == "[DONE]":
                    break
                try:
                    chunk = json.loads(data)
                except ValueError as exc:
                    raise LLMCallError(f"{where} sent a stream event that is not JSON") from exc
                if not isinstance(chunk, dict):
                    raise LLMCallError(f"{where} sent a stream event that is not a JSON object")
                if "error" in chunk:
                    raise LLMCallError(f"{where} ended the stream with an error: {chunk['error']}")
                chunks.append(chunk)
                for piece in assembler.feed(chunk):
                    for kind, text in live.feed(*piece):
                        on_delta(kind, text)  # type: ignore[arg-type]
        except httpx.HTTPError as exc:
            # Pieces were already shown live, so a broken stream is not retried: it is an error.
            raise LLMCallError(f"the stream from {where} broke off: {type(exc).__name__}") from exc
        finally:
            response.http_response.close()
        for piece in [*(p for piece in assembler.flush() for p in live.feed(*piece)), *live.flush()]:
            on_delta(*piece)  # type: ignore[arg-type]
        return {"stream": True, "chunks": chunks}, assembler.result()

    def _is_retirement(self, exc: BaseException) -> bool:
        """A reply that says the model is deprecated or retired (Mistral answers retired names 404; a
        400/410/422 naming deprecation is read the same way)."""
        if not isinstance(exc, openai.APIStatusError) or exc.status_code not in (400, 404, 410, 422):
            return False
        return bool(_RETIRED.search(json.dumps(_error_body(exc))))

    def _should_flatten_system(self, exc: openai.APIStatusError, fmt: SystemFormat) -> bool:
        if self.settings.system_format != "auto" or fmt != "chunks" or exc.status_code not in (400, 422):
            return False
        text = json.dumps(_error_body(exc)).lower()
        return any(word in text for word in ("thinking", "content", "system"))

    def _one_line(self, exc: BaseException, prompt: Prompt, call: _Call) -> str:
        s = self.settings
        where = redact_base_url(self._base_url)
        if isinstance(exc, LLMCallError):
            line = str(exc)
        elif isinstance(exc, openai.AuthenticationError):
            line = f"{where} refused the API key (401): set {KEY_ENV_VARS} to a valid key"
        elif isinstance(exc, openai.PermissionDeniedError):
            line = f"{where} denied access to model '{s.model}' (403): check the key's plan or llm.model"
        elif isinstance(exc, openai.NotFoundError) or self._is_retirement(exc):
            status = exc.status_code  # type: ignore[union-attr]
            said = "deprecated or retired" if self._is_retirement(exc) else "retired or misspelled"
            line = (
                f"model '{s.model}' not found at {where} ({status}): it may be {said}; "
                "set llm.model in the config or DOCKET_LLM_MODEL (and check llm.base_url / DOCKET_LLM_BASE_URL); "
                + self.available_models().describe()
            )
        elif isinstance(exc, openai.RateLimitError):
            line = f"rate limited by {where} (429) after {call.attempts} attempts: try later or lower llm.concurrency"
        elif isinstance(exc, openai.APIStatusError) and exc.status_code in (400, 413, 422):
            param, reason = _rejected_parameter(_error_body(exc))
            if exc.status_code == 413 or _CONTEXT_TOO_LONG.search(reason):
                line = (
                    f"the prompt is too long for '{s.model}' ({exc.status_code}; {prompt.prompt_tokens} tokens "
                    "counted): lower llm.context_budget_tokens or retrieval.top_k"
                )
            elif param:
                line = f"{where} rejected parameter '{param}' ({exc.status_code}): {reason}"
            else:
                line = f"{where} rejected the request ({exc.status_code}): {reason}"
        elif isinstance(exc, openai.APIStatusError):
            line = f"{where} failed (HTTP {exc.status_code}) after {call.attempts} attempts"
        elif isinstance(exc, openai.APITimeoutError):
            line = f"no response from {where} within {s.timeout_s:g}s (llm.timeout_s) after {call.attempts} attempts"
        elif isinstance(exc, openai.APIConnectionError):
            line = f"cannot reach {where} after {call.attempts} attempts: check llm.base_url / DOCKET_LLM_BASE_URL"
        else:
            line = f"{where}: {exc}"
        line = " ".join(line.split())
        line = mask_text(line, self._secrets)
        return line.replace(self._key, "***") if self._key else line  # a key too short for mask_text

    def _finish(
        self,
        prompt: Prompt,
        fmt: SystemFormat,
        call: _Call,
        started: float,
        raw: Any,
        completion: Completion,
    ) -> ReasonerOutput:
        if completion.finish_reason == "length" or (completion.trace_open and not completion.answer):
            # Ran out before (or while) answering: a cut answer is never shown as an answer.
            status, answer = "incomplete", ""
        elif not completion.answer:
            return self._record(
                prompt, fmt, call, started, status="error", error="the model returned no answer text",
                raw=raw, completion=completion,
            )
        elif is_refusal(completion.answer):
            status, answer = "refused", completion.answer
        else:
            status, answer = "answered", completion.answer
        return self._record(
            prompt, fmt, call, started, status=status, answer=answer, raw=raw, completion=completion
        )

    def _record(
        self,
        prompt: Prompt,
        fmt: SystemFormat,
        call: _Call,
        started: float,
        *,
        status: str,
        answer: str = "",
        error: str | None = None,
        raw: Any = None,
        completion: Completion | None = None,
    ) -> ReasonerOutput:
        s = self.settings
        body = self.request_body(prompt, stream=call.streamed)
        # The request's fields beside the messages, as they went on the wire (extra_body merged).
        wire = {k: v for k, v in body.items() if k not in ("messages", "extra_body")} | body.get("extra_body", {})
        # Floats as strings: audit records hash canonical JSON and keep floats out of it.
        wire["temperature"], wire["top_p"] = f"{s.temperature:g}", f"{s.top_p:g}"
        parameters = {
            "temperature": wire["temperature"],
            "top_p": wire["top_p"],
            "seed": s.seed,
            "max_tokens": s.max_tokens,
            "stream": call.streamed,
            "sent": wire,
            "system_format": fmt,
            "template_opens_trace": s.template_opens_trace,
            "context_budget_tokens": s.context_budget_tokens,
            "prompt_tokens_counted": prompt.prompt_tokens,
            "token_counter": prompt.token_counter,
            "history_turns_sent": prompt.history_turns_sent,
        }
        trace = completion.trace if completion else ""
        # An echoed key goes no further than this: the answer, trace, raw response and error are masked.
        answer, trace, error = (mask_text(t, self._secrets) if t else t for t in (answer, trace, error))
        raw = mask_known_secrets(raw, self._secrets)
        return ReasonerOutput(
            status=status,  # type: ignore[arg-type]
            answer=answer,
            trace=trace,
            trace_format="thinking" if trace else "none",
            citations=cited_labels(answer),
            call=CallRecord(
                provider=s.provider,
                base_url=redact_base_url(self._base_url),
                model_requested=s.model,
                model_returned=completion.model if completion else None,
                parameters=parameters,
                messages=prompt.messages,
                raw_response=raw,
                finish_reason=completion.finish_reason if completion else None,
                usage=dict(completion.usage) if completion else {},
                latency_ms=round((time.monotonic() - started) * 1000),
                sources_sent=[e.label for e in prompt.sources_sent],
                sources_dropped=[e.label for e in prompt.sources_dropped],
                attempts=call.attempts,
                retry_waits_ms=[round(w * 1000) for w in call.waits],
            ),
            error=error,
        )
