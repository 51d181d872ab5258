"""Run the arms: build each generator once, answer every question, then the extra measurements
(batched throughput, semantic similarity) that need the generators or the embedder."""

from __future__ import annotations

import gc
import json
import logging
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from evaluate.arms.answering import ContextSettings, Prediction, messages_for, run_arm
from evaluate.arms.journal import AnswerJournal, journal_path
from evaluate.arms.registry import arm as arm_spec
from evaluate.arms.registry import composer, is_composite
from evaluate.backends.registry import is_remote, make_generator
from evaluate.config.schema import Config
from evaluate.scoring.metrics import semantic_similarity
from rag.core.prompts import DEFAULT_STYLE, PromptStyle
from rag.core.types import QAPair
from rag.retrieval.retriever import Retriever

logger = logging.getLogger(__name__)


def base_generator(config: Config, model_path: str | None):
    """The untuned model on the configured backend (``evaluate.backends.registry``)."""
    return make_generator(config.generator, model_path)


def text_generator(config: Config, model_path: str | None, max_new_tokens: int = 256):
    """``generate(prompt) -> (text, input_tokens, output_tokens)`` with the configured generator,
    for question synthesis and paraphrasing (its tokens are a one-time cost)."""
    import copy

    longer = copy.deepcopy(config)
    longer.generator.max_new_tokens = max_new_tokens
    generator = base_generator(longer, model_path)

    def generate(prompt: str) -> tuple[str, int, int]:
        result = generator.generate([{"role": "user", "content": prompt}])
        return result.text, result.input_tokens, result.output_tokens

    return generate


def tuned_generator(config: Config, model_path: str, adapter_dir: str):
    """The base model with the LoRA adapter, merged unless ``finetune.merge=false``."""
    from transformers import AutoTokenizer

    from evaluate.backends.transformers import ChatGenerator
    from finetune.lora import load_merged_model

    g = config.generator
    model = load_merged_model(model_path, adapter_dir, merge=config.finetune.merge).to(g.device)
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    return ChatGenerator(
        model,
        tokenizer,
        g.max_new_tokens,
        name="finetuned",
        context_window=g.context_window,
        temperature=g.temperature,
        stop=list(g.stop),
    )


def context_settings(config: Config, style: PromptStyle = DEFAULT_STYLE) -> ContextSettings:
    r = config.retriever
    return ContextSettings(budget_tokens=r.context_budget_tokens, ordering=r.ordering, style=style)


def measure_throughput_for(
    arm: str,
    generator,
    questions: list[QAPair],
    retriever: Retriever | None,
    config: Config,
    context: ContextSettings,
    warm: bool = False,
) -> dict[str, float] | None:
    """Batched generation tokens/s on the arm's own prompts (retrieval excluded). A ``warm``
    generator (it has just answered this arm's questions, batched) is timed without a further
    untimed warm-up batch: its one-off allocation and kernel selection are behind it."""
    from evaluate.arms.throughput import measure_throughput
    from evaluate.backends.transformers import ChatGenerator

    e = config.eval
    if e.throughput_batch_size == 0 or not isinstance(generator, ChatGenerator):
        return None
    subset = questions[: e.throughput_questions]
    messages = [
        messages_for(
            qa,
            retriever.retrieve(qa.question) if retriever else None,
            generator,
            context,
        )[0]
        for qa in subset
    ]
    window = generator.context_window or float("inf")
    # prompts over the context window are failed questions, not throughput samples
    messages = [
        m for m in messages if generator.prompt_tokens(m) + generator.max_new_tokens <= window
    ]
    if not messages:
        return None
    result = measure_throughput(
        generator, messages, e.throughput_batch_size, warmup_batches=0 if warm else 1
    )
    logger.info(
        "arm %-12s batched throughput %.1f tokens/s (batch %d)",
        arm,
        result["tokens_per_s"],
        e.throughput_batch_size,
    )
    return {k: float(v) for k, v in result.items()}


