"""Generation through an OpenAI-compatible chat-completions endpoint, timed like the local path.

``EndpointGenerator.generate(messages)`` has the interface of ``ChatGenerator.generate`` and
returns a ``Generation`` with the same latency convention (see ``evaluate.backends.transformers``):
- TTFT: from the start of the request (before the body is serialised) to the first streamed
  content delta;
- N: ``usage.completion_tokens`` of the final usage chunk (requested with
  ``stream_options.include_usage``); a server that sends no usage gets its content deltas
  counted instead, which may merge several tokens into one chunk, and the result says so
  (``tokens_from_usage=False``);
- e2e: to the last content delta, TPOT = (e2e - TTFT) / (N - 1), so e2e = TTFT + TPOT * (N - 1).

Decoding is greedy (``temperature: 0``). The API key is read from the environment variable whose
NAME is configured; it never appears in config, logs or error messages. The HTTP connection is
kept alive between requests, as a serving client would, so TTFT after the warm-up request does
not include TCP and TLS set-up. Requests are never retried after a response has started: a
measurement is either whole or an ``EndpointError``.

Failures of one request (HTTP error, timeout, malformed stream, a prompt over the context
window) are ``EndpointError``s with a ``reason``; the evaluation counts them as failed questions.
A server that cannot be reached at all (``reason="unreachable"``) or a missing API key ends the
run instead. The context window is checked before sending when a local ``tokenizer`` (the served
model's) and ``context_window`` are given; otherwise a server's "maximum context length" refusal
(HTTP 400, as vLLM and OpenAI word it) is classified as ``context_overflow``.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import re
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from evaluate.backends.base import Generation, GenerationFailure, check_context
from rag.core.errors import UserError

logger = logging.getLogger(__name__)

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_BODY_PREVIEW_CHARS = 200
# Errors of a kept-alive connection the server closed while idle: safe to retry once on a new
# connection, because the request never reached a live server.
_STALE_CONNECTION = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)
# How servers word a prompt over the context window (vLLM: "This model's maximum context length
# is N tokens", OpenAI: "context_length_exceeded", TGI: "must have less than N tokens").
_CONTEXT_REFUSAL = re.compile(r"context.length|maximum context|less than \d+ tokens", re.I)


class EndpointError(GenerationFailure, UserError):
    """The endpoint could not be reached or answered with something other than a valid stream.
    ``reason``: unreachable | http_error | timeout | malformed_response | server_error |
    context_overflow | configuration."""

    def __init__(self, message: str, reason: str = "malformed_response"):
        super().__init__(message, reason)


@dataclass
class EndpointGeneration(Generation):
    """A ``Generation`` that also records whether N came from the server's usage figures."""

    tokens_from_usage: bool = True


