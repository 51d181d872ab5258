"""Lifecycle ledger of one arm: one-time costs, per-query costs, traffic totals, per correct answer.

All figures are priced on the measuring device (``Rates``). Per-query costs split the measured
request into retrieval, prefill (ttft_s) and decode (the rest); per-query figures are means over
the measured questions. Traffic totals are one-time + queries_per_day * days * per-query.
"""

from __future__ import annotations

import math
from typing import Any

from costing import formulas
from costing.cost import Cost, Rates, total
from costing.measurement import ArmMeasurement, mean
from costing.settings import TrafficSettings


def arm_ledger(arm: ArmMeasurement, rates: Rates, traffic: TrafficSettings) -> dict[str, Any]:
    one_time = {stage: rates.cost(seconds) for stage, seconds in arm.one_time_seconds.items()}
    one_time_total = total(list(one_time.values()))
    parts = {
        "retrieval": rates.cost(mean(arm.retrieval_seconds)),
        "prefill": rates.cost(mean(arm.ttft_s)),
        "decode": rates.cost(mean(arm.decode_seconds())),
    }
    per_query = rates.cost(mean(arm.query_seconds))
    n_correct = sum(arm.correct)
    queries = traffic.queries_per_day * traffic.days
    traffic_total = one_time_total + per_query.scaled(queries)
    out_tokens, in_tokens = sum(arm.output_tokens), sum(arm.input_tokens)
    serving_seconds = math.fsum(arm.query_seconds)
    return {
        "name": arm.name,
        "n_queries": arm.n_queries,
        "n_correct": n_correct,
        "accuracy": arm.accuracy,
        "one_time": {stage: cost.to_dict() for stage, cost in one_time.items()},
        "one_time_total": one_time_total.to_dict(),
        "per_query": {
            **{name: cost.to_dict() for name, cost in parts.items()},
            "total": per_query.to_dict(),
        },
        "per_1k_queries": per_query.scaled(1000).to_dict(),
        # Failed requests are costed (time until the failure, tokens sent); this leaves them out.
        "failed_queries": arm.n_failed,
        "per_1k_queries_answered_only": (
            rates.cost(mean(arm.answered(arm.query_seconds))).scaled(1000).to_dict()
            if arm.n_failed < arm.n_queries
            else None
        ),
        "per_correct_answer": _per_correct(per_query.scaled(arm.n_queries), n_correct),
        "tokens": {
            "input_mean": mean([float(t) for t in arm.input_tokens]),
            "output_mean": mean([float(t) for t in arm.output_tokens]),
            "input_total": in_tokens,
            "output_total": out_tokens,
        },
        "self_hosted": _self_hosted(
            per_query, arm.n_queries, in_tokens, out_tokens, serving_seconds
        ),
        "traffic": {
            "queries_per_day": traffic.queries_per_day,
            "days": traffic.days,
            "queries": queries,
            "total": traffic_total.to_dict(),
            "per_correct_answer": _per_correct(traffic_total, queries * arm.accuracy),
        },
        "measured_energy_kwh": dict(arm.measured_energy_kwh),
        "_costs": {"one_time": one_time_total, "per_query": per_query},
    }


def _per_correct(cost: Cost, n_correct: float) -> dict[str, Any]:
    """``cost`` divided over the correct answers it bought; unknown when none was correct."""
    if n_correct <= 0:
        return {
            "unknown": "no correct answer was measured, so cost per correct answer is undefined"
        }
    return cost.scaled(1.0 / n_correct).to_dict()


def _self_hosted(
    per_query: Cost, n: int, in_tokens: int, out_tokens: int, seconds: float
) -> dict[str, Any]:
    """USD per 1M tokens from the measured throughput (batch 1, one request after another)."""
    out: dict[str, Any] = {
        "output_tokens_per_s": out_tokens / seconds if seconds > 0 else None,
        "usd_per_1m_output_tokens": None,
        "usd_per_1m_tokens": None,
    }
    if per_query.usd is None:
        out["unknown"] = per_query.unknown.get("usd", "usd unknown")
        return out
    serving_usd = per_query.usd * n
    if out_tokens:
        out["usd_per_1m_output_tokens"] = serving_usd / out_tokens * formulas.TOKENS_PER_MILLION
    if in_tokens + out_tokens:
        out["usd_per_1m_tokens"] = (
            serving_usd / (in_tokens + out_tokens) * formulas.TOKENS_PER_MILLION
        )
    return out


def strip_private(ledger: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in ledger.items() if not k.startswith("_")}
