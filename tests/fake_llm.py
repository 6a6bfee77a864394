"""A local OpenAI-compatible server that answers like Magistral's real servers do (the one thing a
Docket test may fake).

It listens on 127.0.0.1 on an ephemeral port, speaks ``POST /v1/chat/completions`` (JSON or SSE,
as the request's ``stream`` asks) and ``POST /v1/ocr``, replies from a script, and records every
request it got so a test can assert on what was sent::

    fake_llm.script(mistral_2509("I compare S1 and S2.", "Revenue was $1,577 million [S1]."))
    out = MagistralReasoner(fake_llm.llm_settings()).answer(...)
    assert "seed" not in fake_llm.chat_requests[0].body

Shape builders reproduce recorded responses of Mistral's API (2506 string with <think>, 2509 lists,
repeated and empty thinking chunks), vLLM (``reasoning`` / older ``reasoning_content``), llama.cpp
(``reasoning_content``) and Ollama ``/v1`` (``reasoning``), streamed and not. Error builders
reproduce their error bodies (429 with Retry-After, 401, 404, 422, 5xx, context too long).
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Iterator

import pytest

from pipeline.settings import LLMSettings

TEST_KEY = "sk-test-0123456789"
_CREATED = 1_760_000_000


@dataclass
class Reply:
    """One scripted answer: a JSON body, or SSE chunks when the request streams."""

    status: int = 200
    body: Any = None
    chunks: list[dict[str, Any]] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    # Built per request from the bearer key the request carried (``echoes_key``); None: sent as it is.
    make: Callable[[str], Reply] | None = None


@dataclass
class RecordedRequest:
    path: str
    headers: dict[str, str]  # lower-case names
    body: Any
    at: float  # time.monotonic() on arrival


# -- response shapes ---------------------------------------------------------------------------------


def _usage(prompt: int = 812, completion: int = 164) -> dict[str, int]:
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _completion(model: str, message: dict[str, Any], finish: str, rid: str = "cmpl-fake") -> dict[str, Any]:
    return {
        "id": rid,
        "object": "chat.completion",
        "created": _CREATED,
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", **message}, "finish_reason": finish}],
        "usage": _usage(),
    }


def _chunk(model: str, delta: dict[str, Any], finish: str | None = None, usage: bool = False) -> dict[str, Any]:
    chunk = {
        "id": "cmpl-fake",
        "object": "chat.completion.chunk",
        "created": _CREATED,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    if usage:
        chunk["usage"] = _usage()
    return chunk


def _pieces(text: str, size: int = 7) -> list[str]:
    """Split text at awkward places, as servers do (tags and words cut in two)."""
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


def _think(text: str) -> dict[str, Any]:
    return {"type": "thinking", "thinking": [{"type": "text", "text": text}]}


def mistral_2509(trace: str, answer: str, *, model: str = "magistral-medium-2509", finish: str = "stop") -> Reply:
    """Mistral API 2507/2509: content is a list of a thinking chunk then a text chunk; streamed as
    thinking-chunk lists during the trace, then plain strings."""
    content: list[dict[str, Any]] = [_think(trace)]
    if answer:
        content.append({"type": "text", "text": answer})
    chunks = [_chunk(model, {"role": "assistant", "content": ""})]
    chunks += [_chunk(model, {"content": [_think(p)]}) for p in _pieces(trace)]
    chunks += [_chunk(model, {"content": p}) for p in (_pieces(answer) if answer else [])]
    chunks.append(_chunk(model, {"content": ""}, finish, usage=True))
    return Reply(body=_completion(model, {"content": content, "tool_calls": None, "prefix": False}, finish), chunks=chunks)


def mistral_2509_repeated(trace: str, answer: str, *, model: str = "magistral-small-2509") -> Reply:
    """2509 with repeated chunks: text, empty thinking, thinking, text; streamed as lists throughout."""
    half = len(answer) // 2
    content = [
        {"type": "text", "text": answer[:half]},
        {"type": "thinking", "thinking": []},
        _think(trace),
        {"type": "text", "text": answer[half:]},
    ]
    chunks = [_chunk(model, {"role": "assistant", "content": [c]}) for c in content]
    chunks.append(_chunk(model, {"content": [{"type": "text", "text": ""}]}, "stop", usage=True))
    return Reply(body=_completion(model, {"content": content}, "stop"), chunks=chunks)


def tagged_string(
    trace: str, answer: str, *, tag: str = "<think>", model: str = "magistral-medium-2506", finish: str = "stop"
) -> Reply:
    """Mistral API 2506 (``<think>\\n…\\n</think>\\n``) or raw model output (``[THINK]…[/THINK]``)
    in a plain string; streamed in small pieces that cut the tags in two. An empty answer with
    finish "length" leaves the trace open."""
    close = {"<think>": "</think>", "[THINK]": "[/THINK]"}[tag]
    text = f"{tag}\n{trace}\n{close}\n{answer}" if answer or finish != "length" else f"{tag}\n{trace}"
    chunks = [_chunk(model, {"role": "assistant", "content": ""})]
    chunks += [_chunk(model, {"content": p}) for p in _pieces(text, 5)]
    chunks.append(_chunk(model, {"content": ""}, finish, usage=True))
    return Reply(body=_completion(model, {"content": text}, finish), chunks=chunks)


def plain_string(text: str, *, model: str = "magistral-small-2509", finish: str = "stop", size: int = 5) -> Reply:
    """Content as one plain string, exactly as given (no tags added); streamed in small pieces."""
    chunks = [_chunk(model, {"role": "assistant", "content": ""})]
    chunks += [_chunk(model, {"content": p}) for p in _pieces(text, size)]
    chunks.append(_chunk(model, {"content": ""}, finish, usage=True))
    return Reply(body=_completion(model, {"content": text}, finish), chunks=chunks)


def reasoning_field(
    trace: str, answer: str, *, field_name: str = "reasoning", model: str = "mistralai/Magistral-Small-2509",
    finish: str = "stop",
) -> Reply:
    """vLLM (``reasoning``; older ``reasoning_content``), llama.cpp (``reasoning_content``) and Ollama
    ``/v1`` (``reasoning``): the trace beside a plain string ``content``."""
    message = {"content": answer or None, field_name: trace}
    chunks = [_chunk(model, {"role": "assistant", "content": ""})]
    chunks += [_chunk(model, {field_name: p}) for p in _pieces(trace)]
    chunks += [_chunk(model, {"content": p}) for p in (_pieces(answer) if answer else [])]
    chunks.append(_chunk(model, {}, finish))
    chunks.append({**_chunk(model, {}), "choices": [], "usage": _usage()})  # stream_options.include_usage
    return Reply(body=_completion(model, message, finish), chunks=chunks)


def vllm(trace: str, answer: str, **kw: Any) -> Reply:
    return reasoning_field(trace, answer, field_name="reasoning", **kw)


def vllm_old(trace: str, answer: str, **kw: Any) -> Reply:
    return reasoning_field(trace, answer, field_name="reasoning_content", **kw)


def llamacpp(trace: str, answer: str, **kw: Any) -> Reply:
    return reasoning_field(trace, answer, field_name="reasoning_content", model="magistral-small-2509-q4_k_m.gguf", **kw)


def ollama(trace: str, answer: str, **kw: Any) -> Reply:
    return reasoning_field(trace, answer, field_name="reasoning", model="magistral:24b", **kw)


def mistral_medium_3_5(
    trace: str, answer: str, *, model: str = "mistral-medium-3-5", finish: str = "stop", piece: int = 7
) -> Reply:
    """Mistral Medium 3.5 / Small 4 (the successors of Magistral on Mistral's API) with
    ``reasoning_effort`` "low".."high": ``content`` is a list of typed chunks, a thinking chunk
    ``{"type": "thinking", "thinking": [{"type": "text", "text": ...}]}`` then ``{"type": "text", "text": ...}``;
    streamed, every delta's ``content`` is such a list too (thinking pieces, then text pieces). With
    ``reasoning_effort: "none"`` (an empty ``trace``) there is no thinking chunk: ``content`` is a plain
    string, streamed as strings."""
    if not trace:
        return plain_string(answer, model=model, finish=finish, size=piece)
    content: list[dict[str, Any]] = [_think(trace)]
    if answer:
        content.append({"type": "text", "text": answer})
    chunks = [_chunk(model, {"role": "assistant", "content": []})]
    chunks += [_chunk(model, {"content": [_think(p)]}) for p in _pieces(trace, piece)]
    chunks += [_chunk(model, {"content": [{"type": "text", "text": p}]}) for p in (_pieces(answer, piece) if answer else [])]
    chunks.append(_chunk(model, {"content": []}, finish, usage=True))
    return Reply(body=_completion(model, {"content": content, "tool_calls": None, "prefix": False}, finish), chunks=chunks)


def reasoning_both_fields(trace: str, answer: str, *, model: str = "mistralai/Magistral-Small-2509") -> Reply:
    """A vLLM in transition that sends the trace under both ``reasoning`` and ``reasoning_content``."""
    message = {"content": answer, "reasoning": trace, "reasoning_content": trace}
    chunks = [_chunk(model, {"role": "assistant", "content": ""})]
    chunks += [_chunk(model, {"reasoning": p, "reasoning_content": p}) for p in _pieces(trace)]
    chunks += [_chunk(model, {"content": p}) for p in _pieces(answer)]
    chunks.append(_chunk(model, {}, "stop", usage=True))
    return Reply(body=_completion(model, message, "stop"), chunks=chunks)


def mistral_model_cards(*ids: str, deprecated: dict[str, str] | None = None) -> dict[str, Any]:
    """``GET /v1/models`` as Mistral's API answers it: model cards, a deprecated one with its date and
    replacement (``deprecated``: id -> replacement id)."""
    deprecated = deprecated or {}
    return {
        "object": "list",
        "data": [
            {
                "id": model,
                "object": "model",
                "created": _CREATED,
                "owned_by": "mistralai",
                "capabilities": {"completion_chat": True, "function_calling": True, "vision": False},
                "name": model,
                "max_context_length": 131072,
                "deprecation": "2026-03-31T12:00:00Z" if model in deprecated else None,
                "deprecation_replacement_model": deprecated.get(model),
                "type": "base",
            }
            for model in ids
        ],
    }


def mistral_ocr(pages: list[str], *, model: str = "mistral-ocr-2505") -> Reply:
    """``POST /v1/ocr``: markdown per page with image boxes."""
    return Reply(
        body={
            "pages": [
                {
                    "index": i,
                    "markdown": text,
                    "images": [],
                    "dimensions": {"dpi": 200, "height": 2200, "width": 1700},
                }
                for i, text in enumerate(pages)
            ],
            "model": model,
            "document_annotation": None,
            "usage_info": {"pages_processed": len(pages), "doc_size_bytes": None},
        }
    )


def echoes_key(
    trace: str = "The caller's key is {key}; S1 answers.",
    answer: str = "Either party may terminate on thirty (30) days prior written notice [S1]. Key: {key}",
    *,
    shape: Callable[..., Reply] = mistral_2509,
    **kw: Any,
) -> Reply:
    """A provider that echoes the request's ``Authorization: Bearer`` key back: ``{key}`` in the trace
    and the answer is replaced by it, and the raw response (the body, and the first stream chunk) gets
    an ``echo`` field holding the header and the key. Streamed, the key is cut across deltas."""

    def make(key: str) -> Reply:
        reply = shape(trace.format(key=key), answer.format(key=key), **kw)
        echo = {"authorization": f"Bearer {key}", "api_key": key}
        reply.body = {**reply.body, "echo": echo}
        if reply.chunks:
            reply.chunks = [{**reply.chunks[0], "echo": echo}, *reply.chunks[1:]]
        return reply

    return Reply(make=make)


# -- error shapes -------------------------------------------------------------------------------------


def rate_limited(retry_after: str = "2") -> Reply:
    return Reply(
        429,
        {"object": "error", "message": "Requests rate limit exceeded", "type": "rate_limited", "param": None, "code": "1300"},
        headers={"Retry-After": retry_after},
    )


def unauthorized() -> Reply:
    return Reply(401, {"message": "Unauthorized", "request_id": "fake-req"})


def model_not_found(model: str = "magistral-medium-2506") -> Reply:
    return Reply(
        404,
        {"object": "error", "message": f"Invalid model: {model}", "type": "invalid_model", "param": None, "code": "1500"},
    )


def model_deprecated(model: str = "magistral-medium-latest", status: int = 400) -> Reply:
    """A reply that names the model as deprecated (the shape is assumed: a Mistral-style error body)."""
    return Reply(
        status,
        {"object": "error", "message": f"Model {model} is deprecated and no longer available; use mistral-medium-3-5",
         "type": "invalid_model", "param": None, "code": "1500"},
    )


def extra_forbidden(param: str = "seed") -> Reply:
    """Mistral's 422 for a field it does not know."""
    return Reply(
        422,
        {
            "object": "error",
            "message": {"detail": [{"type": "extra_forbidden", "loc": ["body", param], "msg": "Extra inputs are not permitted", "input": 7}]},
            "type": "invalid_request_message_error",
            "param": None,
            "code": None,
        },
    )


def context_too_long() -> Reply:
    return Reply(
        400,
        {
            "object": "error",
            "message": "Prompt contains 140213 tokens and 0 draft tokens, too large for model with 131072 maximum context length",
            "type": "invalid_request_error",
            "param": None,
            "code": "3051",
        },
    )


def list_content_rejected() -> Reply:
    """A server whose chat endpoint accepts only string content."""
    return Reply(
        400,
        {"error": {"code": 400, "message": "unsupported content[].type: thinking", "type": "invalid_request_error"}},
    )


def server_error(status: int = 500) -> Reply:
    return Reply(status, {"object": "error", "message": "Internal server error", "type": "internal_error"})


# -- the server ---------------------------------------------------------------------------------------


class FakeLLM:
    """The running server; ``script`` queues replies for chat completions, ``script_ocr`` for OCR."""

    def __init__(self) -> None:
        self._chat: deque[Reply] = deque()
        self._ocr: deque[Reply] = deque()
        self.requests: list[RecordedRequest] = []
        # The body GET /v1/models answers with (e.g. ``mistral_model_cards(...)``); None: 404, as before.
        self.models: dict[str, Any] | None = None
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    @property
    def chat_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path.endswith("/chat/completions")]

    def script(self, *replies: Reply) -> None:
        self._chat.extend(replies)

    def script_ocr(self, *replies: Reply) -> None:
        self._ocr.extend(replies)

    def llm_settings(self, provider: str = "mistral", **overrides: Any) -> LLMSettings:
        """Settings pointing at this server (a test key; seed 7 so seed handling is exercised)."""
        values: dict[str, Any] = {
            "provider": provider,
            "base_url": self.base_url,
            "model": "magistral-medium-2509",
            "api_key": TEST_KEY,
            "seed": 7,
            "max_retries": 3,
            "timeout_s": 10,
        }
        return LLMSettings(**{**values, **overrides})

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def _next(self, path: str) -> Reply:
        queue = self._ocr if path.endswith("/ocr") else self._chat
        with self._lock:
            if queue:
                return queue.popleft()
        # Not retried by clients (4xx), and says plainly what went wrong in the test.
        return Reply(418, {"object": "error", "message": f"fake_llm: no reply scripted for {path}"})

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # keep pytest output clean
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw or b"null")
                except json.JSONDecodeError:
                    body = raw.decode("utf-8", "replace")
                headers = {k.lower(): v for k, v in self.headers.items()}
                with fake._lock:
                    fake.requests.append(RecordedRequest(self.path, headers, body, time.monotonic()))
                if not self.path.endswith(("/chat/completions", "/ocr")):
                    return self._send(Reply(404, {"detail": "Not Found"}))
                reply = fake._next(self.path)
                if reply.make is not None:
                    bearer = headers.get("authorization", "")
                    reply = reply.make(bearer.removeprefix("Bearer ").strip())
                streaming = isinstance(body, dict) and body.get("stream") and reply.chunks is not None
                if streaming and reply.status == 200:
                    return self._send_stream(reply)
                self._send(reply)

            def do_GET(self) -> None:
                headers = {k.lower(): v for k, v in self.headers.items()}
                with fake._lock:
                    fake.requests.append(RecordedRequest(self.path, headers, None, time.monotonic()))
                if self.path.rstrip("/").endswith("/models") and fake.models is not None:
                    return self._send(Reply(200, fake.models))
                self._send(Reply(404, {"detail": "Not Found"}))

            def _send(self, reply: Reply) -> None:
                data = json.dumps(reply.body).encode()
                self.send_response(reply.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            def _send_stream(self, reply: Reply) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Cache-Control", "no-cache")
                self.end_headers()
                for chunk in reply.chunks or []:
                    self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                    self.wfile.flush()
                self.wfile.write(b"data: [DONE]\n\n")

        return Handler


@pytest.fixture
def fake_llm() -> Iterator[FakeLLM]:
    server = FakeLLM()
    server.start()
    try:
        yield server
    finally:
        server.stop()