def run_all_arms(
    config: Config,
    questions: list[QAPair],
    retriever: Retriever | None,
    model_path: str | None,
    adapter_dir: str | None,
    oracle=None,
    style: PromptStyle = DEFAULT_STYLE,
    seconds: dict[str, float] | None = None,
) -> tuple[dict[str, list[Prediction]], dict[str, Any]]:
    """Answer the questions with every configured arm; returns predictions and throughput.
    ``oracle`` (a ``rag.retrieval.oracle.OracleRetriever``) serves the oracle-context arm;
    ``style`` is the prompt's instruction and few-shot examples. Composite arms (the cascade)
    are composed afterwards from these arms' answers. ``seconds``, when given, receives the
    measured wall time of each part: ``base_model_load`` / ``tuned_model_load`` (loading and,
    for the tuned arms, merging the adapter) and per arm ``<arm>/answers`` (warm-up, latency
    sample and batched answers, model load excluded) and ``<arm>/throughput``."""
    seconds = {} if seconds is None else seconds
    arms = [a for a in config.eval.arms if not is_composite(a)]
    context = context_settings(config, style)
    predictions: dict[str, list[Prediction]] = {}
    throughput: dict[str, Any] = {}
    groups = [
        (
            "base_model_load",
            [a for a in arms if not arm_spec(a).tuned],
            lambda: base_generator(config, model_path),
        ),
        (
            "tuned_model_load",
            [a for a in arms if arm_spec(a).tuned],
            lambda: tuned_generator(config, model_path, adapter_dir),
        ),
    ]
    for load_key, group, make in groups:
        if not group:
            continue
        # not loaded when every answer is in the journal
        generator = _LazyGenerator(_timed(make, seconds, load_key))
        try:
            for arm in group:
                arm_retriever = retriever if arm_spec(arm).retrieves else None
                if arm_spec(arm).oracle:
                    arm_retriever = oracle
                journal = answer_journal(
                    config, arm, arm_retriever, model_path, adapter_dir, context
                )
                started, loaded_s = time.perf_counter(), seconds.get(load_key, 0.0)
                batches: list[dict] = []
                predictions[arm] = run_arm(
                    arm,
                    questions,
                    generator,
                    arm_retriever,
                    config.eval.warmup_requests,
                    config.eval.progress,
                    context,
                    config.eval.max_failure_rate,
                    journal,
                    _answer_batch_size(config),
                    config.eval.latency_questions,
                    config.eval.compare_batched,
                    batches,
                )
                load_s = seconds.get(load_key, 0.0) - loaded_s  # the model, if loaded here
                seconds[f"{arm}/answers"] = time.perf_counter() - started - load_s
                started, loaded_s = time.perf_counter(), seconds.get(load_key, 0.0)
                throughput[arm] = (
                    journaled_throughput(
                        arm, generator, questions, arm_retriever, config, journal, context, batches
                    )
                    if config.eval.throughput_batch_size
                    else None
                )
                load_s = seconds.get(load_key, 0.0) - loaded_s
                seconds[f"{arm}/throughput"] = time.perf_counter() - started - load_s
        finally:
            generator.close()
            del generator
            gc.collect()
    for arm in config.eval.arms:  # composite arms combine the answers above; nothing generates
        if is_composite(arm):
            predictions[arm] = composer(arm).compose(config, predictions, questions, retriever)
            throughput[arm] = None
    return {arm: predictions[arm] for arm in config.eval.arms}, throughput


def journaled_throughput(
    arm: str,
    generator: _LazyGenerator,
    questions: list[QAPair],
    retriever: Retriever | None,
    config: Config,
    journal: AnswerJournal,
    context: ContextSettings,
    batches: list[dict] | None = None,
) -> dict[str, float] | None:
    """The arm's batched throughput, kept beside its answer journal: an identical re-run
    (``eval.reuse_answers``) reuses the measurement instead of loading the model for it.
    When the arm's accuracy pass just answered full batches of ``eval.throughput_batch_size``
    (``batches``, its log), the rate is read off them (``source: answer_batches``) instead of
    generating again; otherwise ``eval.throughput_questions`` are answered for it
    (``source: separate``)."""
    from evaluate.arms.throughput import throughput_of_batches
    from rag.core.cache import atomic_write_text, content_key

    e = config.eval
    subset = [q.qa_id for q in questions[: e.throughput_questions]]
    key = content_key(e.throughput_batch_size, subset)
    path = journal.path.with_name(f"{journal.path.stem}.throughput-{key}.json")
    if e.reuse_answers and path.is_file():
        try:
            cached = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            logger.warning("%s is unreadable; measuring throughput again", path)
        else:
            logger.info("arm %-12s reusing the batched throughput measured before", arm)
            return cached
    result = throughput_of_batches(batches or [], e.throughput_batch_size)
    if result is not None:
        result["source"] = "answer_batches"
        logger.info(
            "arm %-12s batched throughput %.1f tokens/s (batch %d, from the accuracy batches)",
            arm,
            result["tokens_per_s"],
            e.throughput_batch_size,
        )
    else:
        warm = generator.warm  # it answered this arm's questions in this process
        result = measure_throughput_for(
            arm, generator.get(), questions, retriever, config, context, warm=warm
        )
        if result is not None:
            result["source"] = "separate"
    if result is not None:
        atomic_write_text(path, json.dumps(result))
    return result


