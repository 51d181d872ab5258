"""The optional LLM judge: verdict parsing, exact judge accuracy against a scripted endpoint,
and the tiny in-process judge's tokens reaching the evaluation cost line."""

from __future__ import annotations

import json

import pytest

from evaluate.arms.answering import Prediction
from evaluate.arms.judge import judge_messages, judge_predictions, parse_verdict
from evaluate.records.results import accuracy_intervals, accuracy_summary, evaluation_summary
from tests.helpers.fake_openai import FakeOpenAIHandler, serving

JUDGE_USAGE = {"prompt_tokens": 40, "completion_tokens": 1, "total_tokens": 41}


@pytest.mark.parametrize(
    ("reply", "verdict"),
    [
        ("Yes", 1.0),
        ("yes.", 1.0),
        ("**YES** - it matches", 1.0),
        ("Verdict: correct", 1.0),
        ("No", 0.0),
        ("no, the answer is wrong", 0.0),
        ("Incorrect.", 0.0),
        ("That is not correct", 0.0),
        ("It isn't right", 0.0),
        ("", None),
        ("I cannot tell", None),
        ("Maybe", None),
    ],
)
def test_parse_verdict(reply, verdict):
    assert parse_verdict(reply) == verdict


class ScriptedJudgeHandler(FakeOpenAIHandler):
    """A judge that says "Yes." when the proposed answer contains a correct one, "No" when not,
    and "Hmm" (unparseable) when the proposed answer is "unsure"."""

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.requests.append(body)
        prompt = body["messages"][-1]["content"]
        gold = prompt.split("Correct answers: ")[1].split("\n")[0].split("; ")
        proposed = prompt.split("Proposed answer: ")[1].split("\n")[0]
        if proposed == "unsure":
            reply = "Hmm"
        else:
            reply = "Yes." if any(g.lower() in proposed.lower() for g in gold) else "No"
        self._start_stream()
        self._delta(content=reply)
        self._delta(finish="stop")
        self._event(
            {"id": "j", "object": "chat.completion.chunk", "choices": [], "usage": JUDGE_USAGE}
        )
        self._done()


@pytest.fixture(scope="module")
def judge_server():
    yield from serving(ScriptedJudgeHandler)


def _prediction(qa_id: str, answer: str, gold: list[str], error: str | None = None) -> Prediction:
    return Prediction(
        arm="rag",
        qa_id=qa_id,
        question=f"Where was {qa_id} born?",
        answers=gold,
        prediction=answer,
        exact_match=0.0,
        token_f1=0.0,
        contains=0.0,
        input_tokens=10,
        output_tokens=3,
        ttft_s=0.1,
        tpot_s=0.01,
        e2e_s=0.12,
        error=error,
        failure_reason="timeout" if error else None,
    )


def test_scripted_endpoint_judge_gives_exact_accuracy_and_token_usage(judge_server):
    from evaluate.backends.openai import EndpointGenerator

    preds = [
        _prediction("a", "in Tarrowby", ["Tarrowby"]),
        _prediction("b", "Lund", ["Tarrowby", "Tarrow-by"]),
        _prediction("c", "tarrow-by", ["Tarrowby", "Tarrow-by"]),
        _prediction("d", "unsure", ["Osk"]),
        _prediction("e", "", ["Osk"], error="timed out"),
    ]
    host, port = judge_server.server_address[:2]
    sent = len(judge_server.requests)
    with EndpointGenerator(f"http://{host}:{port}/v1", model="judge", max_new_tokens=4) as judge:
        judge_predictions({"rag": preds}, judge)

    assert [p.judge for p in preds] == [1.0, 0.0, 1.0, None, 0.0]
    assert len(judge_server.requests) - sent == 4  # the failed question is not sent
    request = judge_server.requests[-1]
    assert request["max_tokens"] == 4 and request["temperature"] == 0
    assert request["messages"] == judge_messages(preds[3].question, ["Osk"], "unsure")
    # judge accuracy over the parseable verdicts: (1 + 0 + 1 + 0) / 4
    assert accuracy_summary(preds)["judge"] == pytest.approx(0.5)
    interval = accuracy_intervals(preds, seed=0, resamples=200)["judge"]
    assert interval["ci95_low"] <= 0.5 <= interval["ci95_high"]
    usage = evaluation_summary(preds)["judge"]
    assert usage["requests"] == 4 and usage["unparseable"] == 1
    assert usage["input_tokens"] == 4 * JUDGE_USAGE["prompt_tokens"]
    assert usage["output_tokens"] == 4 * JUDGE_USAGE["completion_tokens"]
    assert usage["wall_s"] > 0


