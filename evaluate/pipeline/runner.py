"""One experiment, in one direction: config -> corpus -> index / adapter -> arms -> scores ->
costs -> records. Each stage returns a typed record (evaluate/pipeline/stages.py)."""

from __future__ import annotations

import logging
import os
import time
from contextlib import nullcontext
from dataclasses import asdict, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from evaluate.arms.answering import Prediction
from evaluate.arms.execution import add_semantic_similarity, run_all_arms
from evaluate.arms.registry import any_retrieves, any_tuned, composer
from evaluate.arms.registry import arm as arm_spec
from evaluate.backends.registry import is_remote
from evaluate.config.schema import Config, ConfigError
from evaluate.pipeline.costs import cost_report
from evaluate.pipeline.stages import AdapterStage, CorpusStage, IndexStage, ModelStage, Stages
from evaluate.records.redact import redact
from evaluate.records.results import (
    LATENCY_CONVENTION,
    RESULTS_SCHEMA_VERSION,
    accuracy_intervals,
    accuracy_summary,
    comparisons,
    environment,
    evaluation_summary,
    latency_table,
    mirror_to_tracker,
    token_summary,
    write_results,
)
from evaluate.records.tracking import NullTracker, TrackingUnavailable, flatten, make_tracker
from evaluate.scoring.diagnosis import decompose
from rag.core.cache import atomic_write_text, model_fingerprint
from rag.core.lock import claim
from rag.core.prompts import DEFAULT_STYLE, PromptStyle

logger = logging.getLogger(__name__)
RUN_LOCK_FILE = ".ragtune.lock"  # held by the run writing into the folder


def lora_settings(config: Config):
    from finetune.settings import LoraSettings

    names = {f.name for f in fields(LoraSettings)}
    return LoraSettings(**{k: v for k, v in asdict(config.finetune).items() if k in names})


def cache_dir(config: Config) -> Path:
    return Path(config.paths.cache_dir).expanduser()


def prepare_model(config: Config) -> ModelStage:
    """The base generator: resolved to a verified local folder, or named on its endpoint."""
    from rag.core.models import resolve_generator, verify_model

    g = config.generator
    if is_remote(g.backend):
        return ModelStage(name=g.model, backend=g.backend, base_url=g.base_url)
    started = time.perf_counter()
    path = resolve_generator(g.model, cache_dir(config))
    verify_model(path, "generator.model")  # a clear error, not a loader traceback
    return ModelStage(
        name=g.model,
        backend=g.backend,
        path=path,
        fingerprint=model_fingerprint(path),
        seconds=time.perf_counter() - started,
    )


def prepare_corpus(config: Config, model: ModelStage) -> CorpusStage:
    """Documents and the question split; a language model writes questions or paraphrases
    only when the config asks for it."""
    from evaluate.arms.execution import text_generator
    from evaluate.pipeline.corpus import load_corpus_stage

    f = config.finetune
    needs_lm = config.qa.source == "lm" or (f.paraphrases and f.paraphrase_method == "lm")
    generate = text_generator(config, model.path) if needs_lm else None
    stage = load_corpus_stage(config, generate)
    logger.info(
        "corpus %s: %d documents, %d training QA pairs, %d eval questions",
        stage.name,
        len(stage.documents),
        len(stage.train_qa),
        len(stage.questions),
    )
    return stage


def energy_meter(config: Config, stage: str, stages: Stages):
    """Measure a stage's energy with codecarbon when costing.energy.measure is set."""
    energy = config.costing.energy
    if not energy.measure:
        return nullcontext()
    from costing.energy import EnergyMeter

    meter = EnergyMeter(stage, energy.country_for(config.costing.region), pue=config.costing.pue)
    stages.energy[stage] = meter
    return meter


def load_embedder(config: Config):
    from rag.retrieval.embedder import load_embedder as load

    e = config.retriever.embedder
    return load(e.model, e.device, e.batch_size, e.processes)


