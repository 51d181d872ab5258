"""Freshness: what it costs, and how long it takes, to absorb an updated corpus.

Model (inputs: measured index build and training seconds, the changed fraction f):
- re-index: with incremental updates only the changed documents are re-chunked and re-embedded
  and their vectors replaced (a flat FAISS index supports add/remove), so time = f * index build;
  without them the whole index is rebuilt (time = index build);
- re-train: a fine-tuned model does not forget selectively, so by default a refresh repeats the
  whole training run (retrain_fraction = 1); set retrain_fraction = f to model continued training
  on the changed documents only (cheaper, at the risk of forgetting and drift);
- an arm pays for the stages it has: RAG re-indexes, fine-tune re-trains, fine-tune + RAG both.
Costs are priced like the one-time stages of the ledger (same device, power, price, grid).
"""

from __future__ import annotations

from typing import Any

from costing.cost import Cost, Rates
from costing.measurement import ArmMeasurement
from costing.settings import FreshnessSettings

MODEL = (
    "re-index time = changed_fraction x index build when updates are incremental (only changed "
    "documents are re-embedded), else the full build; re-train time = retrain_fraction x the "
    "measured training run (1.0 by default: a fine-tuned model is refreshed by a full run); "
    "each arm pays for the stages it has"
)


def refresh_seconds(
    index_s: float | None, train_s: float | None, settings: FreshnessSettings
) -> dict[str, float]:
    """Wall-clock seconds of each refresh stage an arm has."""
    f = settings.changed_fraction
    out = {}
    if index_s is not None:
        out["reindex"] = index_s * (f if settings.incremental_index else 1.0)
    if train_s is not None:
        out["retrain"] = train_s * settings.retrain_fraction
    return out


def freshness_scenario(
    arms: list[ArmMeasurement], rates: Rates, settings: FreshnessSettings
) -> dict[str, Any]:
    per_arm: dict[str, Any] = {}
    totals: dict[str, Cost] = {}
    longest: dict[str, float] = {}
    for arm in arms:
        stages = refresh_seconds(
            arm.one_time_seconds.get("index"), arm.one_time_seconds.get("train"), settings
        )
        if not stages:
            per_arm[arm.name] = {"stages": {}, "note": "nothing to refresh (no index, no training)"}
            continue
        costs = {stage: rates.cost(seconds) for stage, seconds in stages.items()}
        for stage, seconds in stages.items():
            longest[stage] = max(longest.get(stage, 0.0), seconds)
        totals[arm.name] = sum(costs.values(), Cost.zero())
        per_arm[arm.name] = {
            "stages": {stage: cost.to_dict() for stage, cost in costs.items()},
            "total": totals[arm.name].to_dict(),
        }
    return {
        "changed_fraction": settings.changed_fraction,
        "incremental_index": settings.incremental_index,
        "retrain_fraction": settings.retrain_fraction,
        "arms": per_arm,
        "summary": _summary(totals, longest, settings.changed_fraction),
        "model": MODEL,
    }


def _summary(totals: dict[str, Cost], stages: dict[str, float], fraction: float) -> str:
    if not totals:
        return "no arm has an index or a training stage to refresh"
    parts = []
    for name, cost in sorted(totals.items(), key=lambda kv: kv[1].seconds):
        usd = "unknown USD" if cost.usd is None else f"{cost.usd:.4g} USD"
        parts.append(f"{name} {cost.seconds:.4g} s ({usd})")
    ratio = ""
    if stages.get("reindex") and "retrain" in stages:
        times = stages["retrain"] / stages["reindex"]
        ratio = f"; re-training takes {times:,.1f}x as long as re-indexing"
    return f"absorbing a {fraction:.0%} corpus change: " + ", ".join(parts) + ratio
