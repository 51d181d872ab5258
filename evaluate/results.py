"""Aggregate predictions into per-arm figures, write results.json, mirror it to a tracker."""

from __future__ import annotations

import json
import logging
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

from evaluate.arms import Prediction
from evaluate.metrics import latency_summary, mean
from evaluate.tracking import Tracker, flatten
from rag.cache import atomic_write_text

logger = logging.getLogger(__name__)

RESULTS_SCHEMA_VERSION = 1
LATENCY_CONVENTION = (
    "e2e_s = ttft_s + tpot_s * (output_tokens - 1); ttft_s counts tokenisation and prefill; "
    "request_s = retrieval_s + e2e_s"
)


def accuracy_summary(predictions: list[Prediction]) -> dict[str, float]:
    summary = {
        "exact_match": mean([p.exact_match for p in predictions]),
        "token_f1": mean([p.token_f1 for p in predictions]),
        "contains": mean([p.contains for p in predictions]),
        "questions": float(len(predictions)),
    }
    recalls = [p.recall_at_k for p in predictions if p.recall_at_k is not None]
    if recalls:
        summary["recall_at_k"] = mean(recalls)
    return summary


def latency_table(predictions: list[Prediction]) -> dict[str, float]:
    table: dict[str, float] = {}
    table.update(latency_summary([p.ttft_s for p in predictions], "ttft"))
    table.update(latency_summary([p.tpot_s for p in predictions if p.output_tokens > 1], "tpot"))
    table.update(latency_summary([p.e2e_s for p in predictions], "e2e"))
    table.update(latency_summary([p.request_s for p in predictions], "request"))
    retrieval = [p.retrieval_embed_s + p.retrieval_search_s for p in predictions]
    if any(retrieval):
        table.update(latency_summary(retrieval, "retrieval"))
    return table


def token_summary(predictions: list[Prediction]) -> dict[str, float]:
    return {
        "input_tokens_mean": mean([p.input_tokens for p in predictions]),
        "output_tokens_mean": mean([p.output_tokens for p in predictions]),
        "input_tokens_total": float(sum(p.input_tokens for p in predictions)),
        "output_tokens_total": float(sum(p.output_tokens for p in predictions)),
    }


def environment() -> dict[str, str]:
    info = {"python": platform.python_version(), "platform": platform.platform()}
    for dist in (
        "ragtune-bench",
        "torch",
        "transformers",
        "peft",
        "sentence-transformers",
        "faiss-cpu",
        "mlflow",
        "hydra-core",
    ):
        try:
            info[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            info[dist] = "not installed"
    return info


def write_results(results: dict[str, Any], output_dir: Path) -> Path:
    """results.json is written whole or not at all (temp file + rename)."""
    path = output_dir / "results.json"
    atomic_write_text(path, json.dumps(results, indent=2, ensure_ascii=False, default=float))
    return path


def arm_metrics(results: dict[str, Any]) -> dict[str, float]:
    """Namespaced metrics: ``<arm>/exact_match``, ``latency/<arm>/ttft_p50_s``,
    ``cost/<arm>/usd_per_1k_queries`` ..."""
    metrics: dict[str, float] = {}
    for arm, figures in results["arms"].items():
        for key, value in figures["accuracy"].items():
            metrics[f"{arm}/{key}"] = value
        for key, value in figures["latency"].items():
            metrics[f"latency/{arm}/{key}"] = value
        for key, value in figures["tokens"].items():
            metrics[f"tokens/{arm}/{key}"] = value
        cost = figures["cost"]
        total = cost["one_time_total"]
        metrics[f"cost/{arm}/one_time_usd"] = total["usd"]
        metrics[f"cost/{arm}/one_time_co2_kg"] = total["co2_kg"]
        metrics[f"cost/{arm}/one_time_energy_kwh"] = total["energy_kwh"]
        metrics[f"cost/{arm}/one_time_xpu_hours"] = total["xpu_hours"]
        per_1k = cost["per_1k_queries"]
        metrics[f"cost/{arm}/usd_per_1k_queries"] = per_1k["usd"]
        metrics[f"cost/{arm}/co2_kg_per_1k_queries"] = per_1k["co2_kg"]
        metrics[f"cost/{arm}/energy_kwh_per_1k_queries"] = per_1k["energy_kwh"]
        metrics[f"cost/{arm}/xpu_hours_per_1k_queries"] = per_1k["xpu_hours"]
        metrics[f"cost/{arm}/usd_per_1m_output_tokens"] = cost["usd_per_1m_output_tokens"]
    return metrics


def mirror_to_tracker(
    tracker: Tracker, results: dict[str, Any], output_dir: Path, resolved_config_path: Path
) -> None:
    tracker.log_params(flatten(results["config"]))
    tracker.log_metrics(arm_metrics(results))
    finetune = results["stages"].get("finetune")
    if finetune:
        tracker.log_metrics(
            {
                f"train/{k}": v
                for k, v in finetune.items()
                if isinstance(v, int | float) and not isinstance(v, bool)
            }
        )
        for step, loss in finetune.get("loss_curve", []):
            tracker.log_metrics({"train/loss": loss}, step=int(step))
    tracker.log_artifact(resolved_config_path)
    tracker.log_artifact(output_dir / "results.json")
    tracker.log_table([flat_prediction(p) for p in results["predictions"]], "predictions.json")
    adapter_dir = (finetune or {}).get("adapter_dir")
    if adapter_dir and Path(adapter_dir).is_dir():
        tracker.log_artifact(Path(adapter_dir), "adapter")


def flat_prediction(row: dict[str, Any]) -> dict[str, Any]:
    """A predictions-table row with list cells joined, so the MLflow table view shows them."""
    return {k: " | ".join(map(str, v)) if isinstance(v, list) else v for k, v in row.items()}
