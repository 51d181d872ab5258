"""Hybrid edge-cloud serving (after Dong & Xie 2024, arXiv:2405.17147): the edge answers, the cloud
validates a share of the answers. Pure functions over summary numbers of two measured (or
projected) arms.

Assumptions, stated in every result:
- every query is answered on the edge first, so the edge's cost is paid for every query;
- a share s of the answers is sent to the cloud, which answers again; its answer replaces the
  edge's. With a random share: accuracy = (1 - s) * acc_edge + s * acc_cloud;
- the user sees the edge answer after the edge latency; the final answer arrives on average after
  edge latency + s * (network round trip + cloud latency);
- cost, energy and CO2 = edge + s * cloud per query; the network's own energy is not counted.
With per-question confidences, the validated answers are those below a threshold and accuracy is
counted question by question instead (``accuracy_with_mask``).

The measured cascade (``cascade_sweep``) replaces the random share by a per-question decision:
both tiers answered every question once, and for each threshold the escalated questions are those
whose edge confidence is below it. Accuracy, escalation rate, device cost (edge seconds of every
question + cloud seconds of the escalated ones, priced per tier) and latency (edge + round trip +
cloud for escalated answers) are recomputed from those stored figures, with no new generation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from costing import formulas
from costing.cost import Rates
from costing.measurement import mean, percentile
from costing.settings import HybridSettings

ASSUMPTIONS = (
    "every query is answered on the edge first (its cost is paid for every query); a share s is "
    "re-answered by the cloud, whose answer replaces the edge's; with a random share accuracy = "
    "(1 - s) * acc_edge + s * acc_cloud; the first answer arrives after the edge latency, the "
    "final one on average after edge latency + s * (round trip + cloud latency); cost, energy "
    "and CO2 = edge + s * cloud per query; network energy is not counted"
)


@dataclass
class ArmSummary:
    name: str
    accuracy: float
    latency_s: float  # mean time to the answer
    usd_per_query: float | None
    co2_kg_per_query: float | None
    energy_kwh_per_query: float | None


def hybrid_edge_cloud(
    edge: ArmSummary, cloud: ArmSummary, validate_share: float, rtt_s: float
) -> dict[str, Any]:
    s = formulas.check_number("validate_share", validate_share)
    if s > 1:
        raise ValueError(f"validate_share must be in [0, 1], got {validate_share!r}")
    rtt = formulas.check_number("rtt_s", rtt_s)
    for arm in (edge, cloud):
        acc = formulas.check_number(f"{arm.name}: accuracy", arm.accuracy)
        if acc > 1:
            raise ValueError(f"{arm.name}: accuracy must be in [0, 1], got {arm.accuracy!r}")
        formulas.check_number(f"{arm.name}: latency_s", arm.latency_s)

    def mix(field: str) -> float | None:
        e, c = getattr(edge, field), getattr(cloud, field)
        return None if e is None or c is None else e + s * c

    hybrid = {
        "accuracy": (1 - s) * edge.accuracy + s * cloud.accuracy,
        "first_answer_latency_s": edge.latency_s,
        "final_answer_latency_s": edge.latency_s + s * (rtt + cloud.latency_s),
        "usd_per_query": mix("usd_per_query"),
        "co2_kg_per_query": mix("co2_kg_per_query"),
        "energy_kwh_per_query": mix("energy_kwh_per_query"),
    }
    unknown = {
        key: f"{key} of {edge.name if getattr(edge, key) is None else cloud.name} is unknown"
        for key in ("usd_per_query", "co2_kg_per_query", "energy_kwh_per_query")
        if hybrid[key] is None
    }
    return {
        "edge_arm": edge.name,
        "cloud_arm": cloud.name,
        "validate_share": s,
        "rtt_s": rtt,
        "hybrid": {**hybrid, "unknown": unknown},
        "edge_only": _summary(edge, 0.0),
        "cloud_only": _summary(cloud, rtt),
        "assumptions": ASSUMPTIONS,
    }


def _summary(arm: ArmSummary, rtt_s: float) -> dict[str, Any]:
    return {
        "accuracy": arm.accuracy,
        "latency_s": arm.latency_s + rtt_s,
        "usd_per_query": arm.usd_per_query,
        "co2_kg_per_query": arm.co2_kg_per_query,
        "energy_kwh_per_query": arm.energy_kwh_per_query,
    }


def validated_mask(confidences: list[float | None], threshold: float) -> list[bool]:
    """Which answers go to the cloud: those whose edge confidence is below ``threshold``, and
    those whose confidence is unknown (None). Confidences may be negative (log-probabilities)."""
    limit = formulas.check_number("threshold", threshold, minimum=-math.inf)
    return [
        c is None or formulas.check_number(f"confidences[{i}]", c, minimum=-math.inf) < limit
        for i, c in enumerate(confidences)
    ]


def accuracy_with_mask(
    edge_correct: list[bool], cloud_correct: list[bool], validated: list[bool]
) -> float:
    """Question-by-question accuracy when the ``validated`` answers are replaced by the cloud's."""
    if not (len(edge_correct) == len(cloud_correct) == len(validated)) or not validated:
        raise ValueError(
            "edge_correct, cloud_correct and validated must be non-empty and of equal length, got "
            f"{len(edge_correct)}, {len(cloud_correct)} and {len(validated)}"
        )
    hits = [c if v else e for e, c, v in zip(edge_correct, cloud_correct, validated, strict=True)]
    return sum(hits) / len(hits)