def prepare_index(config: Config, corpus: CorpusStage, stages: Stages) -> IndexStage:
    """Chunks, embeddings and the FAISS index (and BM25, a re-ranker) for the RAG arms."""
    from rag.corpus.chunking import chunk_corpus
    from rag.retrieval.retriever import build_retriever

    r = config.retriever
    embedder = load_embedder(config)
    tokenizer = getattr(getattr(embedder, "model", None), "tokenizer", None)
    chunks = chunk_corpus(
        corpus.documents,
        r.chunk_strategy,
        r.chunk_size,
        r.chunk_overlap,
        tokenizer if r.chunk_strategy != "words" else None,
    )
    check_retrieval_depth(config, stages.model, chunks)  # before embedding or training
    with energy_meter(config, "index", stages):
        retriever = build_retriever(
            chunks, embedder, cache_dir(config), r, progress=config.eval.progress
        )
    return IndexStage(retriever, embedder, retriever.stage_info())


def check_retrieval_depth(config: Config, model: ModelStage, chunks) -> None:
    """``retriever.top_k`` against the chunk count and, for an in-process generator, its
    context window (``rag.retrieval.context.check_top_k``)."""
    from rag.retrieval.context import check_top_k

    r, g = config.retriever, config.generator
    tokenizer = window = None
    if model.path is not None:
        from transformers import AutoTokenizer

        from finetune.preflight import model_max_positions

        tokenizer = AutoTokenizer.from_pretrained(model.path)
        windows = [w for w in (model_max_positions(model.path), g.context_window) if w]
        window = min(windows, default=None)
    check_top_k(
        r.top_k,
        chunks,
        f"retriever.chunk_strategy={r.chunk_strategy}, retriever.chunk_size={r.chunk_size}",
        tokenizer,
        window,
        g.max_new_tokens,
        r.context_budget_tokens,
    )


def prepare_adapter(
    config: Config, model: ModelStage, corpus: CorpusStage, stages: Stages
) -> AdapterStage:
    """The LoRA adapter of the tuned arms, trained on the corpus (or reused from the cache)."""
    from transformers import AutoTokenizer

    from finetune.data import build_examples
    from finetune.lora import train_lora

    settings = lora_settings(config)
    tokenizer = AutoTokenizer.from_pretrained(model.path)
    examples = build_examples(
        corpus.documents,
        corpus.train_qa,
        tokenizer,
        mode=settings.mode,
        max_length=settings.max_length,
    )
    with energy_meter(config, "train", stages):
        result = train_lora(
            model.path, examples, settings, cache_dir(config), progress=config.eval.progress
        )
    return AdapterStage(result, merged=config.finetune.merge)


def answer(config: Config, stages: Stages) -> tuple[dict[str, list[Prediction]], dict[str, Any]]:
    """Every arm answers the held-out questions; then the measurements that need answers."""
    index, adapter = stages.index, stages.adapter
    with energy_meter(config, "evaluation", stages):
        predictions, throughput = run_all_arms(
            config,
            stages.corpus.questions,
            index.retriever if index else None,
            stages.model.path,
            adapter.result.adapter_dir if adapter else None,
            oracle_retriever(config, stages),
            prompt_style(config, stages.corpus),
            stages.answering_s,
        )
    e = config.eval
    if e.semantic_similarity:
        started = time.perf_counter()
        add_semantic_similarity(predictions, index.embedder if index else load_embedder(config))
        stages.answering_s["semantic_similarity"] = time.perf_counter() - started
    if e.judge.enabled:
        from evaluate.arms.judge import run_judge

        started = time.perf_counter()
        run_judge(config, predictions)
        stages.answering_s["judge"] = time.perf_counter() - started
    cap = config.generator.max_new_tokens
    for arm, preds in predictions.items():
        summary = accuracy_summary(preds)
        failed = sum(p.error is not None for p in preds)
        logger.info(
            "arm %-12s exact match %.3f  contains %.3f  failed %d of %d",
            arm,
            summary["exact_match"],
            summary["contains"],
            failed,
            len(preds),
        )
        capped = answers_at_token_cap(preds, cap)
        if capped:  # a cut-off answer scores 0 on exact match and may miss the answer
            logger.warning(
                "arm %s: %d of %d answers stopped at generator.max_new_tokens=%d and may be cut "
                "short; raise it if answers look truncated",
                arm,
                capped,
                len(preds),
                cap,
            )
    return predictions, throughput


