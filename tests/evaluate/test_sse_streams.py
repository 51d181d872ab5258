"""Streams of the servers people run, read by ``evaluate.backends.sse_stream`` and the backend.

``tests/data/streams/`` holds one byte stream per server (vLLM, llama.cpp's server, TGI, Ollama's
OpenAI endpoint, llama-cpp-python, and two recorded from ``transformers serve``), and
``expected.json`` what each carries, written down by reading the stream.
"""

from __future__ import annotations

import io
import itertools
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from evaluate.backends.openai import EndpointError, EndpointGenerator
from evaluate.backends.sse_stream import TAIL_CHARS, StreamError, read_answer
from rag.core.prompts import closed_book_messages

STREAMS = Path(__file__).resolve().parents[1] / "data" / "streams"
EXPECTED = {
    name: facts
    for name, facts in json.loads((STREAMS / "expected.json").read_text()).items()
    if not name.startswith("_")
}
MESSAGES = closed_book_messages("Where was Velmora Quist born?")


def _read(data: bytes, clock=None):
    ticks = itertools.count(1)
    return read_answer(io.BytesIO(data).readline, "srv", clock or (lambda: float(next(ticks))))


def test_every_named_server_has_a_stream():
    servers = {facts["server"] for facts in EXPECTED.values()}
    for server in ("vLLM", "llama.cpp server", "Hugging Face TGI", "Ollama (OpenAI endpoint)"):
        assert server in servers
    assert {"chat", "completions"} <= {
        f["endpoint"] for f in EXPECTED.values() if f["server"] == "transformers serve"
    }
    assert sorted(EXPECTED) == sorted(p.name for p in STREAMS.glob("*.sse"))


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_recorded_stream_is_read_whole(name):
    facts = EXPECTED[name]
    answer = _read((STREAMS / name).read_bytes())
    assert answer.text == facts["text"]
    assert len(answer.piece_times_s) == facts["pieces"]  # content pieces only, no role chunk
    assert answer.completion_tokens == facts["completion_tokens"]
    assert answer.prompt_tokens == facts["prompt_tokens"]
    assert answer.finish_reason == facts["finish_reason"]
    assert answer.ended_with_done is facts["done"]
    # the first piece is timed when it arrived, not at the (content-less) role chunk before it
    assert answer.piece_times_s == sorted(answer.piece_times_s)


def _events(*payloads: str, end: str = "") -> bytes:
    return ("".join(f"data: {p}\n\n" for p in payloads) + end).encode()


def _delta(content: str) -> str:
    return json.dumps({"choices": [{"index": 0, "delta": {"content": content}}]})


