"""The OpenAI-compatible endpoint backend against a local fake server with known timings.

The server is the stdlib ThreadingHTTPServer on 127.0.0.1 (ephemeral port, daemon thread, shut
down after the module). It streams chunked server-sent events like the OpenAI API: a role
chunk, content deltas at known times, a finish chunk, a usage chunk and ``data: [DONE]``.
"""

from __future__ import annotations

import json
import math
import socket
import time

import pytest

from evaluate.backends.base import Generation
from evaluate.backends.openai import EndpointError, EndpointGeneration, EndpointGenerator
from rag.core.prompts import closed_book_messages
from tests.helpers.fake_openai import (
    DELTA_S,
    DELTAS,
    FIRST_TOKEN_S,
    FakeOpenAIHandler,
    serving,
)
from tests.helpers.ragtune_cli import ragtune


@pytest.fixture(scope="module")
def server():
    yield from serving(FakeOpenAIHandler)


_OPEN: list[EndpointGenerator] = []


@pytest.fixture
def fake(server):
    server.scenario, server.requests = "ok", []
    yield server
    while _OPEN:
        _OPEN.pop().close()


def _generator(server, **kwargs) -> EndpointGenerator:
    host, port = server.server_address
    kwargs.setdefault("read_timeout_s", 5.0)
    generator = EndpointGenerator(f"http://{host}:{port}/v1/", model="fake-model", **kwargs)
    _OPEN.append(generator)  # closed after the test
    return generator


MESSAGES = closed_book_messages("Where was Velmora Quist born?")


def test_streamed_answer_text_tokens_and_timings(fake):
    with _generator(fake, max_new_tokens=12) as generator:
        gen = generator.generate(MESSAGES)

    assert isinstance(gen, Generation) and isinstance(gen, EndpointGeneration)
    assert gen.text == "Tarrowby in 1957."
    assert (gen.input_tokens, gen.output_tokens) == (17, 6)
    assert gen.tokens_from_usage is True
    # The first content delta leaves the server FIRST_TOKEN_S after the request arrives (the
    # role chunk before it carries no token); loopback adds little on top.
    assert FIRST_TOKEN_S <= gen.ttft_s <= FIRST_TOKEN_S + 0.05
    last_delta_s = FIRST_TOKEN_S + DELTA_S * (len(DELTAS) - 1)
    assert last_delta_s <= gen.e2e_s <= last_delta_s + 0.06
    # N = 6 tokens from usage (the server merged them into 4 deltas): TPOT per token, not chunk.
    assert gen.tpot_s == pytest.approx((gen.e2e_s - gen.ttft_s) / 5)
    assert math.isclose(gen.e2e_s, gen.ttft_s + gen.tpot_s * (gen.output_tokens - 1), rel_tol=1e-12)


def test_request_is_greedy_streaming_with_usage(fake, monkeypatch):
    monkeypatch.setenv("RAGTUNE_TEST_API_KEY", "sk-test-123")
    _generator(fake, max_new_tokens=7, api_key_env="RAGTUNE_TEST_API_KEY").generate(MESSAGES)
    (request,) = fake.requests
    assert request["path"] == "/v1/chat/completions"
    assert request["headers"]["Authorization"] == "Bearer sk-test-123"
    body = request["body"]
    assert body["model"] == "fake-model" and body["messages"] == MESSAGES
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert body["temperature"] == 0 and body["max_tokens"] == 7


def test_without_usage_deltas_are_counted_and_flagged(fake):
    fake.scenario = "no_usage"
    gen = _generator(fake).generate(MESSAGES)
    assert gen.output_tokens == len(DELTAS)
    assert gen.tokens_from_usage is False
    assert gen.input_tokens == -1
    assert gen.tpot_s == pytest.approx(DELTA_S, abs=0.02)


def test_connection_is_kept_alive_and_reopened_when_the_server_drops_it(fake):
    generator = _generator(fake)
    generator.generate(MESSAGES)
    generator.generate(MESSAGES)
    assert fake.requests[0]["client"] == fake.requests[1]["client"]  # one TCP connection
    fake.scenario = "ok_then_drop"
    generator.generate(MESSAGES)
    fake.scenario = "ok"
    assert generator.generate(MESSAGES).text == "Tarrowby in 1957."
    assert fake.requests[3]["client"] != fake.requests[2]["client"]


def test_prompt_tokens_is_unknown_without_a_tokenizer(fake, tiny_model_dir):
    from evaluate.backends.transformers import ChatGenerator

    assert _generator(fake).prompt_tokens(MESSAGES) == -1
    local = ChatGenerator.load(tiny_model_dir)
    with_tokenizer = _generator(fake, tokenizer=local.tokenizer)
    assert with_tokenizer.prompt_tokens(MESSAGES) == local.prompt_tokens(MESSAGES)


