"""Run the arms: build each generator once, answer every question, then the extra measurements
(batched throughput, semantic similarity) that need the generators or the embedder."""

from __future__ import annotations

import gc
import logging
from typing import Any

from evaluate.arms import ContextSettings, Prediction, messages_for, run_arm
from evaluate.config import FINETUNE_ARMS, RAG_ARMS, Config
from evaluate.metrics import semantic_similarity
from rag.retriever import Retriever
from rag.types import QAPair

logger = logging.getLogger(__name__)


def base_generator(config: Config, model_path: str | None):
    """The untuned model: in-process transformers, or an OpenAI-compatible endpoint."""
    g = config.generator
    if g.backend == "openai":
        from rag.endpoint import EndpointGenerator

        return EndpointGenerator(
            g.base_url,
            model=g.model,
            max_new_tokens=g.max_new_tokens,
            api_key_env=g.api_key_env,
            connect_timeout_s=g.connect_timeout_s,
            read_timeout_s=g.read_timeout_s,
            name=g.model,
        )
    from rag.generation import ChatGenerator

    return ChatGenerator.load(model_path, g.max_new_tokens, g.device)


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

    from finetune.lora import load_merged_model
    from rag.generation import ChatGenerator

    g = config.generator
    model = load_merged_model(model_path, adapter_dir, merge=config.finetune.merge).to(g.device)
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    return ChatGenerator(model, tokenizer, g.max_new_tokens, name="finetuned")


def context_settings(config: Config) -> ContextSettings:
    r = config.retriever
    return ContextSettings(budget_tokens=r.context_budget_tokens, ordering=r.ordering)


def measure_throughput_for(
    arm: str, generator, questions: list[QAPair], retriever: Retriever | None, config: Config
) -> dict[str, float] | None:
    """Batched generation tokens/s on the arm's own prompts (retrieval excluded)."""
    from evaluate.throughput import measure_throughput
    from rag.generation import ChatGenerator

    e = config.eval
    if e.throughput_batch_size == 0 or not isinstance(generator, ChatGenerator):
        return None
    subset = questions[: e.throughput_questions]
    messages = [
        messages_for(
            qa,
            retriever.retrieve(qa.question) if retriever else None,
            generator,
            context_settings(config),
        )[0]
        for qa in subset
    ]
    result = measure_throughput(generator, messages, e.throughput_batch_size, progress=False)
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
) -> tuple[dict[str, list[Prediction]], dict[str, Any]]:
    """Answer the questions with every configured arm; returns predictions and throughput."""
    arms = list(config.eval.arms)
    predictions: dict[str, list[Prediction]] = {}
    throughput: dict[str, Any] = {}
    groups = [
        ([a for a in arms if a not in FINETUNE_ARMS], lambda: base_generator(config, model_path)),
        (
            [a for a in arms if a in FINETUNE_ARMS],
            lambda: tuned_generator(config, model_path, adapter_dir),
        ),
    ]
    for group, make in groups:
        if not group:
            continue
        generator = make()
        try:
            for arm in group:
                arm_retriever = retriever if arm in RAG_ARMS else None
                predictions[arm] = run_arm(
                    arm,
                    questions,
                    generator,
                    arm_retriever,
                    config.eval.warmup_requests,
                    config.eval.progress,
                    context_settings(config),
                )
                throughput[arm] = measure_throughput_for(
                    arm, generator, questions, arm_retriever, config
                )
        finally:
            if hasattr(generator, "close"):
                generator.close()
            del generator
            gc.collect()
    return {arm: predictions[arm] for arm in arms}, throughput


def add_semantic_similarity(predictions: dict[str, list[Prediction]], embedder) -> None:
    """Cosine of each answer's embedding with its gold answers' (best alias), in place."""
    rows = [p for preds in predictions.values() for p in preds]
    texts = [text for p in rows for text in (p.prediction, *p.answers)]
    vectors = embedder.embed(texts)  # one batched call for every answer and gold alias
    start = 0
    for p in rows:
        end = start + 1 + len(p.answers)
        p.semantic_similarity = semantic_similarity(vectors[start], vectors[start + 1 : end])
        start = end
