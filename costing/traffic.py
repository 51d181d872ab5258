"""Self-hosted versus API at a traffic level: which is cheaper and greener, and where they cross.

Self-hosted: one replica (``devices`` devices) serves static batches back to back, with the
largest batch whose requests finish within the latency target (costing/serving.py). Its capacity
is batch / request time; the traffic needs ceil(queries per second / capacity) replicas, at
least one, provisioned all day. Provisioned devices are charged for 24 h a day at their price and
average power (catalog TDP unless overridden): idle time costs as much as busy time, which is
what a reserved or rented device costs.

API: queries x exact price per query (costing/api.py), energy and CO2 by the EcoLogits estimate
(midpoint of its range; the range is reported).

Crossing point: self-hosted costs one replica-day up to the replica's capacity, the API grows
linearly, so they cross at replica-day cost / API cost per query, if that is within one
replica's capacity. Past it, more replicas keep the per-query cost at most the full-load cost, so
when a full replica is dearer per query than the API, they never cross.
"""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

from costing import formulas
from costing.cost import Rates
from costing.serving import ModelShape, Roofline, largest_batch_within

SECONDS_PER_DAY = 86_400
HOURS_PER_DAY = 24
METRICS = ("usd", "energy_kwh", "co2_kg")


def self_hosted_capacity(
    model: ModelShape,
    roof: Roofline,
    rates: Rates,
    prompt_tokens: int,
    output_tokens: int,
    latency_target_s: float,
    tokens_per_s_per_device: float | None = None,
) -> dict[str, Any]:
    """One replica batching to the latency target: capacity and what a replica-day costs."""
    run = largest_batch_within(
        model,
        roof,
        prompt_tokens,
        output_tokens,
        latency_target_s,
        tokens_per_s_per_device=tokens_per_s_per_device,
    )
    day = rates.cost_hours(roof.devices * HOURS_PER_DAY)
    out = {
        "hardware": roof.hardware.name,
        "devices_per_replica": roof.devices,
        "mfu": roof.mfu,
        "mbu": roof.mbu,
        "latency_target_s": latency_target_s,
        "replica_day": {
            "usd": day.usd,
            "energy_kwh": day.energy_kwh,
            "co2_kg": day.co2_operational_kg,
            "unknown": day.to_dict()["unknown"],
        },
    }
    if run is None:
        return {**out, "batch": None, "unknown": "even batch 1 misses the latency target"}
    capacity = run["batch_size"] / run["request_s"] * SECONDS_PER_DAY
    return {**out, "batch": run, "capacity_queries_per_day": capacity}


def api_per_query(quote: dict[str, Any]) -> dict[str, float | None]:
    energy = quote["energy_per_query"]
    known = "energy_kwh_min" in energy
    mid_kwh = (energy["energy_kwh_min"] + energy["energy_kwh_max"]) / 2 if known else None
    return {
        "usd": float(Decimal(quote["usd_per_query"])),
        "energy_kwh": mid_kwh,
        "co2_kg": None if mid_kwh is None else mid_kwh * energy["kg_per_kwh"],
    }


def compare_at(
    host: dict[str, Any], api: dict[str, float | None], queries_per_day: float
) -> dict[str, Any]:
    """Both arms' daily figures at one traffic level and which is cheaper / greener."""
    q = formulas.check_number("queries_per_day", queries_per_day)
    capacity = host.get("capacity_queries_per_day")
    replicas = max(1, math.ceil(q / capacity)) if capacity else None
    row: dict[str, Any] = {"queries_per_day": q, "replicas": replicas}
    for metric in METRICS:
        per_replica = host["replica_day"][metric]
        hosted = None if replicas is None or per_replica is None else replicas * per_replica
        remote = None if api[metric] is None else q * api[metric]
        row[f"self_hosted_{metric}_per_day"] = hosted
        row[f"api_{metric}_per_day"] = remote
    row["cheaper"] = _winner(row, "usd")
    row["greener"] = _winner(row, "co2_kg")
    return row


def crossing(host: dict[str, Any], api: dict[str, float | None]) -> dict[str, Any]:
    """Queries/day where self-hosting becomes as cheap (and as low-carbon) as the API."""
    out: dict[str, Any] = {}
    capacity = host.get("capacity_queries_per_day")
    for metric in METRICS:
        per_replica, per_query = host["replica_day"][metric], api[metric]
        if capacity is None or per_replica is None or per_query is None:
            out[metric] = {"queries_per_day": None, "why": "unknown: an input is missing"}
        elif per_query == 0 or per_replica / per_query > capacity:
            full = per_replica / capacity
            out[metric] = {
                "queries_per_day": None,
                "why": f"never: a full replica costs {full:.3g} {metric} per query, the API "
                f"{per_query:.3g}",
            }
        else:
            out[metric] = {
                "queries_per_day": per_replica / per_query,
                "why": f"self-hosted needs less {metric} per day above this traffic",
            }
    return out


def self_hosted_vs_api(
    host: dict[str, Any],
    quote: dict[str, Any],
    queries_per_day: float,
    levels: list[float] | None = None,
) -> dict[str, Any]:
    """The comparison at ``queries_per_day``, the crossing points, and a table over traffic."""
    api = api_per_query(quote)
    cross = crossing(host, api)
    base = formulas.check_number("queries_per_day", queries_per_day, strict=True)
    points = set(levels or [base * f for f in (0.01, 0.1, 1, 10, 100)])
    points |= {c["queries_per_day"] for c in cross.values() if c["queries_per_day"]}
    return {
        "api_model": quote["model"],
        "api_price_date": quote["price_date"],
        "api_per_query": api,
        "api_energy_estimate": quote["energy_per_query"],
        "self_hosted": host,
        "at_traffic": compare_at(host, api, base),
        "crossing": cross,
        "table": [compare_at(host, api, q) for q in sorted(points)],
    }


def _winner(row: dict[str, Any], metric: str) -> str | None:
    hosted, remote = row[f"self_hosted_{metric}_per_day"], row[f"api_{metric}_per_day"]
    if hosted is None or remote is None:
        return None
    return "self-hosted" if hosted < remote else "api"
