"""Aggregate predictions into per-arm figures, write results.json, mirror it to a tracker."""

from __future__ import annotations

import json
import logging
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

from evaluate.arms.answering import Prediction
from evaluate.records.tracking import Tracker
from evaluate.scoring.metrics import latency_summary, mean
from evaluate.scoring.stats import compare_arms, summarise_with_ci
from rag.core.cache import atomic_write_text

logger = logging.getLogger(__name__)

RESULTS_SCHEMA_VERSION = 1
LATENCY_CONVENTION = (
    "e2e_s = ttft_s + tpot_s * (output_tokens - 1); ttft_s counts tokenisation and prefill; "
    "request_s = retrieval_s + e2e_s"
)


def per_question_scores(predictions: list[Prediction]) -> dict[str, list[float]]:
    """Every accuracy metric's per-question values (metrics an arm lacks are left out)."""
    scores = {
        name: [float(getattr(p, name)) for p in predictions]
        for name in ("exact_match", "token_f1", "contains", "rouge_l")
    }
    for name in (
        "semantic_similarity",
        "judge",
        "recall_at_k",
        "hit_rate_at_k",
        "mrr",
        "ndcg_at_k",
    ):
        # retrieval metrics are undefined for questions without supporting documents
        values = [float(v) for v in (getattr(p, name) for p in predictions) if v is not None]
        if values:
            scores[name] = values
    return scores


def accuracy_summary(predictions: list[Prediction]) -> dict[str, float]:
    summary = {name: mean(values) for name, values in per_question_scores(predictions).items()}
    summary["questions"] = float(len(predictions))
    scored = sum(p.recall_at_k is not None for p in predictions)
    if scored:  # retrieval metrics are means over the questions that name their documents
        summary["retrieval_questions_scored"] = float(scored)
    return summary


def accuracy_intervals(predictions: list[Prediction], seed: int, resamples: int) -> dict:
    """95% bootstrap interval of every accuracy metric: {metric: {mean, ci95_low, ci95_high}}."""
    return {
        name: summarise_with_ci(values, seed=seed, resamples=resamples)
        for name, values in per_question_scores(predictions).items()
    }


def comparisons(
    predictions: dict[str, list[Prediction]],
    seed: int,
    resamples: int,
    alpha: float,
    correction: str,
    metric: str = "contains",
) -> dict[str, Any]:
    """Paired comparisons of every pair of arms on the same questions (see
    evaluate/scoring/stats.py):
    the mean difference of the per-question ``metric`` with a paired bootstrap interval, and
    McNemar's exact test on it as correctness (``metric`` is 0/1 per question)."""
    if len(predictions) < 2:
        return {}
    pairs = compare_arms(
        per_question={
            arm: [getattr(p, metric) for p in preds] for arm, preds in predictions.items()
        },
        correct={
            arm: [getattr(p, metric) == 1.0 for p in preds] for arm, preds in predictions.items()
        },
        alpha=alpha,
        seed=seed,
        resamples=resamples,
        correction=correction,
    )
    return {
        "score": metric,
        "correct": metric,
        "alpha": alpha,
        "correction": correction,
        "pairs": pairs,
    }


def evaluation_summary(predictions: list[Prediction]) -> dict[str, Any]:
    """Failed questions (count and {reason: count}), journal reuse and the judge's usage."""
    from collections import Counter

    from evaluate.arms.judge import judge_usage

    reasons = Counter(p.failure_reason or "unknown" for p in predictions if p.error is not None)
    return {
        "failures": sum(reasons.values()),
        "failure_reasons": dict(reasons.most_common()),
        "reused_answers": sum(p.reused for p in predictions),
        "judge": judge_usage(predictions),
    }