def prompt_style(config: Config, corpus: CorpusStage) -> PromptStyle:
    """The instruction and ``eval.few_shot`` worked examples, drawn from the training questions
    (never the evaluation ones), spread over fact groups, the same in every run."""
    from rag.qa.sets import sample_questions

    e = config.eval
    chosen = sample_questions(corpus.train_qa, e.few_shot, e.seed) if e.few_shot else []
    if len(chosen) < e.few_shot:
        logger.warning(
            "eval.few_shot=%d but only %d training questions exist", e.few_shot, len(chosen)
        )
    return PromptStyle(
        instruction=e.instruction or DEFAULT_STYLE.instruction,
        shots=tuple((qa.question, qa.answers[0]) for qa in chosen),
    )


def oracle_retriever(config: Config, stages: Stages):
    """The gold-passage retriever of the oracle-context arm, when that arm runs."""
    if not any(arm_spec(a).oracle for a in config.eval.arms) or stages.index is None:
        return None
    from rag.retrieval.oracle import OracleRetriever

    index, questions = stages.index, stages.corpus.questions
    oracle = OracleRetriever(
        index.retriever.chunks, index.embedder, questions, config.retriever.top_k
    )
    if oracle.without_gold:
        logger.warning(
            "oracle_context: %d of %d questions name no document of the corpus; they are "
            "answered without context",
            oracle.without_gold,
            len(questions),
        )
    return oracle


def answers_at_token_cap(predictions: list[Prediction], max_new_tokens: int) -> int:
    """Answered questions whose answer used every allowed new token (maybe cut short)."""
    return sum(p.error is None and p.output_tokens >= max_new_tokens for p in predictions)


def summarise(
    config: Config,
    predictions: dict[str, list[Prediction]],
    throughput: dict[str, Any],
    report: dict[str, Any] | None,
) -> dict[str, Any]:
    """Per-arm figures; ``cost`` is the arm's ledger from the cost report (the one cost path),
    None when the report could not be made."""
    ledgers = (report or {}).pop("arms", {})
    e = config.eval
    arms = {
        arm: {
            "accuracy": accuracy_summary(preds),
            "accuracy_ci": accuracy_intervals(preds, e.seed, e.bootstrap_resamples),
            "latency": latency_table(preds),
            "tokens": token_summary(preds),
            "throughput": throughput.get(arm),
            "cost": ledgers.get(arm),
            "answers_at_token_cap": answers_at_token_cap(preds, config.generator.max_new_tokens),
            **evaluation_summary(preds),  # failures, failure_reasons, reused, judge usage
        }
        for arm, preds in predictions.items()
    }
    for arm, preds in predictions.items():  # a composite arm's own figures (the cascade's sweep)
        module = composer(arm)
        if module is not None and hasattr(module, "summary"):
            arms[arm][arm] = module.summary(config, preds, {**(report or {}), "arms": ledgers})
    return arms


def run_experiment(config: Config, resolved: dict[str, Any], output_dir: Path) -> dict[str, Any]:
    """Run every stage and arm; write results.json; mirror to the tracker. Returns the results."""
    writable_folder(output_dir, "hydra.run.dir")  # a clear error, not a traceback, before work
    writable_folder(Path(config.paths.cache_dir).expanduser(), "paths.cache_dir")
    from finetune.lora import is_main_process

    main_process = is_main_process()  # under accelerate/torchrun only rank 0 records anything

    def in_use() -> ConfigError:
        return ConfigError(
            f"hydra.run.dir={str(output_dir)!r} is in use by another running ragtune; wait for "
            "it to finish or choose another folder"
        )

    # One run writes into a folder at a time (the default folder names are unique anyway).
    with claim(output_dir / RUN_LOCK_FILE, in_use) if main_process else nullcontext():
        return _run_in_folder(config, resolved, output_dir, main_process)