def _config(model_cache, *overrides: str):
    from hydra import compose, initialize_config_dir

    from evaluate.cli import CONF_DIR, to_config

    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose(
            config_name="config",
            overrides=["experiment=smoke", f"paths.cache_dir={model_cache}", *overrides],
        )
        return to_config(cfg)


def test_tiny_in_process_judge_tokens_reach_the_evaluation_cost_line(model_cache, tiny_model_dir):
    from evaluate.arms.judge import load_judge, run_judge
    from evaluate.pipeline.costs import evaluation_costs
    from evaluate.records.results import arm_run_metrics

    config = _config(model_cache, "eval.judge.enabled=true")
    assert config.eval.judge.model == "tiny-random-llama"  # defaults to the generator
    preds = {
        "closed_book": [_prediction("a", "Tarrowby", ["Tarrowby"]), _prediction("b", "x", ["y"])]
    }
    usage = run_judge(config, preds)["closed_book"]

    judge = load_judge(config)
    expected_in = sum(
        judge.prompt_tokens(judge_messages(p.question, p.answers, p.prediction))
        for p in preds["closed_book"]
    )
    assert usage["input_tokens"] == expected_in
    assert 2 <= usage["output_tokens"] <= 2 * config.eval.judge.max_new_tokens
    for p in preds["closed_book"]:
        assert p.judge in (0.0, 1.0, None)  # random weights: any verdict, parsed or not
    lines = evaluation_costs(config, preds)
    line = lines["closed_book"]
    assert (line["judge_input_tokens"], line["judge_output_tokens"]) == (
        usage["input_tokens"],
        usage["output_tokens"],
    )
    assert line["judge_wall_s"] == pytest.approx(usage["wall_s"])
    assert line["cost"]["usd"] > 0 and line["cost"]["seconds"] == pytest.approx(usage["wall_s"])
    # the cost line is logged as cost/judge_usd on the arm's run
    figures = {
        "accuracy": {},
        "latency": {},
        "tokens": {},
        "cost": {
            "one_time_total": {"usd": 0, "co2_kg": 0, "energy_kwh": 0, "xpu_hours": 0},
            "per_1k_queries": {"usd": 0, "co2_kg": 0, "energy_kwh": 0, "xpu_hours": 0},
            "usd_per_1m_output_tokens": None,
        },
        **evaluation_summary(preds["closed_book"]),
    }
    results = {
        "arms": {"closed_book": figures},
        "costing": {"arms": {}, "qoe": {}, "break_even": {}, "evaluation": lines},
        "stages": {"corpus": {"documents": 1, "train_questions": 1, "eval_questions": 2}},
    }
    metrics = arm_run_metrics(results, "closed_book")
    assert metrics["cost/judge_usd"] == line["cost"]["usd"]
    assert metrics["judge/input_tokens"] == expected_in


def test_judge_is_off_by_default(model_cache):
    from evaluate.arms.judge import run_judge

    config = _config(model_cache)
    assert config.eval.judge.enabled is False
    preds = {"rag": [_prediction("a", "Tarrowby", ["Tarrowby"])]}
    assert run_judge(config, preds) == {}
    assert preds["rag"][0].judge is None
    assert "judge" not in accuracy_summary(preds["rag"])