def latency_table(predictions: list[Prediction]) -> dict[str, float]:
    """Latency percentiles over the answered questions (failed ones have no timings)."""
    predictions = [p for p in predictions if p.error is None]
    table: dict[str, float] = {}
    if not predictions:
        return table
    table.update(latency_summary([p.ttft_s for p in predictions], "ttft"))
    table.update(latency_summary([p.tpot_s for p in predictions if p.output_tokens > 1], "tpot"))
    table.update(latency_summary([p.e2e_s for p in predictions], "e2e"))
    table.update(latency_summary([p.request_s for p in predictions], "request"))
    retrieval = [
        p.retrieval_embed_s + p.retrieval_search_s + p.retrieval_rerank_s for p in predictions
    ]
    if any(retrieval):
        table.update(latency_summary(retrieval, "retrieval"))
    for stage in (
        "retrieval_embed",
        "retrieval_dense_search",
        "retrieval_bm25_search",
        "retrieval_fusion",
        "retrieval_rerank",
        "prompt_build",
    ):
        values = [getattr(p, f"{stage}_s") for p in predictions]
        if any(values):
            table.update(latency_summary(values, stage.removeprefix("retrieval_")))
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
        "bm25s",
        "mlflow",
        "hydra-core",
    ):
        try:
            info[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            info[dist] = "not installed"
    return info


def git_state(repo_dir: Path | None = None) -> dict[str, str]:
    """The source checkout's commit and whether it has uncommitted changes (if it is one)."""
    import subprocess

    repo_dir = repo_dir or Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=repo_dir,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain"],
            cwd=repo_dir,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return {"git_commit": "unknown", "git_dirty": "unknown"}
    return {"git_commit": commit, "git_dirty": str(bool(dirty.strip())).lower()}


def run_tags(results: dict[str, Any]) -> dict[str, str]:
    """Tags that make runs comparable at a glance in the MLflow UI."""
    tags = {f"version/{k}": v for k, v in results["environment"].items()}
    tags["corpus_fingerprint"] = results["stages"]["corpus"]["fingerprint"]
    tags["corpus"] = results["stages"]["corpus"]["name"]
    tags.update(git_state())
    return tags


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
        if "failures" in figures:
            metrics[f"{arm}/failures"] = float(figures["failures"])
            metrics[f"{arm}/reused_answers"] = float(figures["reused_answers"])
        if "answers_at_token_cap" in figures:
            metrics[f"{arm}/answers_at_token_cap"] = float(figures["answers_at_token_cap"])
        for key, value in (figures.get("judge") or {}).items():
            metrics[f"judge/{arm}/{key}"] = value
        judge_cost = ((results.get("costing") or {}).get("evaluation") or {}).get(arm)
        if judge_cost:
            metrics[f"cost/{arm}/judge_usd"] = judge_cost["cost"]["usd"]
        for key, interval in figures.get("accuracy_ci", {}).items():
            metrics[f"{arm}/{key}_ci95_low"] = interval["ci95_low"]
            metrics[f"{arm}/{key}_ci95_high"] = interval["ci95_high"]
        for key, value in (figures.get("throughput") or {}).items():
            metrics[f"throughput/{arm}/{key}"] = value
        for key, value in figures["latency"].items():
            metrics[f"latency/{arm}/{key}"] = value
        for key, value in figures["tokens"].items():
            metrics[f"tokens/{arm}/{key}"] = value
        metrics.update(_cost_metrics(arm, figures.get("cost")))
        if figures.get("cascade"):  # the cascade's escalation and threshold sweep
            from evaluate.arms.cascade import sweep_metrics

            metrics.update(sweep_metrics(arm, figures["cascade"]))
    metrics.update(cost_report_metrics(results.get("costing")))
    corpus = results["stages"]["corpus"]
    for key in ("documents", "train_questions", "eval_questions"):
        metrics[f"corpus/{key}"] = corpus[key]
    if "leakage" in corpus:
        metrics["corpus/leakage_overlap"] = corpus["leakage"]["overlap_count"]
    if "ingest" in corpus:
        ingest = corpus["ingest"]
        metrics["corpus/skipped_files"] = len(ingest.get("skipped", []))
        for key in ("characters", "words", "tokens"):
            if isinstance(ingest.get(key), int | float):
                metrics[f"corpus/{key}"] = ingest[key]
    diagnosis = results.get("diagnosis")
    if diagnosis:
        for key in ("lost_to_retrieval_points", "lost_to_reader_points"):
            metrics[f"diagnosis/{key}"] = diagnosis[key]
    for pair, result in results.get("comparisons", {}).get("pairs", {}).items():
        for key in (
            "mean_difference",
            "ci95_low",
            "ci95_high",
            "p_value",
            "p_value_adjusted",
            "mcnemar_b",
            "mcnemar_c",
        ):
            metrics[f"compare/{pair}/{key}"] = result[key]
        metrics[f"compare/{pair}/significant"] = float(result["significant"])
        if result.get("minimum_detectable_difference") is not None:
            mdd = result["minimum_detectable_difference"]
            metrics[f"compare/{pair}/minimum_detectable_difference"] = mdd
    return metrics


def _numeric_leaves(tree: Any, prefix: str) -> dict[str, float]:
    if isinstance(tree, dict):
        out: dict[str, float] = {}
        for key, value in tree.items():
            if key != "unknown":
                out.update(_numeric_leaves(value, f"{prefix}/{key}"))
        return out
    if isinstance(tree, int | float) and not isinstance(tree, bool):
        return {prefix: float(tree)}
    return {}


def _cost_metrics(arm: str, ledger: dict[str, Any] | None) -> dict[str, float]:
    """The arm's ledger headline: one-time and per-1k-queries totals, USD per 1M output tokens,
    per correct answer and over the configured traffic. Unknown values are not logged."""
    if not ledger:
        return {}
    units = ("usd", "co2_kg", "co2_operational_kg", "energy_kwh", "xpu_hours")
    one_time, per_1k = ledger.get("one_time_total", {}), ledger.get("per_1k_queries", {})
    traffic = (ledger.get("traffic") or {}).get("total", {})
    picked = {
        **{f"one_time_{u}": one_time.get(u) for u in units},
        **{f"{u}_per_1k_queries": per_1k.get(u) for u in units},
        "usd_per_1m_output_tokens": (ledger.get("self_hosted") or {}).get(
            "usd_per_1m_output_tokens"
        ),
        "usd_per_correct_answer": (ledger.get("per_correct_answer") or {}).get("usd"),
        "traffic_total_usd": traffic.get("usd"),
        "traffic_total_co2_kg": traffic.get("co2_kg"),
    }
    return _numeric_leaves(picked, f"cost/{arm}")


def cost_report_metrics(report: dict[str, Any] | None) -> dict[str, float]:
    """The cost report's headline numbers beside the arms' ledgers: ``qoe/<arm>/qoe_score``,
    ``break_even/<metric>/<a>_vs_<b>_queries``. Unknown values are simply not logged."""
    if not report:
        return {}
    metrics: dict[str, float] = {}
    for arm, qoe in report["qoe"].items():
        metrics.update(_numeric_leaves(qoe, f"qoe/{arm}"))
    for metric, rows in report["break_even"].items():
        for row in rows:
            if row.get("break_even_queries") is not None:
                a, b = row["arms"]
                metrics[f"break_even/{metric}/{a}_vs_{b}_queries"] = row["break_even_queries"]
    metrics.update(tokenomics_metrics(report.get("self_hosted_vs_api")))
    return metrics


def tokenomics_metrics(section: dict[str, Any] | None) -> dict[str, float]:
    """``tokenomics/<arm>/<api model>/...``: what the report's self-hosted-vs-API table and plot
    read back (crossing points, one replica-day, capacity, API cost per query)."""
    metrics: dict[str, float] = {}
    for arm, by_api in (section or {}).get("arms", {}).items():
        for api, c in by_api.items():
            host = c["self_hosted"]
            values = {
                "crossing_usd_queries_per_day": c["crossing"]["usd"]["queries_per_day"],
                "crossing_co2_queries_per_day": c["crossing"]["co2_kg"]["queries_per_day"],
                "replica_day_usd": host["replica_day"]["usd"],
                "capacity_queries_per_day": host.get("capacity_queries_per_day"),
                "api_usd_per_query": c["api_per_query"]["usd"],
            }
            prefix = f"tokenomics/{arm}/{api}"
            metrics.update({f"{prefix}/{k}": float(v) for k, v in values.items() if v is not None})
    return metrics


def mirror_to_tracker(
    tracker: Tracker, results: dict[str, Any], output_dir: Path, resolved_config_path: Path
) -> None:
    tracker.set_tags(run_tags(results))  # the params were logged when the run started
    tracker.log_metrics(arm_metrics(results))
    pairs = results.get("comparisons", {}).get("pairs", {})
    tracker.set_tags({f"compare/{pair}/verdict": r["verdict"] for pair, r in pairs.items()})
    if results.get("diagnosis"):
        tracker.set_tags({"diagnosis": results["diagnosis"]["sentence"]})
    finetune = results["stages"].get("finetune")
    if finetune:
        tracker.log_metrics(
            {
                f"train/{k}": v
                for k, v in finetune.items()
                if isinstance(v, int | float) and not isinstance(v, bool)
            }
        )
        for name, curve in (
            ("loss", "loss_curve"),
            ("eval_loss", "eval_loss_curve"),
            ("learning_rate", "learning_rate_curve"),
        ):
            for step, value in finetune.get(curve) or []:
                tracker.log_metrics({f"train/{name}": value}, step=int(step))
        tracker.set_tags(
            {
                "finetune/method": str(finetune.get("method", "lora")),
                "finetune/stopped_early": str(finetune.get("stopped_early", False)),
            }
        )
    tracker.log_artifact(resolved_config_path)
    tracker.log_artifact(output_dir / "results.json")
    tracker.log_table([flat_prediction(p) for p in results["predictions"]], "predictions.json")
    index = results["stages"].get("index")
    if index:  # the manifest describes the index; the index itself stays in the cache
        manifest = output_dir / "index_manifest.json"
        atomic_write_text(manifest, json.dumps(index, indent=2, default=str))
        tracker.log_artifact(manifest)
    adapter_dir = (finetune or {}).get("adapter_dir")
    if adapter_dir and Path(adapter_dir).is_dir():
        tracker.log_artifact(Path(adapter_dir), "adapter")


def flat_prediction(row: dict[str, Any]) -> dict[str, Any]:
    """A predictions-table row with list cells joined and record cells (the cascade's) spread
    into ``<key>.<field>`` columns, so the MLflow table view shows them."""
    flat: dict[str, Any] = {}
    for key, value in row.items():
        if isinstance(value, dict):
            flat.update({f"{key}.{k}": v for k, v in value.items()})
        else:
            flat[key] = " | ".join(map(str, value)) if isinstance(value, list) else value
    return flat
