"""A fake OpenAI-compatible server on 127.0.0.1 with known timings, for edge cases a real
server cannot produce on demand (stalls, broken streams, HTTP errors).

It streams chunked server-sent events like the OpenAI API: a role chunk, content deltas at known
times, a finish chunk, a usage chunk and ``data: [DONE]``.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

FIRST_TOKEN_S = 0.15  # server-side wait before the first content delta
DELTA_S = 0.04  # between content deltas
DELTAS = ["Tarrow", "by", " in", " 1957."]
USAGE = {"prompt_tokens": 17, "completion_tokens": 6, "total_tokens": 23}
MAX_REQUESTS = 100  # the fake server answers 503 beyond this, so a runaway loop cannot hang


class FakeOpenAIHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive and chunked streaming, like real servers
    disable_nagle_algorithm = True
    timeout = 5  # an idle kept-alive connection is dropped after this

    def log_message(self, format, *args):  # noqa: A002 - the stdlib's signature
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        server = self.server
        server.requests.append(
            {
                "path": self.path,
                "headers": dict(self.headers),
                "body": body,
                "client": self.client_address,
            }
        )
        if len(server.requests) > MAX_REQUESTS:
            return self._plain(503, "too many requests for the fake server")
        getattr(self, f"scenario_{server.scenario}")()

    # -- response helpers ---------------------------------------------------------------------
    def _plain(self, status: int, text: str):
        data = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _start_stream(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

    def _chunk(self, text: str):
        data = text.encode()
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

    def _event(self, payload: dict):
        self._chunk(f"data: {json.dumps(payload)}\n\n")

    def _delta(self, content: str | None = None, role: str | None = None, finish=None):
        delta = {k: v for k, v in (("role", role), ("content", content)) if v is not None}
        choice = {"index": 0, "delta": delta, "finish_reason": finish}
        self._event({"id": "c1", "object": "chat.completion.chunk", "choices": [choice]})

    def _done(self):
        self._chunk("data: [DONE]\n\n")
        self.wfile.write(b"0\r\n\r\n")

    def _stream_answer(self, usage: bool = True):
        self._start_stream()
        self._delta(role="assistant", content="")  # sent at once, carries no token
        self._chunk(": keep-alive comment\n\n")
        time.sleep(FIRST_TOKEN_S)
        for i, piece in enumerate(DELTAS):
            if i:
                time.sleep(DELTA_S)
            self._delta(content=piece)
        self._delta(finish="stop")
        if usage:
            self._event(
                {"id": "c1", "object": "chat.completion.chunk", "choices": [], "usage": USAGE}
            )
        self._done()

    # -- scenarios ----------------------------------------------------------------------------
    def scenario_ok(self):
        self._stream_answer()

    def scenario_no_usage(self):
        self._stream_answer(usage=False)

    def scenario_ok_then_drop(self):
        self._stream_answer()
        self.close_connection = True  # closes the kept-alive connection without telling

    def scenario_error_500(self):
        self._plain(500, "x" * 300 + " internal failure")

    def scenario_malformed(self):
        self._start_stream()
        self._chunk('data: {"choices": [{"delta": {"content": "hi"\n\n')
        self._done()

    def scenario_error_event(self):
        self._start_stream()
        self._event({"error": {"message": "model overloaded", "type": "server_error"}})
        self._done()

    def scenario_no_done(self):
        self._start_stream()
        self._delta(content="half an answer")
        self.wfile.write(b"0\r\n\r\n")

    def scenario_not_sse(self):
        data = json.dumps({"choices": [{"message": {"content": "not streamed"}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def scenario_slow_headers(self):
        time.sleep(1.0)
        self._plain(200, "too late")

    def scenario_stall_mid_stream(self):
        self._start_stream()
        self._delta(content="Tarrow")
        time.sleep(1.0)
        self._done()


class FakeOpenAIServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # writes to sockets the client closed on purpose (timeout tests)


def serving(handler: type[FakeOpenAIHandler]):
    """A fake OpenAI server with ``handler`` on a free 127.0.0.1 port, for a fixture to yield
    from; shut down afterwards."""
    httpd = FakeOpenAIServer(("127.0.0.1", 0), handler)
    httpd.scenario, httpd.requests = "ok", []
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=5)
