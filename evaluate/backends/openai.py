"""Generation through an OpenAI-compatible chat-completions endpoint, timed like the local path.

``EndpointGenerator.generate(messages)`` has the interface of ``ChatGenerator.generate`` and
returns a ``Generation`` with the same latency convention (see ``evaluate.backends.transformers``):
- TTFT: from the start of the request (before the body is serialised) to the first streamed
  content delta;
- N: ``usage.completion_tokens`` (requested with ``stream_options.include_usage``); a server
  that sends no usage has the answer counted by the configured ``tokenizer``, or else its
  content deltas counted (which may merge several tokens into one chunk); ``token_source``
  says which;
- e2e: to the last content delta, TPOT = (e2e - TTFT) / (N - 1), so e2e = TTFT + TPOT * (N - 1).

The stream shapes of the common servers are read by ``evaluate.backends.sse_stream``.
Decoding settings (``max_new_tokens``, ``temperature``, ``stop``) come from the generator config,
greedy by default. The API key is read from the environment variable whose NAME is configured;
it never appears in config, logs or error messages. The HTTP connection is kept alive
between requests, as a serving client would, so TTFT after the warm-up request does
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
from dataclasses import dataclass
from urllib.parse import urlsplit

from evaluate.backends.base import Generation, GenerationFailure, check_context
from evaluate.backends.sse_stream import StreamedAnswer, StreamError, read_answer
from rag.core.errors import UserError

logger = logging.getLogger(__name__)

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_BODY_PREVIEW_CHARS = 200
# finish_reason of a model that emitted its end-of-sequence token (OpenAI, vLLM, llama.cpp,
# Ollama: "stop"; TGI: "eos_token"); "length" means max_tokens cut it.
_EOS_FINISH = ("stop", "eos_token")
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
    """A ``Generation`` that also records where N came from: ``usage`` (the server's figures),
    ``tokenizer`` (``generator.tokenizer`` re-counting the answer) or ``chunks`` (streamed
    pieces counted, which may merge several tokens)."""

    tokens_from_usage: bool = True
    token_source: str = "usage"


class EndpointGenerator:
    """An OpenAI-compatible ``/chat/completions`` (or, with ``api="completions"`` and a
    tokenizer, ``/completions``) server answering one request at a time (one
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
        temperature: float = 0.0,
        stop: list[str] | None = None,
        api: str = "chat",
    ):
        if api not in ("chat", "completions"):
            raise ValueError(f"generator.api={api!r} must be 'chat' or 'completions'")
        if api == "completions" and tokenizer is None:
            raise ValueError(
                "generator.api=completions needs generator.tokenizer: the prompt is the chat "
                "template applied here, by the served model's tokenizer"
            )
        route = "/chat/completions" if api == "chat" else "/completions"
        self.api = api
        parts = urlsplit(base_url.rstrip("/"))
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"generator.base_url={base_url!r} must be an http(s) URL")
        host = parts.netloc.rpartition("@")[2]  # user:password@ never reaches messages or logs
        self.url = f"{parts.scheme}://{host}{parts.path}{route}"
        self._scheme, self._host, self._port = parts.scheme, parts.hostname, parts.port
        self._path = f"{parts.path}{route}"
        self.model = model
        self.max_new_tokens = max_new_tokens
        self.temperature = temperature
        self.stop = list(stop or [])
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

    def _prompt(self, messages: list[dict[str, str]]) -> dict:
        """``messages`` for the chat endpoint; for ``/completions`` the prompt text the chat
        template makes of them (the server then adds no template of its own)."""
        if self.api == "chat":
            return {"messages": messages}
        text = self.tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, tokenize=False
        )
        return {"prompt": text}

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
        request = {
            "model": self.model,
            **self._prompt(messages),
            "max_tokens": self.max_new_tokens,
            "temperature": self.temperature,
            "stream": True,
            "stream_options": {"include_usage": True},
            "logprobs": True,  # token log-probs where the server supports them (the cascade)
        }
        if self.stop:
            request["stop"] = self.stop
        body = json.dumps(request).encode()
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
            answer = read_answer(response.readline, self.url)
            response.read()  # drain the end of the body so the connection can be reused
        except StreamError as exc:
            self.close()
            raise EndpointError(str(exc), exc.reason) from None
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
        return self._generation(answer, started, messages)

    def _generation(
        self, answer: StreamedAnswer, started: float, messages: list[dict[str, str]]
    ) -> EndpointGeneration:
        times = answer.piece_times_s or [t for t in (answer.finish_time_s,) if t is not None]
        if not times:
            raise EndpointError(f"{self.url}: the stream ended without content or finish_reason")
        n, source = self._output_tokens(answer)
        n = max(n, 1)  # an empty answer still ends with one (end-of-sequence) token
        ttft_s = times[0] - started
        e2e_s = times[-1] - started
        tpot_s = (e2e_s - ttft_s) / (n - 1) if n > 1 else 0.0
        prompt = answer.prompt_tokens
        return EndpointGeneration(
            text=answer.text.strip(),
            input_tokens=prompt if prompt is not None else self.prompt_tokens(messages),
            output_tokens=n,
            ttft_s=ttft_s,
            tpot_s=tpot_s,
            e2e_s=e2e_s,
            tokens_from_usage=source == "usage",
            token_source=source,
            token_logprobs=answer.logprobs or None,
        )

    def _output_tokens(self, answer: StreamedAnswer) -> tuple[int, str]:
        """N from the server's usage; else the answer re-tokenized by the configured tokenizer
        (plus the end-of-sequence token when the model stopped by itself, which the local backend
        counts too); else the content chunks, which may each carry several tokens."""
        if answer.completion_tokens is not None:
            return answer.completion_tokens, "usage"
        if self.tokenizer is not None:
            ids = self.tokenizer(answer.text, add_special_tokens=False)["input_ids"]
            return len(ids) + (answer.finish_reason in _EOS_FINISH), "tokenizer"
        return len(answer.piece_times_s), "chunks"

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


def from_config(config, model_path: str | None = None) -> EndpointGenerator:
    """The registry's constructor: a client of ``config.base_url`` serving ``config.model``
    (``model_path`` is unused: the weights live on the server)."""
    tokenizer = None
    if config.tokenizer:
        from transformers import AutoTokenizer

        from rag.core.models import default_cache_dir, resolve_generator

        # an alias (provisioned like generator.model), a local folder or a hub id
        tokenizer = AutoTokenizer.from_pretrained(
            resolve_generator(config.tokenizer, default_cache_dir())
        )
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
        temperature=config.temperature,
        stop=list(config.stop),
        api=config.api,
    )


def weight_format(model_path: str | None) -> tuple[str, float] | None:
    """``(dtype, bytes_per_param)`` of the served weights, read from the server's checkpoint
    when a local copy of it is known (``model_path``): OpenAI-compatible servers such as
    ``transformers serve`` and vLLM load ``dtype="auto"``, the checkpoint's own dtype. None
    when there is no local copy or its config.json names no dtype."""
    from rag.core.models import stored_weight_format

    dtype, size = stored_weight_format(model_path)
    return (dtype, size) if dtype is not None and size is not None else None