def arm_summary(
    ledgers: dict[str, Any], projections: dict[str, Any], name: str, device: str
) -> ArmSummary | str:
    """An arm's per-query figures as measured (``device`` empty) or projected onto a catalog
    device; a string saying why when the projection is unknown."""
    ledger = ledgers[name]
    cost = ledger["per_query"]["total"]
    latency = cost["seconds"]
    if device:
        projected = projections[name][device.lower()]
        if projected["per_query"] is None:
            return f"arm {name!r} cannot be projected onto {device!r}: {projected['unknown']}"
        cost, latency = projected["per_query"]["cost"], projected["per_query"]["query_s"]
    usd, co2, kwh = cost["usd"], cost["co2_kg"], cost["energy_kwh"]
    return ArmSummary(name, ledger["accuracy"], latency, usd, co2, kwh)


def hybrid_from_report(
    ledgers: dict[str, Any], projections: dict[str, Any], config: HybridSettings
) -> dict[str, Any] | None:
    """The scenario for the configured arms, each as measured or projected onto a device."""
    if not config.enabled:
        return None
    edge = arm_summary(ledgers, projections, config.edge_arm, config.edge_device)
    cloud = arm_summary(ledgers, projections, config.cloud_arm, config.cloud_device)
    if isinstance(edge, str) or isinstance(cloud, str):
        return {"unknown": edge if isinstance(edge, str) else cloud}
    result = hybrid_edge_cloud(edge, cloud, config.validate_share, config.rtt_s)
    result["edge_device"] = config.edge_device or "as measured"
    result["cloud_device"] = config.cloud_device or "as measured"
    return result


@dataclass
class CascadeQuestion:
    """One question as both tiers answered it (measured), and the edge answer's confidence."""

    confidence: float | None  # None: unknown, so always escalated
    edge_correct: bool
    cloud_correct: bool
    edge_s: float  # edge device seconds: the edge request and the escalation check
    cloud_s: float  # cloud device seconds: the cloud request (paid only when escalated)


# co2_kg (operational + embodied) is unknown where the catalog row has no embodied figure; the
# operational part is kept beside it
_COST_FIELDS = ("usd", "co2_kg", "co2_operational_kg", "energy_kwh", "seconds")


def cascade_point(
    questions: list[CascadeQuestion],
    escalated: list[bool],
    rtt_s: float,
    edge_rates: Rates,
    cloud_rates: Rates,
) -> dict[str, Any]:
    """Accuracy, escalation rate, latency and per-tier cost of one escalation decision."""
    rtt = formulas.check_number("rtt_s", rtt_s)
    n = len(questions)
    accuracy = accuracy_with_mask(
        [q.edge_correct for q in questions], [q.cloud_correct for q in questions], escalated
    )
    pairs = list(zip(questions, escalated, strict=True))
    edge = edge_rates.cost(mean([q.edge_s for q in questions]))
    cloud = cloud_rates.cost(math.fsum(q.cloud_s for q, up in pairs if up) / n)
    waits = [q.edge_s + (rtt + q.cloud_s if up else 0.0) for q, up in pairs]

    def per_1k(cost) -> dict[str, float | None]:
        figures = cost.scaled(1000).to_dict()
        return {key: figures[key] for key in _COST_FIELDS}

    return {
        "accuracy": accuracy,
        "escalated": sum(escalated),
        "escalation_rate": sum(escalated) / n,
        "latency_p50_s": percentile(waits, 50),
        "latency_p95_s": percentile(waits, 95),
        "latency_mean_s": mean(waits),
        "per_1k_queries": {
            "edge": per_1k(edge),
            "cloud": per_1k(cloud),
            "total": per_1k(edge + cloud),
        },
    }


def cascade_sweep(
    questions: list[CascadeQuestion],
    thresholds: list[float],
    rtt_s: float,
    edge_rates: Rates,
    cloud_rates: Rates,
    projected: tuple[ArmSummary, ArmSummary] | None = None,
) -> list[dict[str, Any]]:
    """The cascade at each threshold, between its end points edge-only (nothing escalated) and
    cloud-only (everything escalated), recomputed from the stored per-question figures.

    ``projected`` (the edge and cloud arms' per-query means on catalog devices) adds, per point,
    the projected cost and mean latency: edge + escalation rate x (round trip + cloud), i.e.
    ``hybrid_edge_cloud`` with the measured escalation rate and the counted accuracy."""
    if not questions:
        raise ValueError("cascade_sweep needs at least one question")
    n = len(questions)
    confidences = [q.confidence for q in questions]
    decisions = [("edge_only", None, [False] * n)]
    decisions += [("threshold", t, validated_mask(confidences, t)) for t in sorted(thresholds)]
    decisions.append(("cloud_only", None, [True] * n))
    points = []
    for kind, threshold, escalated in decisions:
        point = {"point": kind, "threshold": threshold}
        point.update(cascade_point(questions, escalated, rtt_s, edge_rates, cloud_rates))
        if projected is not None:
            mixed = hybrid_edge_cloud(*projected, point["escalation_rate"], rtt_s)["hybrid"]
            point["projected"] = {
                "latency_mean_s": mixed["final_answer_latency_s"],
                "usd_per_1k_queries": _thousand(mixed["usd_per_query"]),
                "co2_kg_per_1k_queries": _thousand(mixed["co2_kg_per_query"]),
                "energy_kwh_per_1k_queries": _thousand(mixed["energy_kwh_per_query"]),
                "unknown": mixed["unknown"],
            }
        points.append(point)
    return points


def _thousand(value: float | None) -> float | None:
    return None if value is None else value * 1000.0