FINISH = json.dumps({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
USAGE_ONLY = json.dumps({"choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 3}})


def test_finish_without_done_and_usage_only_chunk_after_it():
    answer = _read(_events(_delta("Tar"), _delta("rowby"), FINISH))
    assert (answer.text, answer.finish_reason, answer.completion_tokens) == (
        "Tarrowby",
        "stop",
        None,
    )
    answer = _read(_events(_delta("Tar"), _delta("rowby"), FINISH, USAGE_ONLY))
    assert (answer.completion_tokens, answer.prompt_tokens) == (3, 9)
    assert answer.ended_with_done is False


def test_comments_event_fields_crlf_and_multiline_data():
    chunk = json.dumps({"choices": [{"index": 0, "delta": {"content": "one"}}]}, indent=1)
    lines = [": keep-alive", "event: message", "id: 7", "retry: 1000"]
    lines += [f"data: {line}" for line in chunk.splitlines()]  # one event over several lines
    body = "\r\n".join(lines) + "\r\n\r\n:\r\n\r\n" + f"data:{FINISH}\r\n\r\ndata:[DONE]\r\n\r\n"
    answer = _read(body.encode())
    assert (answer.text, answer.finish_reason, answer.ended_with_done) == ("one", "stop", True)


def test_other_choices_and_empty_deltas_carry_no_token():
    other = json.dumps({"choices": [{"index": 1, "delta": {"content": "other"}}]})
    empty = json.dumps({"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]})
    answer = _read(_events(empty, other, _delta("mine"), FINISH))
    assert answer.text == "mine" and len(answer.piece_times_s) == 1


@pytest.mark.parametrize(
    ("body", "shown"),
    [
        # OpenAI / vLLM / Ollama: an error object in a data event
        (
            _events(_delta("Tar"), '{"error": {"message": "model overloaded", "code": 503}}'),
            "model overloaded",
        ),
        # vLLM's ErrorResponse sent as the chunk itself
        (_events('{"object": "error", "message": "engine dead", "code": 500}'), "engine dead"),
        # TGI: error is a string, with error_type
        (
            b'data:{"error":"Request failed during generation: OOM","error_type":"generation"}\n\n',
            "Request failed during generation: OOM",
        ),
        # llama.cpp server: an `error:` line instead of `data:`
        (
            b'error: {"code":500,"message":"slot unavailable","type":"server_error"}\n\n',
            "slot unavailable",
        ),
        # the standard SSE way: an `event: error` event
        (b'event: error\ndata: {"message": "aborted by the server"}\n\n', "aborted by the server"),
        (b"event: error\ndata: upstream went away\n\n", "upstream went away"),
    ],
)
def test_errors_sent_mid_stream(body, shown):
    with pytest.raises(StreamError) as caught:
        _read(body)
    assert caught.value.reason == "server_error"
    assert shown in str(caught.value)


def test_truncated_stream_shows_the_end_of_what_was_received():
    role = json.dumps({"choices": [{"index": 0, "delta": {"role": "assistant"}}]})
    body = _events(role, *(_delta(f"piece{i:02d}") for i in range(40)))
    with pytest.raises(StreamError) as caught:
        _read(body)
    message = str(caught.value)
    assert caught.value.reason == "malformed_response"
    assert "before a finish_reason or 'data: [DONE]'" in message
    assert "piece39" in message  # the end ...
    assert "assistant" not in message and "piece00" not in message  # ... not the start
    assert len(message) < TAIL_CHARS + 200


def test_malformed_json_shows_the_end_of_the_stream():
    body = _events(_delta("Tar"), '{"choices": [{"delta": {"content": "rowby"')
    with pytest.raises(StreamError, match="malformed JSON") as caught:
        _read(body)
    assert '"rowby"' in str(caught.value)


def test_empty_body_is_an_error():
    with pytest.raises(StreamError, match="nothing received"):
        _read(b"")


# -- the recorded streams through the endpoint backend over HTTP -------------------------------


class ReplayHandler(BaseHTTPRequestHandler):
    """Answers every POST with the bytes of ``server.stream``, one HTTP chunk per SSE event,
    and keeps the connection alive afterwards (as uvicorn does)."""

    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):  # noqa: A002 - the stdlib's signature
        pass

    def do_POST(self):
        self.server.bodies.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        self.server.paths.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        data = self.server.stream
        sep = b"\r\n\r\n" if b"\r\n\r\n" in data else b"\n\n"
        for event in data.split(sep):
            if event:
                piece = event + sep
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
        self.wfile.write(b"0\r\n\r\n")


@pytest.fixture(scope="module")
def replay():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), ReplayHandler)
    httpd.daemon_threads, httpd.paths, httpd.bodies = True, [], []
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=5)


class CharTokenizer:
    """One token per character: counts independent of any real vocabulary."""

    def __call__(self, text, add_special_tokens=True):
        return {"input_ids": list(range(len(text)))}

    def apply_chat_template(self, messages, add_generation_prompt=True, **kwargs):
        text = "".join(f"<{m['role']}>{m['content']}" for m in messages) + "<assistant>"
        if kwargs.get("tokenize") is False:
            return text
        return {"input_ids": list(range(len(text)))}


@pytest.mark.parametrize("name", [n for n in sorted(EXPECTED) if "chat" in n])
def test_recorded_chat_stream_through_the_endpoint_backend(replay, name):
    facts = EXPECTED[name]
    replay.stream = (STREAMS / name).read_bytes()
    host, port = replay.server_address[:2]
    with EndpointGenerator(f"http://{host}:{port}/v1", model="m", read_timeout_s=5) as generator:
        first = generator.generate(MESSAGES)
        again = generator.generate(MESSAGES)  # the body was drained: the connection is reused
    assert first.text == again.text == facts["text"].strip()
    if facts["completion_tokens"] is not None:
        assert (first.output_tokens, first.token_source) == (facts["completion_tokens"], "usage")
        assert first.input_tokens == facts["prompt_tokens"]
    else:  # no usage and no tokenizer: content pieces are counted, and the result says so
        assert (first.output_tokens, first.token_source) == (facts["pieces"], "chunks")
        assert first.input_tokens == -1
    assert first.ttft_s <= first.e2e_s
    assert replay.paths[-1] == "/v1/chat/completions"


def test_without_usage_a_configured_tokenizer_counts_the_answer(replay):
    name = "llama_cpp_python_chat.sse"
    replay.stream = (STREAMS / name).read_bytes()
    host, port = replay.server_address[:2]
    generator = EndpointGenerator(f"http://{host}:{port}/v1", model="m", tokenizer=CharTokenizer())
    with generator:
        gen = generator.generate(MESSAGES)
    text = EXPECTED[name]["text"]
    # one token per character, plus the end-of-sequence token (finish_reason "stop")
    assert (gen.output_tokens, gen.token_source) == (len(text) + 1, "tokenizer")
    assert gen.tokens_from_usage is False
    assert gen.input_tokens == len(CharTokenizer().apply_chat_template(MESSAGES, tokenize=False))


def test_completions_endpoint_gets_the_templated_prompt(replay):
    name = "vllm_completions.sse"
    replay.stream = (STREAMS / name).read_bytes()
    host, port = replay.server_address[:2]
    url = f"http://{host}:{port}/v1"
    tokenizer = CharTokenizer()
    with EndpointGenerator(url, model="m", tokenizer=tokenizer, api="completions") as generator:
        gen = generator.generate(MESSAGES)
    assert replay.paths[-1] == "/v1/completions"
    body = replay.bodies[-1]
    assert "messages" not in body
    assert (
        body["prompt"] == "".join(f"<{m['role']}>{m['content']}" for m in MESSAGES) + "<assistant>"
    )
    facts = EXPECTED[name]
    assert (gen.text, gen.output_tokens) == (facts["text"], facts["completion_tokens"])
    assert gen.input_tokens == facts["prompt_tokens"]  # the server's usage wins over the tokenizer
    with pytest.raises(ValueError, match="needs generator.tokenizer"):
        EndpointGenerator(url, model="m", api="completions")


def test_truncated_stream_through_the_backend_is_a_failed_question(replay):
    replay.stream = _events(_delta("half"), _delta(" an answer"))
    host, port = replay.server_address[:2]
    with EndpointGenerator(f"http://{host}:{port}/v1", model="m", read_timeout_s=5) as generator:
        with pytest.raises(EndpointError) as caught:
            generator.generate(MESSAGES)
    assert caught.value.reason == "malformed_response"
    assert " an answer" in str(caught.value)