def test_server_down_fails_fast_with_the_url():
    with socket.socket() as probe:  # a port that was free a moment ago and has no listener
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    generator = EndpointGenerator(f"http://127.0.0.1:{port}/v1", model="m", connect_timeout_s=60)
    started = time.perf_counter()
    with pytest.raises(EndpointError, match=f"127.0.0.1:{port}/v1/chat/completions"):
        generator.generate(MESSAGES)
    assert time.perf_counter() - started < 60  # refused at once, not after the connect timeout


def test_http_error_reports_status_and_the_start_of_the_body(fake):
    fake.scenario = "error_500"
    with pytest.raises(EndpointError) as info:
        _generator(fake).generate(MESSAGES)
    message = str(info.value)
    assert "HTTP 500" in message and "/v1/chat/completions" in message
    assert "x" * 200 in message and "x" * 201 not in message


@pytest.mark.parametrize(
    ("scenario", "expected"),
    [
        ("malformed", "malformed JSON"),
        ("error_event", "model overloaded"),
        ("no_done", r"ended before a finish_reason or 'data: \[DONE\]'"),
        ("not_sse", "not streamed"),
    ],
)
def test_broken_streams_raise_endpoint_error(fake, scenario, expected):
    fake.scenario = scenario
    with pytest.raises(EndpointError, match=expected):
        _generator(fake).generate(MESSAGES)


@pytest.mark.parametrize("scenario", ["slow_headers", "stall_mid_stream"])
def test_read_timeout(fake, scenario):
    fake.scenario = scenario
    generator = _generator(fake, read_timeout_s=0.05)
    started = time.perf_counter()
    with pytest.raises(EndpointError, match="timed out"):
        generator.generate(MESSAGES)
    assert time.perf_counter() - started < 1.0  # the server stalls 1 s: the timeout ended it


def test_api_key_only_from_a_named_environment_variable(fake, monkeypatch):
    with pytest.raises(ValueError, match="NAME of an environment variable") as info:
        _generator(fake, api_key_env="sk-live-secret-value")
    assert "sk-live-secret-value" not in str(info.value)
    monkeypatch.delenv("RAGTUNE_UNSET_KEY", raising=False)
    with pytest.raises(EndpointError, match="RAGTUNE_UNSET_KEY"):
        _generator(fake, api_key_env="RAGTUNE_UNSET_KEY")
    generator = _generator(fake)  # no api_key_env: no Authorization header
    generator.generate(MESSAGES)
    assert "Authorization" not in fake.requests[-1]["headers"]


def test_entry_point_runs_closed_book_and_rag_against_the_endpoint(fake, tmp_path):
    """`generator=openai` drives the real entry point; token counts come from the usage."""

    host, port = fake.server_address[:2]
    proc = ragtune(
        tmp_path,
        "experiment=smoke",
        "generator=openai",
        "generator.model=fake-model",
        f"generator.base_url=http://{host}:{port}/v1",
        "eval.arms=[closed_book,rag]",
        "tracking=none",
        "hydra.run.dir=outputs/endpoint",
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((tmp_path / "outputs/endpoint/results.json").read_text())
    assert results["stages"]["model"]["backend"] == "openai"
    assert list(results["arms"]) == ["closed_book", "rag"]
    for p in results["predictions"]:
        assert p["prediction"] == "".join(DELTAS)
        assert (p["input_tokens"], p["output_tokens"]) == (17, 6)
        assert p["ttft_s"] >= FIRST_TOKEN_S
    assert results["arms"]["rag"]["throughput"] is None  # batched runs need the local model
    sent = [r["body"] for r in fake.requests]
    assert all(body["model"] == "fake-model" and body["stream"] for body in sent)
    # the RAG prompt carries the retrieved context, the closed-book one does not
    assert any("Context:" in body["messages"][-1]["content"] for body in sent)
    assert any("Context:" not in body["messages"][-1]["content"] for body in sent)


def test_openai_backend_refuses_fine_tuned_arms(tmp_path):
    from hydra import compose, initialize_config_dir

    from evaluate.cli import CONF_DIR, to_config
    from evaluate.config.schema import ConfigError

    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose(
            config_name="config",
            overrides=[
                "generator=openai",
                "generator.model=m",
                "generator.base_url=http://127.0.0.1:9/v1",
            ],
        )
        with pytest.raises(ConfigError, match="eval.arms"):
            to_config(cfg)
        cfg = compose(
            config_name="config",
            overrides=[
                "generator=openai",
                "generator.model=m",
                "generator.base_url=http://127.0.0.1:9/v1",
                "eval.arms=[rag]",
                "generator.api_key_env=sk-secret-value",
            ],
        )
        with pytest.raises(ConfigError, match="NAME of an environment variable") as caught:
            to_config(cfg)
        assert "sk-secret-value" not in str(caught.value)


def test_served_weights_are_costed_as_the_checkpoint_stores_them(tmp_path):
    from evaluate.backends.openai import weight_format

    (tmp_path / "config.json").write_text(json.dumps({"torch_dtype": "bfloat16"}))
    assert weight_format(str(tmp_path)) == ("bfloat16", 2.0)  # bf16: 16 bits = 2 bytes
    assert weight_format(str(tmp_path / "absent")) is None  # no local copy: unknown
    assert weight_format(None) is None
