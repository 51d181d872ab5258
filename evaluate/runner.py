"""One experiment, in one direction: config -> corpus -> arms -> scores -> costs -> tracker."""

from __future__ import annotations

import logging
import os
import time
from dataclasses import asdict, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from costing.estimate import compare_break_even, cost_arm
from evaluate.arms import Prediction
from evaluate.config import FINETUNE_ARMS, RAG_ARMS, Config, ConfigError, cost_settings
from evaluate.costs import cost_report
from evaluate.execution import add_semantic_similarity, run_all_arms
from evaluate.redact import redact
from evaluate.results import (
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
from evaluate.tracking import NullTracker, TrackingUnavailable, flatten, make_tracker
from rag.cache import atomic_write_text, content_key, model_fingerprint

logger = logging.getLogger(__name__)


def lora_settings(config: Config):
    from finetune.lora import LoraSettings

    names = {f.name for f in fields(LoraSettings)}
    return LoraSettings(**{k: v for k, v in asdict(config.finetune).items() if k in names})


class Experiment:
    """Holds the stages' products while the arms run; each stage is cached by content."""

    def __init__(self, config: Config, output_dir: Path):
        self.config = config
        self.output_dir = output_dir
        self.cache_dir = Path(config.paths.cache_dir).expanduser()
        self.stages: dict[str, Any] = {}
        self.arms = list(config.eval.arms)

    def prepare_corpus(self) -> None:
        from evaluate.corpus_stage import load_corpus_stage
        from evaluate.execution import text_generator

        started = time.perf_counter()
        needs_lm = self.config.qa.source == "lm" or (
            self.config.finetune.paraphrases and self.config.finetune.paraphrase_method == "lm"
        )
        generate = text_generator(self.config, self.model_path) if needs_lm else None
        stage = load_corpus_stage(self.config, generate)
        self.documents, self.train_qa, self.questions = (
            stage.documents,
            stage.train_qa,
            stage.questions,
        )
        self.stages["corpus"] = {
            "name": stage.name,
            "documents": len(stage.documents),
            "train_questions": len(stage.train_qa),
            "eval_questions": len(stage.questions),
            "fingerprint": content_key(
                [d.to_dict() for d in stage.documents],
                [q.to_dict() for q in stage.train_qa + stage.questions],
            ),
            "seconds": time.perf_counter() - started,
            **stage.details,
        }
        logger.info(
            "corpus %s: %d documents, %d training QA pairs, %d eval questions",
            stage.name,
            len(stage.documents),
            len(stage.train_qa),
            len(stage.questions),
        )

    def prepare_model(self) -> None:
        from rag.models import resolve_generator, verify_model

        started = time.perf_counter()
        if self.config.generator.backend == "openai":
            self.model_path = None
            self.stages["model"] = {
                "name": self.config.generator.model,
                "backend": "openai",
                "base_url": self.config.generator.base_url,
            }
            return
        self.model_path = resolve_generator(self.config.generator.model, self.cache_dir)
        verify_model(self.model_path, "generator.model")  # a clear error, not a loader traceback
        self.stages["model"] = {
            "name": self.config.generator.model,
            "path": self.model_path,
            "fingerprint": model_fingerprint(self.model_path),
            "seconds": time.perf_counter() - started,
        }

    def meter(self, stage: str):
        """Measure a stage's energy with codecarbon when costing.energy.measure is set."""
        from contextlib import nullcontext

        energy = self.config.costing.energy
        if not energy.measure:
            return nullcontext()
        from costing.energy import EnergyMeter

        meter = EnergyMeter(
            stage, energy.country_for(self.config.costing.region), pue=self.config.costing.pue
        )
        self.stages.setdefault("energy", {})[stage] = meter
        return meter

    def prepare_retriever(self) -> None:
        from rag.chunking import chunk_corpus
        from rag.embedder import load_embedder
        from rag.retriever import build_retriever

        r = self.config.retriever
        embedder = load_embedder(r.embedder.model, r.embedder.device, r.embedder.batch_size)
        self._embedder = embedder
        tokenizer = getattr(getattr(embedder, "model", None), "tokenizer", None)
        chunks = chunk_corpus(
            self.documents,
            r.chunk_strategy,
            r.chunk_size,
            r.chunk_overlap,
            tokenizer if r.chunk_strategy != "words" else None,
        )
        with self.meter("index"):
            self.retriever = build_retriever(
                chunks,
                embedder,
                self.cache_dir,
                mode=r.mode,
                top_k=r.top_k,
                candidates=r.candidates,
                index_factory=r.index_factory,
                metric=r.metric,
                nprobe=r.nprobe,
                ef_search=r.ef_search,
                use_gpu=r.use_gpu,
                train_size=r.train_size,
                ef_construction=r.ef_construction,
                rrf_k=r.rrf_k,
                bm25_weight=r.bm25_weight,
                reranker_model=r.reranker.model,
                reranker_device=r.reranker.device,
                reranker_batch_size=r.reranker.batch_size,
                progress=self.config.eval.progress,
                lock_timeout_s=r.lock_timeout_s,
            )
        self.stages["index"] = self.retriever.stage_info()

    def prepare_adapter(self) -> None:
        from transformers import AutoTokenizer

        from finetune.data import build_examples
        from finetune.lora import train_lora

        settings = lora_settings(self.config)
        tokenizer = AutoTokenizer.from_pretrained(self.model_path)
        examples = build_examples(
            self.documents,
            self.train_qa,
            tokenizer,
            mode=settings.mode,
            max_length=settings.max_length,
        )
        with self.meter("train"):
            result = train_lora(
                self.model_path,
                examples,
                settings,
                self.cache_dir,
                progress=self.config.eval.progress,
            )
        if result.reused:
            logger.info("reusing cached adapter %s", result.adapter_dir)
        self.adapter_dir = result.adapter_dir
        self.stages["finetune"] = {**result.to_dict(), "merged": self.config.finetune.merge}

    def run_arms(self) -> dict[str, list[Prediction]]:
        e = self.config.eval
        retriever = getattr(self, "retriever", None)
        with self.meter("evaluation"):
            predictions, self.throughput = run_all_arms(
                self.config,
                self.questions,
                retriever,
                self.model_path,
                getattr(self, "adapter_dir", None),
            )
        if e.semantic_similarity:
            add_semantic_similarity(predictions, self.embedder())
        if e.judge.enabled:
            from evaluate.judge import run_judge

            run_judge(self.config, predictions)
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
        return predictions

    def embedder(self):
        """The retriever's embedder (loaded now if no RAG arm loaded it)."""
        if hasattr(self, "_embedder"):
            return self._embedder
        from rag.embedder import load_embedder

        r = self.config.retriever.embedder
        return load_embedder(r.model, r.device, r.batch_size)

    def summarise(self, predictions: dict[str, list[Prediction]]) -> dict[str, Any]:
        settings = cost_settings(self.config)
        costs = {}
        for arm, preds in predictions.items():
            one_time = {}
            if arm in RAG_ARMS:
                one_time["index"] = self.stages["index"]["build_s"]
            if arm in FINETUNE_ARMS:
                one_time["train"] = self.stages["finetune"]["wall_s"]
            costs[arm] = cost_arm(
                one_time,
                [p.request_s for p in preds],
                [p.input_tokens for p in preds],
                [p.output_tokens for p in preds],
                settings,
            )
        compare_break_even(costs)
        e = self.config.eval
        return {
            arm: {
                "accuracy": accuracy_summary(preds),
                "accuracy_ci": accuracy_intervals(preds, e.seed, e.bootstrap_resamples),
                "latency": latency_table(preds),
                "tokens": token_summary(preds),
                "throughput": self.throughput.get(arm),
                "cost": costs[arm].to_dict(),
                **evaluation_summary(preds),  # failures, failure_reasons, reused, judge usage
            }
            for arm, preds in predictions.items()
        }


def run_experiment(config: Config, resolved: dict[str, Any], output_dir: Path) -> dict[str, Any]:
    """Run every stage and arm; write results.json; mirror to the tracker. Returns the results."""
    writable_folder(output_dir, "hydra.run.dir")  # a clear error, not a traceback, before work
    writable_folder(Path(config.paths.cache_dir).expanduser(), "paths.cache_dir")
    resolved = redact(resolved)  # secrets never reach resolved_config.yaml, results.json, MLflow
    config_path = output_dir / "resolved_config.yaml"
    atomic_write_text(config_path, yaml.safe_dump(resolved, sort_keys=False))
    from finetune.lora import is_main_process

    t = config.tracking
    main_process = is_main_process()  # under accelerate/torchrun only rank 0 records anything
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
    tracker.start(
        run_name=f"{config.experiment.name}-{output_dir.name}",
        tags={
            "experiment": config.experiment.name,
            "arms": ",".join(config.eval.arms),
            "generator": config.generator.model,
            "hardware": config.hardware.name,
            "output_dir": str(output_dir.resolve()),
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
    exp = Experiment(config, output_dir)
    exp.prepare_model()
    exp.prepare_corpus()
    if RAG_ARMS & set(exp.arms) and main_process:
        exp.prepare_retriever()
    if FINETUNE_ARMS & set(exp.arms):
        exp.prepare_adapter()
    if not main_process:  # the other ranks only help train the adapter
        logger.info("rank %s: training done, the main process evaluates", os.environ["RANK"])
        return {}
    predictions = exp.run_arms()
    if "energy" in exp.stages:  # measured stages: the meters' readings (kWh or unavailable)
        exp.stages["energy"] = {k: m.result.to_dict() for k, m in exp.stages["energy"].items()}
    results = {
        "schema_version": RESULTS_SCHEMA_VERSION,
        "experiment": config.experiment.name,
        "started_utc": started_utc,
        "duration_s": time.perf_counter() - started,
        "latency_convention": LATENCY_CONVENTION,
        "config": resolved,
        "environment": environment(),
        "stages": exp.stages,
        "arms": exp.summarise(predictions),
        "costing": cost_report(config, predictions, exp.stages, exp.model_path),
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
    if tracker.run_id:
        results["mlflow_run_id"] = tracker.run_id
    write_results(results, output_dir)
    mirror_to_tracker(tracker, results, output_dir, config_path)
    return results
