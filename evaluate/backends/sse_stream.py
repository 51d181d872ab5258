"""Reading the streamed answer of an OpenAI-compatible server, in the shapes real servers send.

One parser for the ``/chat/completions`` (``choices[].delta.content``) and ``/completions``
(``choices[].text``) streams of vLLM, llama.cpp's server, Hugging Face TGI, Ollama's OpenAI
endpoint and ``transformers serve`` (recorded examples: ``tests/data/streams/``):

- the stream ends with ``data: [DONE]`` (vLLM, llama.cpp, TGI, Ollama), or the body simply ends
  after a chunk with a ``finish_reason`` (``transformers serve``);
- usage arrives on the finishing chunk (llama.cpp, ``transformers serve``) or in a usage-only
  chunk with ``choices: []`` after it (``stream_options.include_usage``: vLLM, TGI, Ollama);
- ``data:`` with or without a space after the colon (TGI writes ``data:{...}``), ``\\r\\n`` or
  ``\\n`` line ends, SSE comments and keep-alives (``: ping``), ``event:``/``id:`` fields;
- an error sent after the stream started: ``{"error": {...}}`` or ``{"error": "..."}`` (OpenAI,
  Ollama, TGI), ``{"object": "error", ...}`` (vLLM), an ``error:`` line (llama.cpp) or an
  ``event: error`` event.

Every failure message ends with the END of what was received, where a truncated or broken
stream shows its cause.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

TAIL_CHARS = 240  # how much of the end of the stream a failure message quotes


class StreamError(RuntimeError):
    """The stream was not a valid completion. ``reason``: malformed_response | server_error."""

    def __init__(self, message: str, reason: str = "malformed_response"):
        super().__init__(message)
        self.reason = reason


@dataclass
class StreamedAnswer:
    """What a stream carried, with the ``perf_counter`` time each content piece arrived."""

    text_parts: list[str] = field(default_factory=list)
    piece_times_s: list[float] = field(default_factory=list)
    finish_time_s: float | None = None
    finish_reason: str | None = None
    completion_tokens: int | None = None  # from usage, when the server sent it
    prompt_tokens: int | None = None
    ended_with_done: bool = False
    logprobs: list[float] = field(default_factory=list)  # choices[].logprobs.content[].logprob

    @property
    def text(self) -> str:
        return "".join(self.text_parts)


class _Tail:
    """The last ``TAIL_CHARS`` characters received, for error messages."""

    def __init__(self) -> None:
        self._text = ""

    def add(self, line: str) -> None:
        self._text = (self._text + line + "\\n")[-TAIL_CHARS:]

    def __str__(self) -> str:
        return ("..." if len(self._text) == TAIL_CHARS else "") + self._text


def _events(readline: Callable[[], bytes], tail: _Tail) -> Iterator[tuple[str, str]]:
    """Server-sent events as ``(event type, data)``; ``data`` joins the event's data lines.
    llama.cpp's server writes a mid-stream error as an ``error:`` line: type ``error``."""
    kind, data = "message", []
    while True:
        raw = readline()
        if not raw:
            break
        line = raw.decode("utf-8", "replace").rstrip("\r\n")
        tail.add(line)
        if not line:
            if data:
                yield kind, "\n".join(data)
            kind, data = "message", []
            continue
        if line.startswith(":"):  # comment / keep-alive
            continue
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "data":
            data.append(value)
        elif name == "event":
            kind = value.strip() or "message"
        elif name == "error":
            kind = "error"
            data.append(value)
    if data:
        yield kind, "\n".join(data)


def read_answer(
    readline: Callable[[], bytes], source: str, clock: Callable[[], float] = time.perf_counter
) -> StreamedAnswer:
    """Read one streamed completion through ``readline`` (a file's or an HTTP response's) until
    ``[DONE]`` or the end of the body; ``source`` names the server in messages."""
    answer, tail = StreamedAnswer(), _Tail()
    for kind, data in _events(readline, tail):
        if data.strip() == "[DONE]":
            answer.ended_with_done = True
            return answer
        now = clock()
        try:
            chunk = json.loads(data)
        except json.JSONDecodeError:
            if kind == "error":
                raise StreamError(f"{source} reported an error: {data}", "server_error") from None
            raise StreamError(f"{source} sent malformed JSON in the stream; ends: {tail}") from None
        if not isinstance(chunk, dict):
            raise StreamError(f"{source} sent a non-object chunk; stream ends: {tail}")
        if kind == "error" or "error" in chunk or chunk.get("object") == "error":
            raise StreamError(f"{source} reported an error: {_error_text(chunk)}", "server_error")
        _add_chunk(answer, chunk, now)
    if answer.finish_reason is None and answer.completion_tokens is None:
        raise StreamError(
            f"{source}: the stream ended before a finish_reason or 'data: [DONE]'; "
            f"it ends: {str(tail) or '(nothing received)'}"
        )
    return answer


def _add_chunk(answer: StreamedAnswer, chunk: dict, now: float) -> None:
    for choice in chunk.get("choices") or []:
        if not isinstance(choice, dict) or choice.get("index", 0) != 0:
            continue  # one answer is asked for (n=1)
        delta = choice.get("delta")
        content = delta.get("content") if isinstance(delta, dict) else choice.get("text")
        if isinstance(content, str) and content:
            answer.text_parts.append(content)
            answer.piece_times_s.append(now)
        logprobs = choice.get("logprobs")
        for item in (logprobs.get("content") if isinstance(logprobs, dict) else None) or []:
            if isinstance(item, dict) and isinstance(item.get("logprob"), int | float):
                answer.logprobs.append(float(item["logprob"]))
        reason = choice.get("finish_reason")
        if reason and answer.finish_reason is None:
            answer.finish_reason, answer.finish_time_s = str(reason), now
    usage = chunk.get("usage")
    if isinstance(usage, dict):
        completion, prompt = (
            _count(usage.get("completion_tokens")),
            _count(usage.get("prompt_tokens")),
        )
        if completion is not None:
            answer.completion_tokens = completion
        if prompt is not None:
            answer.prompt_tokens = prompt


def _error_text(chunk: dict) -> str:
    error = chunk.get("error", chunk)
    if isinstance(error, dict):
        return str(error.get("message") or json.dumps(error))[:TAIL_CHARS]
    return str(error)[:TAIL_CHARS]


def _count(value) -> int | None:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