class EndpointGenerator:
    """An OpenAI-compatible ``/chat/completions`` server answering one request at a time (one
    kept-alive connection: not for use from several threads at once)."""

    def __init__(
        self,
        base_url: str,
        model: str,
        max_new_tokens: int = 24,
        api_key_env: str | None = None,
        connect_timeout_s: float = 5.0,
        read_timeout_s: float = 60.0,
        tokenizer=None,
        name: str = "",
        context_window: int | None = None,
    ):
        parts = urlsplit(base_url.rstrip("/"))
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"generator.base_url={base_url!r} must be an http(s) URL")
        host = parts.netloc.rpartition("@")[2]  # user:password@ never reaches messages or logs
        self.url = f"{parts.scheme}://{host}{parts.path}/chat/completions"
        self._scheme, self._host, self._port = parts.scheme, parts.hostname, parts.port
        self._path = f"{parts.path}/chat/completions"
        self.model = model
        self.max_new_tokens = max_new_tokens
        self.connect_timeout_s = connect_timeout_s
        self.read_timeout_s = read_timeout_s
        self.tokenizer = tokenizer
        self.context_window = context_window
        self.name = name or f"{model}@{self.url}"
        self._api_key = _read_api_key(api_key_env)
        self._conn: http.client.HTTPConnection | None = None

    def prompt_tokens(self, messages: list[dict[str, str]]) -> int:
        """Prompt length from the local ``tokenizer`` if one was given (it should be the served
        model's), else -1: unknown until the server reports ``usage.prompt_tokens``."""
        if self.tokenizer is None:
            return -1
        encoded = self.tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, return_dict=True
        )
        return len(encoded["input_ids"])

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> EndpointGenerator:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def generate(self, messages: list[dict[str, str]]) -> EndpointGeneration:
        if self.context_window is not None:
            check_context(
                self.prompt_tokens(messages), self.max_new_tokens, self.context_window, self.name
            )
        started = time.perf_counter()
        body = json.dumps(
            {
                "model": self.model,
                "messages": messages,
                "max_tokens": self.max_new_tokens,
                "temperature": 0,
                "stream": True,
                "stream_options": {"include_usage": True},
                "logprobs": True,  # token log-probs where the server supports them (cascade)
            }
        ).encode()
        try:
            response = self._send(body)
            if response.status >= 400:
                preview = response.read(4 * _BODY_PREVIEW_CHARS).decode("utf-8", "replace")
                refused = response.status == 400 and _CONTEXT_REFUSAL.search(preview)
                raise EndpointError(
                    f"{self.url} returned HTTP {response.status} {response.reason}: "
                    f"{preview[:_BODY_PREVIEW_CHARS]}",
                    "context_overflow" if refused else "http_error",
                )
            stream = _read_stream(response, self.url)
            response.read()  # drain the end of the body so the connection can be reused
        except EndpointError:
            self.close()
            raise
        except TimeoutError:
            self.close()
            raise EndpointError(
                f"{self.url}: timed out (connect {self.connect_timeout_s} s, "
                f"read {self.read_timeout_s} s)",
                "timeout",
            ) from None
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            raise EndpointError(f"cannot reach {self.url}: {exc}", "unreachable") from None
        return stream.to_generation(started)

    def _send(self, body: bytes) -> http.client.HTTPResponse:
        headers = {"Content-Type": "application/json", "Accept": "text/event-stream"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        for attempt in (1, 2):
            reused = self._conn is not None
            conn = self._connection()
            try:
                conn.request("POST", self._path, body=body, headers=headers)
                return conn.getresponse()
            except _STALE_CONNECTION:
                self.close()
                if not reused or attempt == 2:
                    raise
                logger.debug("kept-alive connection to %s was closed; reconnecting", self.url)
        raise AssertionError("unreachable")

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            https = self._scheme == "https"
            cls = http.client.HTTPSConnection if https else http.client.HTTPConnection
            conn = cls(self._host, self._port, timeout=self.connect_timeout_s)
            conn.connect()
            conn.sock.settimeout(self.read_timeout_s)  # from here on, the wait between bytes
            # Small request writes must not wait for a delayed ACK (Nagle), as in serving clients.
            conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._conn = conn
        return self._conn


def _read_api_key(api_key_env: str | None) -> str | None:
    if not api_key_env:
        return None
    if not _ENV_NAME.match(api_key_env):
        # Never echo the value: a key pasted here by mistake must not reach logs.
        raise ValueError(
            "generator.api_key_env must be the NAME of an environment variable holding the key "
            "(letters, digits, underscores), not the key itself"
        )
    key = os.environ.get(api_key_env)
    if not key:
        raise EndpointError(
            f"generator.api_key_env={api_key_env}: that environment variable is not set "
            "(set it, or set api_key_env to null for a server without authentication)",
            "configuration",
        )
    return key


@dataclass
class _Stream:
    url: str
    text_parts: list[str]
    token_times: list[float]
    finish_time: float | None
    completion_tokens: int | None
    prompt_tokens: int | None
    logprobs: list[float] = field(default_factory=list)  # choices[].logprobs.content[].logprob

    def to_generation(self, started: float) -> EndpointGeneration:
        times = self.token_times or ([self.finish_time] if self.finish_time is not None else [])
        if not times:
            raise EndpointError(f"{self.url}: the stream ended without content or finish_reason")
        from_usage = self.completion_tokens is not None
        n = self.completion_tokens if from_usage else len(self.token_times)
        n = max(n, 1)  # an empty answer still ends with one (end-of-sequence) token
        ttft_s = times[0] - started
        e2e_s = times[-1] - started
        tpot_s = (e2e_s - ttft_s) / (n - 1) if n > 1 else 0.0
        return EndpointGeneration(
            text="".join(self.text_parts).strip(),
            input_tokens=self.prompt_tokens if self.prompt_tokens is not None else -1,
            output_tokens=n,
            ttft_s=ttft_s,
            tpot_s=tpot_s,
            e2e_s=e2e_s,
            tokens_from_usage=from_usage,
            token_logprobs=self.logprobs or None,
        )


def _events(response, received: list[str]):
    """Server-sent events: yields each event's data (its ``data:`` lines joined by newlines).
    The first lines read are kept in ``received`` for error messages."""
    data: list[str] = []
    while True:
        raw = response.readline()
        if not raw:
            break
        line = raw.decode("utf-8", "replace").rstrip("\r\n")
        if sum(map(len, received)) < _BODY_PREVIEW_CHARS:
            received.append(line)
        if not line:
            if data:
                yield "\n".join(data)
                data = []
            continue
        if line.startswith(":"):  # comment / keep-alive
            continue
        field, _, value = line.partition(":")
        if field == "data":
            data.append(value[1:] if value.startswith(" ") else value)
    if data:
        yield "\n".join(data)


def _read_stream(response, url: str) -> _Stream:
    stream = _Stream(url, [], [], None, None, None)
    received: list[str] = []
    for data in _events(response, received):
        if data == "[DONE]":
            return stream
        now = time.perf_counter()
        try:
            chunk = json.loads(data)
        except json.JSONDecodeError:
            raise EndpointError(
                f"{url} sent malformed JSON in the stream: {data[:_BODY_PREVIEW_CHARS]!r}"
            ) from None
        if not isinstance(chunk, dict):
            raise EndpointError(f"{url} sent a non-object chunk: {data[:_BODY_PREVIEW_CHARS]!r}")
        if "error" in chunk:
            raise EndpointError(
                f"{url} reported an error: {data[:_BODY_PREVIEW_CHARS]}", "server_error"
            )
        for choice in chunk.get("choices") or []:
            content = (choice.get("delta") or {}).get("content")
            if content:
                stream.text_parts.append(content)
                stream.token_times.append(now)
            for item in (choice.get("logprobs") or {}).get("content") or []:
                if isinstance(item, dict) and isinstance(item.get("logprob"), int | float):
                    stream.logprobs.append(float(item["logprob"]))
            if choice.get("finish_reason") and stream.finish_time is None:
                stream.finish_time = now
        usage = chunk.get("usage")
        if usage:
            stream.completion_tokens = _int_or_none(usage.get("completion_tokens"))
            stream.prompt_tokens = _int_or_none(usage.get("prompt_tokens"))
    preview = " ".join(received)[:_BODY_PREVIEW_CHARS]
    raise EndpointError(f"{url}: the stream ended before 'data: [DONE]'; received: {preview}")


def _int_or_none(value) -> int | None:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def from_config(config, model_path: str | None = None) -> EndpointGenerator:
    """The registry's constructor: a client of ``config.base_url`` serving ``config.model``
    (``model_path`` is unused: the weights live on the server)."""
    tokenizer = None
    if config.tokenizer:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(Path(config.tokenizer).expanduser()))
    return EndpointGenerator(
        config.base_url,
        model=config.model,
        max_new_tokens=config.max_new_tokens,
        api_key_env=config.api_key_env,
        connect_timeout_s=config.connect_timeout_s,
        read_timeout_s=config.read_timeout_s,
        name=config.model,
        tokenizer=tokenizer,
        context_window=config.context_window,
    )
