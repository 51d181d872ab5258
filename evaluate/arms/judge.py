"""An optional LLM judge: asks a model whether each answer matches the gold answers.

``eval.judge`` configures the judge like a generator: an alias or local folder run in-process
(transformers) or a served model behind an OpenAI-compatible endpoint. Each answered question
gets ``judge`` = 1.0 (yes), 0.0 (no) or None (a reply that says neither, or a failed request);
a failed question is 0.0 without asking. The judge's tokens and wall time are recorded on every
prediction and priced as an evaluation cost (``evaluate.pipeline.costs.evaluation_costs``).
"""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path
from typing import Any

from evaluate.arms.answering import Prediction
from evaluate.backends.base import GenerationFailure
from evaluate.config.schema import Config

logger = logging.getLogger(__name__)

JUDGE_SYSTEM_PROMPT = (
    "You grade answers to questions. Reply with one word: yes if the proposed answer means the "
    "same as one of the correct answers, no otherwise."
)
_POSITIVE = {"yes", "correct", "true", "right", "matches"}
_NEGATIVE = {"no", "incorrect", "false", "wrong", "mismatch"}
_NEGATORS = {"not", "isn", "t"}  # "not correct", "isn't right" (apostrophe splits the word)


def judge_messages(question: str, answers: list[str], prediction: str) -> list[dict[str, str]]:
    gold = "; ".join(answers)
    user = (
        f"Question: {question}\nCorrect answers: {gold}\nProposed answer: {prediction}\n"
        "Is the proposed answer correct? Answer yes or no."
    )
    return [
        {"role": "system", "content": JUDGE_SYSTEM_PROMPT},
        {"role": "user", "content": user},
    ]


def parse_verdict(text: str) -> float | None:
    """1.0 for yes, 0.0 for no, None if the reply says neither. The first verdict word counts;
    a negation right before a positive word ("not correct") makes it a no."""
    words = re.findall(r"[a-z]+", text.lower())
    for i, word in enumerate(words):
        if word in _NEGATIVE:
            return 0.0
        if word in _POSITIVE:
            return 0.0 if i and words[i - 1] in _NEGATORS else 1.0
    return None


def judge_predictions(predictions: dict[str, list[Prediction]], judge) -> None:
    """Ask ``judge`` (anything with ``generate(messages)``) about every prediction, in place."""
    for arm, preds in predictions.items():
        unparseable = 0
        for p in preds:
            if p.error is not None:
                p.judge = 0.0  # a failed question is wrong, and costs no judge tokens
                continue
            started = time.perf_counter()
            try:
                gen = judge.generate(judge_messages(p.question, p.answers, p.prediction))
            except GenerationFailure as err:
                logger.warning("judge failed on %s question %s: %s", arm, p.qa_id, err)
                p.judge, p.judge_s = None, time.perf_counter() - started
                continue
            p.judge_s = time.perf_counter() - started
            p.judge = parse_verdict(gen.text)
            p.judge_input_tokens = max(int(gen.input_tokens), 0)  # -1: server sent no usage
            p.judge_output_tokens = int(gen.output_tokens)
            unparseable += p.judge is None
        if unparseable:
            logger.warning("judge: %d of %d %s verdicts unparseable", unparseable, len(preds), arm)


def judge_usage(predictions: list[Prediction]) -> dict[str, float] | None:
    """The judge's work on one arm: requests, tokens, wall time, unparseable verdicts."""
    asked = [p for p in predictions if p.judge_s > 0]
    if not asked:
        return None
    return {
        "requests": float(len(asked)),
        "input_tokens": float(sum(p.judge_input_tokens for p in asked)),
        "output_tokens": float(sum(p.judge_output_tokens for p in asked)),
        "wall_s": float(sum(p.judge_s for p in asked)),
        "unparseable": float(sum(p.judge is None for p in asked)),
    }


def load_judge(config: Config):
    """The configured judge model (loaded in-process or an endpoint client)."""
    from evaluate.backends.registry import is_remote, make_generator

    j = config.eval.judge
    model_path = None
    if not is_remote(j.backend):
        from rag.core.models import resolve_generator

        model_path = resolve_generator(j.model, Path(config.paths.cache_dir).expanduser())
    return make_generator(j, model_path)


def run_judge(config: Config, predictions: dict[str, list[Prediction]]) -> dict[str, Any]:
    """Judge every arm's predictions when ``eval.judge.enabled``; returns the usage per arm."""
    if not config.eval.judge.enabled:
        return {}
    judge = load_judge(config)
    try:
        judge_predictions(predictions, judge)
    finally:
        if hasattr(judge, "close"):
            judge.close()
    return {arm: judge_usage(preds) for arm, preds in predictions.items()}
