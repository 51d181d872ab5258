"""Per-question failures: an endpoint error, a malformed stream, a timeout or a prompt over the
context window fails that question only; it is counted, scored 0, reported by reason, kept out
of the latency statistics, and too many of them stop the arm with one clear line."""

from __future__ import annotations

import json
import socket
import time

import pytest

from evaluate.arms.answering import TooManyFailuresError, run_arm
from evaluate.backends.base import ContextOverflowError
from evaluate.backends.openai import EndpointError, EndpointGenerator
from evaluate.backends.transformers import ChatGenerator
from evaluate.records.results import arm_run_metrics, evaluation_summary, latency_table
from evaluate.scoring.metrics import percentile
from rag.core.types import QAPair
from tests.helpers.fake_openai import FakeOpenAIHandler, serving

ANSWER = "Tarrowby"


class PerQuestionHandler(FakeOpenAIHandler):
    """Answers ANSWER, except for questions carrying a marker word: FAIL500 gets HTTP 500,
    MALFORMED a broken JSON chunk, STALL a stream that stops for longer than the read timeout,
    CONTEXT a vLLM-style 400 "maximum context length" refusal."""

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.requests.append(body)
        question = body["messages"][-1]["content"]
        if "FAIL500" in question:
            return self._plain(500, "internal failure")
        if "CONTEXT" in question:
            return self._plain(400, "This model's maximum context length is 2048 tokens.")
        if "MALFORMED" in question:
            return self.scenario_malformed()
        if "STALL" in question:
            return self.scenario_stall_mid_stream()
        self._start_stream()
        self._delta(content=ANSWER)
        self._delta(finish="stop")
        usage = {"prompt_tokens": 11, "completion_tokens": 3, "total_tokens": 14}
        self._event({"id": "c", "object": "chat.completion.chunk", "choices": [], "usage": usage})
        self._done()


@pytest.fixture(scope="module")
def server():
    yield from serving(PerQuestionHandler)


def _endpoint(server, **kwargs) -> EndpointGenerator:
    host, port = server.server_address[:2]
    return EndpointGenerator(
        f"http://{host}:{port}/v1", model="fake", read_timeout_s=0.3, name="fake", **kwargs
    )


def _questions(*markers: str) -> list[QAPair]:
    return [
        QAPair(f"q{i}", f"Where was person {i} born? {marker}".strip(), [ANSWER], [])
        for i, marker in enumerate(markers)
    ]


def test_failed_questions_are_counted_scored_zero_and_kept_out_of_latency(server):
    questions = _questions("", "FAIL500", "", "MALFORMED", "STALL", "CONTEXT", "", "", "", "")
    with _endpoint(server) as generator:
        preds = run_arm("closed_book", questions, generator, None, 1, False, None, 0.5)

    assert [p.qa_id for p in preds] == [q.qa_id for q in questions]  # nothing dropped
    reasons = {p.qa_id: p.failure_reason for p in preds if p.error}
    assert reasons == {
        "q1": "http_error",
        "q3": "malformed_response",
        "q4": "timeout",
        "q5": "context_overflow",
    }
    failed = [p for p in preds if p.error]
    assert all("\n" not in p.error for p in failed)
    assert "HTTP 500" in preds[1].error and "timed out" in preds[4].error
    assert all(p.contains == 0 and p.exact_match == 0 and p.output_tokens == 0 for p in failed)
    answered = [p for p in preds if not p.error]
    assert all(p.contains == 1.0 for p in answered)
    summary = evaluation_summary(preds)
    assert summary["failures"] == 4
    assert summary["failure_reasons"] == {
        "http_error": 1,
        "malformed_response": 1,
        "timeout": 1,
        "context_overflow": 1,
    }
    # failed questions (no timings) are excluded from every latency figure
    table = latency_table(preds)
    assert table["ttft_p50_s"] == percentile([p.ttft_s for p in answered], 50)
    assert table["ttft_p50_s"] != percentile([p.ttft_s for p in preds], 50)
    assert table["e2e_mean_s"] == pytest.approx(sum(p.e2e_s for p in answered) / len(answered))


def test_failures_reach_results_metrics():
    figures = {
        "accuracy": {"contains": 0.5},
        "latency": {},
        "tokens": {},
        "failures": 2,
        "failure_reasons": {"timeout": 2},
        "reused_answers": 1,
        "judge": None,
        "cost": {
            "one_time_total": {"usd": 0, "co2_kg": 0, "energy_kwh": 0, "xpu_hours": 0},
            "per_1k_queries": {"usd": 0, "co2_kg": 0, "energy_kwh": 0, "xpu_hours": 0},
            "usd_per_1m_output_tokens": None,
        },
    }
    results = {
        "arms": {"rag": figures},
        "stages": {"corpus": {"documents": 1, "train_questions": 1, "eval_questions": 4}},
    }
    metrics = arm_run_metrics(results, "rag")
    assert metrics["eval/failures"] == 2.0
    assert metrics["eval/reused_answers"] == 1.0


def test_too_many_failures_stop_the_arm_with_one_line(server):
    questions = _questions("", "FAIL500", "FAIL500", "", "")
    with (
        _endpoint(server) as generator,
        pytest.raises(TooManyFailuresError) as info,
    ):
        run_arm("rag", questions, generator, None, 0, False, None, 0.2)
    message = str(info.value)
    assert "\n" not in message
    assert "arm rag: 2 of 5 questions failed (http_error: 2)" in message
    assert "eval.max_failure_rate=0.2" in message


def test_an_endpoint_down_at_the_first_request_is_still_a_clear_error():
    with socket.socket() as probe:  # a port that was free a moment ago and has no listener
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    generator = EndpointGenerator(f"http://127.0.0.1:{port}/v1", model="m", connect_timeout_s=60)
    started = time.perf_counter()
    with pytest.raises(EndpointError, match=f"cannot reach .*127.0.0.1:{port}") as info:
        run_arm("closed_book", _questions("", ""), generator, None, 1, False, None, 0.5)
    assert info.value.reason == "unreachable"
    assert time.perf_counter() - started < 60  # refused at once, not after the connect timeout


def test_endpoint_context_window_is_checked_before_sending(server, tiny_model_dir):
    local = ChatGenerator.load(tiny_model_dir)
    generator = _endpoint(server, tokenizer=local.tokenizer, context_window=64)
    sent = len(server.requests)
    long_question = _questions("word " * 200)[0]
    with pytest.raises(ContextOverflowError, match="exceeds the context window of 64 tokens"):
        generator.generate([{"role": "user", "content": long_question.question}])
    assert len(server.requests) == sent  # refused locally, nothing sent
    generator.close()


def test_in_process_over_long_question_fails_that_question_only(tiny_model_dir):
    generator = ChatGenerator.load(tiny_model_dir, max_new_tokens=4)
    assert generator.context_window == 2048  # the tiny model's max_position_embeddings
    questions = _questions("", "", "")
    questions[1].question = "Where? " + "tarrow " * 2100
    preds = run_arm("closed_book", questions, generator, None, 0, False, None, 0.5)
    assert [p.failure_reason for p in preds] == [None, "context_overflow", None]
    assert "+ max_new_tokens 4 exceeds the context window of 2048 tokens" in preds[1].error
    assert preds[0].output_tokens >= 1 and preds[2].output_tokens >= 1
    # a configured window narrows the model's own
    narrow = ChatGenerator(generator.model, generator.tokenizer, 4, context_window=16)
    assert narrow.context_window == 16
