"""The cascade arm: escalation decisions, per-question records and timings from scripted edge and
cloud answers; token log-probs from the transformers backend checked against a separate forward
pass; configuration errors."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from evaluate.arms.answering import Prediction
from evaluate.arms.cascade import answer_support, compose
from evaluate.config.schema import ConfigError
from rag.core.types import Chunk, QAPair

pytestmark = pytest.mark.evaluate

QUESTIONS = [QAPair(f"q{i}", f"Where was person {i} born?", [f"Town {i}"], []) for i in range(3)]


def _config(*overrides: str, cache_dir: Path | None = None):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from evaluate.cli import CONF_DIR, to_config

    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = hydra_compose(
            config_name="config",
            overrides=[
                "experiment=smoke",
                f"paths.cache_dir={cache_dir or '/tmp/unused'}",
                "eval.arms=[closed_book,rag,finetune,finetune_rag,cascade]",
                *overrides,
            ],
        )
        return to_config(cfg)


def _prediction(arm, qa, text, request_s, logprob_mean=None, tokens=(10, 3), error=None):
    return Prediction(
        arm=arm,
        qa_id=qa.qa_id,
        question=qa.question,
        answers=list(qa.answers),
        prediction=text,
        exact_match=0.0,
        token_f1=0.0,
        contains=float(qa.answers[0].lower() in text.lower()),
        input_tokens=tokens[0],
        output_tokens=tokens[1],
        ttft_s=request_s / 2,
        tpot_s=0.0,
        e2e_s=request_s,
        request_s=request_s,
        logprob_mean=logprob_mean,
        logprob_min=None if logprob_mean is None else logprob_mean - 1.0,
        error=error,
    )


def _arms():
    edge = [
        _prediction("finetune", QUESTIONS[0], "Town 0", 0.3, -0.2),  # sure: kept
        _prediction("finetune", QUESTIONS[1], "Berlin", 0.4, -1.5),  # unsure: escalated
        _prediction("finetune", QUESTIONS[2], "", 0.0, None, error="boom"),  # failed: escalated
    ]
    cloud = [
        _prediction("finetune_rag", qa, f"Town {i}", 0.8, -0.1, tokens=(90, 4))
        for i, qa in enumerate(QUESTIONS)
    ]
    return {"finetune": edge, "finetune_rag": cloud}


def test_logprob_rule_escalates_unsure_and_failed_edge_answers():
    config = _config("eval.cascade.threshold=-0.5", "eval.cascade.rtt_s=0.1")
    out = compose(config, _arms(), QUESTIONS, retriever=None)
    assert [p.cascade["escalated"] for p in out] == [False, True, True]
    assert [p.prediction for p in out] == ["Town 0", "Town 1", "Town 2"]
    assert [p.contains for p in out] == [1.0, 1.0, 1.0]
    assert all(p.arm == "cascade" for p in out)
    # the wait: edge request (+ check), then round trip + cloud request when escalated
    assert [p.request_s for p in out] == pytest.approx([0.3, 0.4 + 0.1 + 0.8, 0.0 + 0.1 + 0.8])
    kept, up = out[0].cascade, out[1].cascade
    assert kept["confidence"] == -0.2 and up["confidence"] == -1.5
    assert (kept["network_s"], up["network_s"]) == (0.0, 0.1)
    assert up["edge_answer"] == "Berlin" and up["cloud_answer"] == "Town 1"
    # tokens per tier: the cloud's count only where it was asked
    assert (kept["cloud_input_tokens"], up["cloud_input_tokens"]) == (0, 90)
    assert (out[1].input_tokens, out[1].output_tokens) == (90, 4)  # the final answer's tier
    # logprob_min = mean - 1 here: -1.2 >= -1.25 kept, -2.5 escalated
    strict = compose(
        _config("eval.cascade.rule=logprob_min", "eval.cascade.threshold=-1.25"),
        _arms(),
        QUESTIONS,
        retriever=None,
    )
    assert [p.cascade["escalated"] for p in strict] == [False, True, True]


class _Retriever:
    """Returns fixed chunks and records the questions it was asked."""

    def __init__(self, texts):
        self.chunks = [Chunk(f"c{i}", f"d{i}", t, 0, len(t)) for i, t in enumerate(texts)]
        self.asked: list[str] = []

    def retrieve(self, question):
        from rag.retrieval.retriever import Retrieval

        self.asked.append(question)
        return Retrieval(self.chunks, [1.0] * len(self.chunks))


def test_retrieval_rule_measures_support_of_the_edge_answer_in_the_top_chunks():
    assert answer_support("The Town 0.", ["Person 0 was born in town 0 in 1970."]) == 1.0
    assert answer_support("Town Berlin", ["Person 0 was born in town 0."]) == 0.5
    assert answer_support("", ["anything"]) == 0.0
    retriever = _Retriever(["Person 0 was born in Town 0 in 1970.", "Person 1 left Town 5."])
    config = _config("eval.cascade.rule=retrieval", "eval.cascade.threshold=1.0")
    out = compose(config, _arms(), QUESTIONS, retriever)
    # "Town 0": both words in the chunks (1.0, kept); "Berlin": 0.0 (escalated); failed edge
    assert [p.cascade["confidence"] for p in out] == [1.0, 0.0, 0.0]
    assert [p.cascade["escalated"] for p in out] == [False, True, True]
    assert retriever.asked == [qa.question for qa in QUESTIONS]
    assert all(p.cascade["check_s"] > 0 for p in out)  # the edge's retrieval is timed


def test_transformers_log_probs_match_a_teacher_forced_forward_pass(tiny_model_dir):
    import torch

    from evaluate.backends.transformers import ChatGenerator

    generator = ChatGenerator.load(tiny_model_dir, max_new_tokens=5)
    messages = [{"role": "user", "content": "Where was person 3 born?"}]
    gen = generator.generate(messages)
    assert len(gen.token_logprobs) == gen.output_tokens
    prompt = generator._encode(messages)["input_ids"]
    with torch.inference_mode():  # generate once more to get the ids, then score them apart
        ids = generator.model.generate(
            prompt, max_new_tokens=5, do_sample=False, pad_token_id=generator.tokenizer.pad_token_id
        )
        logits = generator.model(ids).logits[0].float()
    new = ids[0, prompt.shape[1] :]
    logprobs = torch.log_softmax(logits[prompt.shape[1] - 1 : -1], dim=-1)
    expected = [float(logprobs[i, t]) for i, t in enumerate(new)]
    assert gen.token_logprobs == pytest.approx(expected, abs=1e-4)
    assert all(v <= 0 for v in gen.token_logprobs)


def test_answer_carries_mean_and_min_log_prob(tiny_model_dir):
    from evaluate.arms.answering import answer
    from evaluate.backends.transformers import ChatGenerator

    generator = ChatGenerator.load(tiny_model_dir, max_new_tokens=4)
    p = answer("closed_book", QUESTIONS[0], generator, None)
    gen = generator.generate([{"role": "user", "content": QUESTIONS[0].question}])
    assert p.logprob_min <= p.logprob_mean <= 0
    assert math.isfinite(p.logprob_mean) and gen.token_logprobs


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["eval.arms=[closed_book,rag,cascade]"], "eval.cascade.edge_arm='finetune'"),
        (["eval.cascade.rule=entropy"], "eval.cascade.rule='entropy'"),
        (["eval.cascade.cloud_arm=finetune"], "are both 'finetune'"),
        (["eval.cascade.cloud_arm=cascade"], "eval.cascade.cloud_arm='cascade'"),
        (["eval.cascade.cloud_device=l4"], "must also be listed in costing.projection"),
        (
            [
                "eval.arms=[closed_book,finetune,cascade]",
                "eval.cascade.cloud_arm=closed_book",
                "eval.cascade.rule=retrieval",
            ],
            "rule=retrieval needs the retriever",
        ),
    ],
)
def test_bad_cascade_settings_fail_at_config_time(overrides, message):
    import re

    from evaluate.config.checks import validate

    with pytest.raises(ConfigError, match=re.escape(message)):
        validate(_config(*overrides))
    # any pair of generating arms in eval.arms is a valid cascade
    validate(
        _config("eval.arms=[closed_book,finetune,cascade]", "eval.cascade.cloud_arm=closed_book")
    )


def test_endpoint_stream_log_probs_are_collected():
    import io
    import json

    from evaluate.backends.sse_stream import read_answer

    def event(payload):
        return f"data: {json.dumps(payload)}\n\n"

    def delta(text, logprob):
        content = [{"token": text, "logprob": logprob}]
        choice = {"index": 0, "delta": {"content": text}, "logprobs": {"content": content}}
        return event({"choices": [choice]})

    body = delta("Town", -0.25) + delta(" 3", -1.5)
    body += event({"choices": [], "usage": {"completion_tokens": 2, "prompt_tokens": 9}})
    body += "data: [DONE]\n\n"
    answer = read_answer(io.BytesIO(body.encode()).readline, "http://x")
    assert answer.text == "Town 3" and answer.logprobs == [-0.25, -1.5]
    # a server without log-probs: none collected, so the cascade escalates (confidence unknown)
    plain = event({"choices": [{"index": 0, "delta": {"content": "Town"}}]}) + "data: [DONE]\n\n"
    assert read_answer(io.BytesIO(plain.encode()).readline, "http://x").logprobs == []