def _answer_batch_size(config: Config) -> int:
    """Batched answers are greedy and stop at EOS only: sampling (generator.temperature > 0)
    or stop strings answer one question at a time."""
    g = config.generator
    if g.temperature or g.stop:
        return 1
    return config.eval.answer_batch_size


def _timed(make, seconds: dict[str, float], key: str):
    """``make`` that adds its wall time to ``seconds[key]``."""

    def timed():
        started = time.perf_counter()
        try:
            return make()
        finally:
            seconds[key] = seconds.get(key, 0.0) + time.perf_counter() - started

    return timed


class _LazyGenerator:
    """Builds the generator on first use, so a fully journaled arm loads no model."""

    def __init__(self, make):
        self._make, self._generator = make, None

    def get(self):
        if self._generator is None:
            self._generator = self._make()
        return self._generator

    @property
    def warm(self) -> bool:
        """Built and used already (a fresh build has run nothing yet)."""
        return self._generator is not None

    def __getattr__(self, name: str):  # generate, prompt_tokens, tokenizer, max_new_tokens ...
        return getattr(self.get(), name)

    def close(self) -> None:
        if self._generator is not None and hasattr(self._generator, "close"):
            self._generator.close()
        self._generator = None


def answer_identity(
    config: Config,
    arm: str,
    retriever: Retriever | None,
    model_path: str | None,
    adapter_dir: str | None,
    context: ContextSettings | None = None,
) -> dict[str, Any]:
    """Everything that determines an arm's answer to a question, except the question."""
    context = context or context_settings(config)
    from rag.core.cache import model_fingerprint

    g = config.generator
    if is_remote(g.backend):
        model = {"endpoint": g.base_url, "served_model": g.model}
    else:
        model = {"fingerprint": model_fingerprint(model_path), "device": g.device}
    if arm_spec(arm).tuned:  # the adapter folder is named by the hash of its inputs
        model["adapter"] = Path(adapter_dir).name if adapter_dir else None
        model["merged"] = config.finetune.merge
    identity: dict[str, Any] = {
        "arm": arm,
        "backend": g.backend,
        "model": model,
        "decoding": {
            "greedy": g.temperature == 0,
            "max_new_tokens": g.max_new_tokens,
            **({"temperature": g.temperature} if g.temperature else {}),
            **({"stop": list(g.stop)} if g.stop else {}),
            # batched answers may differ from batch-1 ones (numerical noise of padded batches);
            # eval.latency_questions is not here: a journaled answer without batch-1 timings
            # that falls in a larger sample is answered again, timed (answering.py)
            "answer_batch_size": config.eval.answer_batch_size,
        },
        "context_window": g.context_window,
        "prompt": _prompt_fingerprint(),
    }
    if context.style != DEFAULT_STYLE:  # the default prompt keeps the keys journals had
        identity["prompt_style"] = asdict(context.style)
    if retriever is not None:
        info = retriever.stage_info()
        identity["retriever"] = {
            k: v
            for k, v in info.items()
            if not k.endswith("_s") and "reused" not in k and k != "path"
        }
        identity["context"] = {k: v for k, v in asdict(context).items() if k != "style"}
    return identity


def _prompt_fingerprint() -> str:
    """The prompt wording and context layout: the source of the modules that write prompts."""
    import rag.core.prompts
    import rag.retrieval.context
    from rag.core.cache import content_key

    return content_key(
        *(Path(m.__file__).read_text() for m in (rag.core.prompts, rag.retrieval.context))
    )


def answer_journal(
    config: Config,
    arm: str,
    retriever: Retriever | None,
    model_path: str | None,
    adapter_dir: str | None,
    context: ContextSettings | None = None,
) -> AnswerJournal:
    identity = answer_identity(config, arm, retriever, model_path, adapter_dir, context)
    path = journal_path(Path(config.paths.cache_dir).expanduser(), identity)
    return AnswerJournal(path, read=config.eval.reuse_answers)


def add_semantic_similarity(predictions: dict[str, list[Prediction]], embedder) -> None:
    """Cosine of each answer's embedding with its gold answers' (best alias), in place."""
    rows = [p for preds in predictions.values() for p in preds]
    texts = [text for p in rows for text in (p.prediction, *p.answers)]
    vectors = embedder.embed(texts)  # one batched call for every answer and gold alias
    start = 0
    for p in rows:
        end = start + 1 + len(p.answers)
        p.semantic_similarity = semantic_similarity(vectors[start], vectors[start + 1 : end])
        if p.error is not None:  # a failed question scores 0 on every metric
            p.semantic_similarity = 0.0
        start = end
