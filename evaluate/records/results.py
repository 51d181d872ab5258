"""Aggregate predictions into per-arm figures, write results.json, mirror it to a tracker."""

from __future__ import annotations

import json
import logging
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

from evaluate.arms.answering import Prediction
from evaluate.records.tracking import ARM_TAG, REUSED_TAG, Tracker
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
    compared = [p.batched_answer_matches for p in predictions]
    compared = [c for c in compared if c is not None]
    return {
        "latency_questions": sum(p.latency_measured and p.error is None for p in predictions),
        # batched greedy answers compared with batch-1 answers to the same (timed) questions
        "batched_vs_batch1": {"compared": len(compared), "differ": compared.count(False)},
        "failures": sum(reasons.values()),
        "failure_reasons": dict(reasons.most_common()),
        "reused_answers": sum(p.reused for p in predictions),
        "judge": judge_usage(predictions),
    }


def latency_table(predictions: list[Prediction]) -> dict[str, float]:
    """Latency percentiles over the answered, timed questions (failed ones have no timings;
    batched accuracy-only answers, ``latency_measured`` false, are not batch-1 requests)."""
    predictions = [p for p in predictions if p.error is None and p.latency_measured]
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
    from rag.core.machine import cpu_flags, cpu_model, isa, torch_threads

    info["cpu"] = cpu_model()
    info["cpu_isa"] = ",".join(name for name, present in isa(cpu_flags()).items() if present)
    info.update({key: str(value) for key, value in torch_threads().items()})
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


# One MLflow run per arm, every arm with the same metric names, so MLflow's charts and compare
# view put the arms side by side on one axis. The full detail stays in results.json (an artifact of
# the job run); README "Comparing runs in the MLflow UI" lists these names.
ACCURACY_METRICS = (
    "exact_match",
    "token_f1",
    "contains",
    "rouge_l",
    "semantic_similarity",
    "judge",
)
RETRIEVAL_METRICS = ("recall_at_k", "hit_rate_at_k", "mrr", "ndcg_at_k")
INTERVAL_METRICS = ("exact_match", "contains")  # 95% bootstrap interval ends are logged for these
LATENCY_METRICS = (
    "ttft_p50_s",
    "ttft_p95_s",
    "tpot_p50_s",
    "tpot_p95_s",
    "e2e_p50_s",
    "e2e_p95_s",
    "request_p50_s",
    "request_p95_s",
    "retrieval_p50_s",
    "ttft_mean_s",  # the means feed the report's stacked latency breakdown
    "e2e_mean_s",
    "retrieval_mean_s",
)
# metric name -> (ledger section, unit key); "usd" stays "cost/", the rest get their own prefix
LEDGER_METRICS = {
    "cost/usd_per_1k_queries": ("per_1k_queries", "usd"),
    "cost/one_time_usd": ("one_time_total", "usd"),
    # operational (location-based) carbon is known wherever energy is; the total adds embodied
    # carbon, unknown for hardware the catalog has no embodied figure for
    "co2/operational_kg_per_1k_queries": ("per_1k_queries", "co2_operational_kg"),
    "co2/one_time_operational_kg": ("one_time_total", "co2_operational_kg"),
    "co2/kg_per_1k_queries": ("per_1k_queries", "co2_kg"),
    "co2/one_time_kg": ("one_time_total", "co2_kg"),
    "energy/kwh_per_1k_queries": ("per_1k_queries", "energy_kwh"),
    "energy/one_time_kwh": ("one_time_total", "energy_kwh"),
    "compute/xpu_hours_per_1k_queries": ("per_1k_queries", "xpu_hours"),
    "compute/one_time_xpu_hours": ("one_time_total", "xpu_hours"),
}
QOE_METRICS = ("qoe_score", "share_first_token_within_threshold", "share_faster_than_reading")
COMPARISON_METRICS = ("mean_difference", "ci95_low", "ci95_high", "p_value", "p_value_adjusted")