def _run_in_folder(
    config: Config, resolved: dict[str, Any], output_dir: Path, main_process: bool
) -> dict[str, Any]:
    resolved = redact(resolved)  # secrets never reach resolved_config.yaml, results.json, MLflow
    config_path = output_dir / "resolved_config.yaml"
    atomic_write_text(config_path, yaml.safe_dump(resolved, sort_keys=False))
    t = config.tracking
    backend = t.backend if main_process else "none"
    tracker = make_tracker(backend, t.uri, t.experiment_name, t.artifact_dir)
    started_utc = datetime.now(UTC).isoformat(timespec="seconds")
    try:
        start_tracker(tracker, config, output_dir)
    except TrackingUnavailable as err:  # still run and write results.json; fail at the end
        logger.error("%s", err)
        unreachable, tracker = err, NullTracker()
    else:
        unreachable = None
    started = time.perf_counter()
    try:
        tracker.log_params(flatten(resolved))  # at the start: a failed run shows its config too
        results = run_stages(
            config, resolved, output_dir, tracker, main_process, started, started_utc, config_path
        )
    except BaseException as err:
        tracker.finish(ok=False, error=f"{type(err).__name__}: {err}")
        raise
    tracker.finish(ok=True)
    if unreachable is not None:
        raise unreachable  # results.json is written; the MLflow mirror is missing
    if results:
        logger.info("results: %s", output_dir / "results.json")
    return results


def writable_folder(path: Path, key: str) -> None:
    """Create ``path`` and write a scratch file in it, or raise a ConfigError naming ``key``."""
    import tempfile

    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as err:
        raise ConfigError(
            f"{key}={str(path)!r} is not a writable folder ({err.strerror or err}); choose "
            "another folder or fix its permissions"
        ) from None


def start_tracker(tracker, config: Config, output_dir: Path) -> None:
    from evaluate.records.launcher_env import launcher_tags

    tracker.start(
        run_name=f"{config.experiment.name}-{output_dir.name}",
        tags={
            "experiment": config.experiment.name,
            "arms": ",".join(config.eval.arms),
            "generator": config.generator.model,
            "hardware": config.hardware.name,
            "output_dir": str(output_dir.resolve()),
            **launcher_tags(),  # SLURM / Ray job ids: a failed job is named by its parent
            **config.tracking.tags,
        },
    )


def run_stages(
    config: Config,
    resolved: dict[str, Any],
    output_dir: Path,
    tracker,
    main_process: bool,
    started: float,
    started_utc: str,
    config_path: Path,
) -> dict[str, Any]:
    """Every stage and arm; writes results.json and mirrors it. {} on non-main ranks."""
    arms = list(config.eval.arms)
    stages = Stages(model=prepare_model(config))
    stages.corpus = prepare_corpus(config, stages.model)
    if any_retrieves(arms) and main_process:
        stages.index = prepare_index(config, stages.corpus, stages)
    if any_tuned(arms):
        stages.adapter = prepare_adapter(config, stages.model, stages.corpus, stages)
    if not main_process:  # the other ranks only help train the adapter
        logger.info("rank %s: training done, the main process evaluates", os.environ["RANK"])
        return {}
    predictions, throughput = answer(config, stages)
    report = cost_report(config, predictions, stages)
    results = {
        "schema_version": RESULTS_SCHEMA_VERSION,
        "experiment": config.experiment.name,
        "started_utc": started_utc,
        "duration_s": time.perf_counter() - started,
        "latency_convention": LATENCY_CONVENTION,
        "config": resolved,
        "environment": environment(),
        "stages": stages.to_dict(),
        "arms": summarise(config, predictions, throughput, report),
        "costing": report,
        "comparisons": comparisons(
            predictions,
            config.eval.seed,
            config.eval.bootstrap_resamples,
            config.eval.alpha,
            config.eval.multiple_comparisons,
            config.eval.significance_metric,
        ),
        "predictions": [p.to_dict() for preds in predictions.values() for p in preds],
    }
    diagnosis = decompose(results["arms"], config.eval.significance_metric)
    if diagnosis is not None:
        results["diagnosis"] = diagnosis
        logger.info("diagnosis: %s", diagnosis["sentence"])
    if tracker.run_id:
        results["mlflow_run_id"] = tracker.run_id
        results["mlflow_experiment_id"] = tracker.experiment_id
    write_results(results, output_dir)
    mirror_to_tracker(tracker, results, output_dir, config_path)
    return results
