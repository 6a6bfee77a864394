"""Turn Magistral's many response shapes into one (trace, answer) pair.

Shapes accepted, streamed and not (see docs/reasoning.md):

* Mistral API, magistral-*-2507/2509, and their successors (mistral-medium-3-5, Mistral Small 4, with
  ``reasoning_effort`` other than ``"none"``): ``content`` is a list of chunks,
  ``{"type": "thinking", "thinking": [{"type": "text", "text": ...}]}`` and ``{"type": "text", "text": ...}``,
  possibly repeated (text, empty thinking, text); concatenated by type.
* magistral-*-2506 and raw model output: a string with ``<think>…</think>`` or ``[THINK]…[/THINK]``;
  the opening tag counts only at the start of the content (see ``_TaggedText``).
* vLLM ``message.reasoning`` (older ``reasoning_content``), llama.cpp ``reasoning_content``,
  Ollama ``/v1`` ``reasoning``: the trace in a field beside a plain ``content``.

Everything here is pure: dicts in, dataclasses out, so the shapes can be tested without a server.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

DeltaKind = Literal["trace", "answer"]

# Opening tag -> its closing tag. 2506 wrote "<think>"; raw 2507+ output renders the [THINK] control token.
_TAGS = {"<think>": "</think>", "[THINK]": "[/THINK]"}
_CLOSERS = tuple(_TAGS.values())
_LONGEST_TAG = max(len(t) for t in (*_TAGS, *_CLOSERS))
_REASONING_FIELDS = ("reasoning", "reasoning_content")


@dataclass
class Completion:
    """One assistant turn, whatever shape it came in."""

    trace: str
    answer: str
    finish_reason: str | None
    model: str | None
    usage: dict[str, Any] = field(default_factory=dict)
    # A trace was started and never closed (an opening tag without its closer, or thinking with no
    # answer after it): the model ran out before answering.
    trace_open: bool = False


class _TaggedText:
    """Splits a string stream into trace and answer on <think>/[THINK] tags, even when a tag is
    split across deltas: text that could be the start of a tag is held back until it is decided.

    A trace can only start the content: an opening tag counts only at the very start (after optional
    whitespace), and its closing tag ends the trace. Anywhere else, in an answer that began without a
    trace or after the trace closed, tags are plain text: a model (or a document it quotes) writing
    "</think>" mid-answer cannot move the real answer into the trace. ``opened_by_template`` is the
    configured server shape (``llm.template_opens_trace``) whose chat template wrote the opening tag
    into the prompt: the content then starts inside the trace and the first closing tag ends it."""

    def __init__(self, opened_by_template: bool = False) -> None:
        self._pending = ""
        self._opened_by_template = opened_by_template
        # "start": deciding whether the content opens with a trace; "trace": inside it, waiting for
        # one of ``self._closers``; "answer": the rest is answer, tags and all.
        self._state = "start"
        self._closers: tuple[str, ...] = ()
        self.pieces: list[tuple[DeltaKind, str]] = []

    @property
    def open(self) -> bool:
        return self._state == "trace"

    def feed(self, text: str) -> list[tuple[DeltaKind, str]]:
        self._pending += text
        out: list[tuple[DeltaKind, str]] = []
        if self._state == "start":
            head = self._pending.lstrip()
            opener = next((tag for tag in _TAGS if head.startswith(tag)), None)
            if opener is not None:
                self._state, self._closers = "trace", (_TAGS[opener],)
                self._pending = head[len(opener) :]
            elif head and any(tag.startswith(head) for tag in _TAGS):
                return out  # could still become an opening tag: wait for the next delta
            elif head:
                self._state = "trace" if self._opened_by_template else "answer"
                self._closers = _CLOSERS
            else:
                return out  # whitespace only so far
        if self._state == "trace":
            hits = [(pos, tag) for pos, tag in ((self._pending.find(t), t) for t in self._closers) if pos >= 0]
            if hits:
                pos, tag = min(hits)
                self._emit(out, "trace", self._pending[:pos])
                self._pending = self._pending[pos + len(tag) :]
                self._state = "answer"
            else:
                # No whole closer: keep back a tail that may be the start of one.
                keep = _possible_tag_prefix(self._pending, self._closers)
                self._emit(out, "trace", self._pending[: len(self._pending) - keep])
                self._pending = self._pending[len(self._pending) - keep :]
                return out
        if self._state == "answer":
            self._emit(out, "answer", self._pending)
            self._pending = ""
        return out

    def finish(self) -> list[tuple[DeltaKind, str]]:
        out: list[tuple[DeltaKind, str]] = []
        if self._state == "start" and self._opened_by_template and self._pending.strip():
            self._state = "trace"  # the template's trace never closed
        self._emit(out, "trace" if self._state == "trace" else "answer", self._pending)
        self._pending = ""
        return out

    def _emit(self, out: list[tuple[DeltaKind, str]], kind: DeltaKind, text: str) -> None:
        if text:
            out.append((kind, text))
            self.pieces.append((kind, text))


def _possible_tag_prefix(text: str, tags: tuple[str, ...]) -> int:
    """Length of the longest tail of ``text`` that is a proper prefix of one of ``tags``."""
    for size in range(min(len(text), _LONGEST_TAG - 1), 0, -1):
        tail = text[-size:]
        if any(tag.startswith(tail) for tag in tags):
            return size
    return 0


def _chunk_pieces(chunks: list[Any]) -> list[tuple[DeltaKind, str]]:
    """Mistral content chunks -> ordered (kind, text); unknown chunk types (images, refs) are skipped."""
    out: list[tuple[DeltaKind, str]] = []
    for chunk in chunks:
        if isinstance(chunk, str):
            out.append(("answer", chunk))
            continue
        if not isinstance(chunk, dict):
            continue
        if chunk.get("type") == "thinking":
            inner = chunk.get("thinking")
            if isinstance(inner, str):
                out.append(("trace", inner))
            elif isinstance(inner, list):
                out.extend(("trace", part.get("text") or "") for part in inner if isinstance(part, dict))
        elif chunk.get("type") == "text":
            out.append(("answer", chunk.get("text") or ""))
    return [(kind, text) for kind, text in out if text]


class StreamAssembler:
    """Accumulates streamed chat-completion chunks (as JSON dicts) into one ``Completion``.

    ``feed`` returns the pieces to show live; ``result`` gives the whole turn. A non-streamed
    message goes through the same path (``parse_completion``), so both agree on every shape.
    ``template_opens_trace``: the server's chat template wrote the opening tag (``llm.template_opens_trace``).
    """

    def __init__(self, template_opens_trace: bool = False) -> None:
        self._tagged = _TaggedText(opened_by_template=template_opens_trace)
        self._field_trace: list[str] = []
        self._chunk_pieces: list[tuple[DeltaKind, str]] = []
        self._order: list[str] = []  # which source produced pieces first, to keep the trace order
        self.finish_reason: str | None = None
        self.model: str | None = None
        self.usage: dict[str, Any] = {}

    def feed(self, chunk: dict[str, Any]) -> list[tuple[DeltaKind, str]]:
        self.model = chunk.get("model") or self.model
        if chunk.get("usage"):
            self.usage = dict(chunk["usage"])
        out: list[tuple[DeltaKind, str]] = []
        for choice in chunk.get("choices") or []:
            if choice.get("index", 0) != 0:
                continue
            out.extend(self.feed_message(choice.get("delta") or choice.get("message") or {}))
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
        return out

    def feed_message(self, message: dict[str, Any]) -> list[tuple[DeltaKind, str]]:
        out: list[tuple[DeltaKind, str]] = []
        # vLLM's ``reasoning`` and the older ``reasoning_content`` are both read; a server that sends both
        # with the same text (for clients of either name) gives it once.
        said: list[str] = []
        for name in _REASONING_FIELDS:
            text = message.get(name)
            if isinstance(text, str) and text and text not in said:
                said.append(text)
                self._field_trace.append(text)
                out.append(("trace", text))
        content = message.get("content")
        if isinstance(content, list):
            pieces = _chunk_pieces(content)
            self._chunk_pieces.extend(pieces)
            out.extend(pieces)
        elif isinstance(content, str) and content:
            out.extend(self._tagged.feed(content))
        return out

    def flush(self) -> list[tuple[DeltaKind, str]]:
        """Release text held back as a possible tag prefix; call once after the last chunk."""
        return self._tagged.finish()

    def result(self) -> Completion:
        self.flush()
        pieces = self._chunk_pieces + self._tagged.pieces
        trace = "".join(self._field_trace) + "".join(t for k, t in pieces if k == "trace")
        answer = "".join(t for k, t in pieces if k == "answer")
        trace_open = self._tagged.open or (bool(trace.strip()) and not answer.strip())
        return Completion(
            trace=trace.strip(),
            answer=answer.strip(),
            finish_reason=self.finish_reason,
            model=self.model,
            usage=self.usage,
            trace_open=trace_open,
        )


def parse_completion(body: dict[str, Any], *, template_opens_trace: bool = False) -> Completion:
    """A non-streamed ``/chat/completions`` body -> ``Completion``."""
    assembler = StreamAssembler(template_opens_trace)
    assembler.feed(body)
    return assembler.result()


def parse_stream(chunks: list[dict[str, Any]], *, template_opens_trace: bool = False) -> Completion:
    """Streamed chunks (already decoded from SSE) -> ``Completion``."""
    assembler = StreamAssembler(template_opens_trace)
    for chunk in chunks:
        assembler.feed(chunk)
    return assembler.result()