def _number(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def _put(metrics: dict[str, float], name: str, value: Any) -> None:
    """Add a numeric value; unknown (None) and non-numeric values are not logged."""
    number = _number(value)
    if number is not None:
        metrics[name] = number


def arm_run_metrics(results: dict[str, Any], arm: str) -> dict[str, float]:
    """The curated metrics of one arm's run: the same names for every arm (at most about 50)."""
    figures = results["arms"][arm]
    metrics: dict[str, float] = {}
    accuracy = figures["accuracy"]
    for key in ACCURACY_METRICS:
        _put(metrics, f"accuracy/{key}", accuracy.get(key))
    for key in INTERVAL_METRICS:
        interval = (figures.get("accuracy_ci") or {}).get(key) or {}
        _put(metrics, f"accuracy/{key}_ci95_low", interval.get("ci95_low"))
        _put(metrics, f"accuracy/{key}_ci95_high", interval.get("ci95_high"))
    for key in RETRIEVAL_METRICS:
        _put(metrics, f"retrieval/{key}", accuracy.get(key))
    _put(metrics, "eval/questions", accuracy.get("questions"))
    _put(metrics, "eval/failures", figures.get("failures"))
    _put(metrics, "eval/reused_answers", figures.get("reused_answers"))
    _put(metrics, "eval/answers_at_token_cap", figures.get("answers_at_token_cap"))
    _put(metrics, "eval/latency_questions", figures.get("latency_questions"))
    _put(metrics, "eval/batched_differ", (figures.get("batched_vs_batch1") or {}).get("differ"))
    for key in LATENCY_METRICS:
        _put(metrics, f"latency/{key}", figures["latency"].get(key))
    tokens = figures.get("tokens") or {}
    _put(metrics, "tokens/input_mean", tokens.get("input_tokens_mean"))
    _put(metrics, "tokens/output_mean", tokens.get("output_tokens_mean"))
    throughput = figures.get("throughput") or {}
    _put(metrics, "throughput/tokens_per_s", throughput.get("tokens_per_s"))
    _put(metrics, "throughput/requests_per_s", throughput.get("requests_per_s"))
    ledger = figures.get("cost") or {}
    for name, (section, unit) in LEDGER_METRICS.items():
        _put(metrics, name, (ledger.get(section) or {}).get(unit))
    per_1m = _ledger_value(ledger, "usd_per_1m_output_tokens")
    _put(metrics, "cost/usd_per_1m_output_tokens", per_1m)
    per_correct = (ledger.get("per_correct_answer") or {}).get("usd")
    _put(metrics, "cost/usd_per_correct_answer", per_correct)
    total = (ledger.get("traffic") or {}).get("total") or {}
    _put(metrics, "cost/traffic_total_usd", total.get("usd"))
    _put(metrics, "co2/traffic_total_kg", total.get("co2_kg"))
    costing = results.get("costing") or {}
    judge_cost = (costing.get("evaluation") or {}).get(arm)
    if judge_cost:
        _put(metrics, "cost/judge_usd", judge_cost["cost"]["usd"])
    for key, value in (figures.get("judge") or {}).items():
        _put(metrics, f"judge/{key}", value)
    qoe = (costing.get("qoe") or {}).get(arm) or {}
    for key in QOE_METRICS:
        _put(metrics, f"qoe/{key.removeprefix('qoe_')}", qoe.get(key))
    return metrics


def _ledger_value(ledger: dict[str, Any], key: str) -> Any:
    """A ledger figure kept at its top level or under ``self_hosted``."""
    if key in ledger:
        return ledger[key]
    return (ledger.get("self_hosted") or {}).get(key)


def job_run_metrics(results: dict[str, Any]) -> dict[str, float]:
    """The job run's own metrics: what compares arms (paired tests, break-even) and what the arms
    share (corpus, training)."""
    metrics: dict[str, float] = {}
    corpus = results["stages"]["corpus"]
    for key in ("documents", "train_questions", "eval_questions"):
        _put(metrics, f"corpus/{key}", corpus.get(key))
    if "leakage" in corpus:
        _put(metrics, "corpus/leakage_overlap", corpus["leakage"].get("overlap_count"))
    if "ingest" in corpus:
        ingest = corpus["ingest"]
        metrics["corpus/skipped_files"] = float(len(ingest.get("skipped", [])))
        for key in ("characters", "words", "tokens", "malformed_lines", "duplicate_documents"):
            _put(metrics, f"corpus/{key}", ingest.get(key))
    for pair, result in (results.get("comparisons") or {}).get("pairs", {}).items():
        for key in COMPARISON_METRICS:
            _put(metrics, f"compare/{pair}/{key}", result.get(key))
        metrics[f"compare/{pair}/significant"] = float(bool(result.get("significant")))
        _put(
            metrics,
            f"compare/{pair}/minimum_detectable_difference",
            result.get("minimum_detectable_difference"),
        )
    for key in ("lost_to_retrieval_points", "lost_to_reader_points"):
        _put(metrics, f"diagnosis/{key}", (results.get("diagnosis") or {}).get(key))
    for arm, figures in results["arms"].items():
        if figures.get("cascade"):  # the cascade's escalation and threshold sweep
            from evaluate.arms.cascade import sweep_metrics

            metrics.update(sweep_metrics(arm, figures["cascade"]))
    # self-hosted versus API, per arm and API model (the report's table and plot read them)
    metrics.update(tokenomics_metrics((results.get("costing") or {}).get("self_hosted_vs_api")))
    # one break-even per pair, in USD: the CO2 and energy crossings are the same query count
    # whenever both arms run on the same hardware (results.json keeps all three)
    for row in ((results.get("costing") or {}).get("break_even") or {}).get("usd", []):
        if row.get("break_even_queries") is not None:
            a, b = row["arms"]
            metrics[f"break_even/{a}_vs_{b}_queries"] = float(row["break_even_queries"])
    finetune = results["stages"].get("finetune") or {}
    for key, value in finetune.items():
        _put(metrics, f"train/{key}", value)
    _put(metrics, "run/duration_s", results.get("duration_s"))
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


def reuse_state(results: dict[str, Any]) -> str:
    """'all' when every answer came from an earlier run's journal, 'some', or 'none'."""
    arms = results["arms"].values()
    reused = sum(int(figures.get("reused_answers") or 0) for figures in arms)
    asked = sum(int(figures["accuracy"].get("questions") or 0) for figures in arms)
    return "all" if asked and reused == asked else "some" if reused else "none"


def mirror_to_tracker(
    tracker: Tracker, results: dict[str, Any], output_dir: Path, resolved_config_path: Path
) -> None:
    """The job run gets the comparisons, the summary as its description, results.json and the
    other artifacts; each arm gets a nested run with the curated metrics."""
    from evaluate.records.summary import arm_table_markdown, bottom_line

    reused = reuse_state(results)
    pairs = results.get("comparisons", {}).get("pairs", {})
    verdicts = {f"compare/{pair}/verdict": r["verdict"] for pair, r in pairs.items()}
    tracker.set_tags({**run_tags(results), **verdicts, REUSED_TAG: reused})
    if results.get("diagnosis"):
        tracker.set_tags({"diagnosis": results["diagnosis"]["sentence"]})
    tracker.log_metrics(job_run_metrics(results))
    arms = {arm: arm_run_metrics(results, arm) for arm in results["arms"]}
    note = [
        f"**{results['experiment']}**: {len(arms)} arms on "
        f"{results['stages']['corpus']['eval_questions']} held-out questions.",
        "",
    ]
    if reused == "all":
        note += [
            "**Reused:** every answer (and its timings) comes from an earlier run of the same "
            "command; these figures repeat that run's, they are not a new measurement.",
            "",
        ]
    note += [arm_table_markdown(arms), ""]
    note += [f"- {line}" for line in bottom_line(arms, job_run_metrics(results))]
    note += ["", *(f"- {r['verdict']}" for r in pairs.values())]
    tracker.set_description("\n".join(note))
    finetune = results["stages"].get("finetune")
    if finetune:
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
    for arm, metrics in arms.items():
        child = tracker.start_child(arm, {ARM_TAG: arm, REUSED_TAG: reused})
        child.log_metrics(metrics)
        child.finish(ok=True)


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
