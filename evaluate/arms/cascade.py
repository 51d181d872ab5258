"""The cascade arm (hybrid edge-cloud serving after Dong & Xie 2024, arXiv:2405.17147): an edge
arm answers every question; an escalation rule scores the edge answer's confidence, and an answer
below ``eval.cascade.threshold`` is sent to a cloud arm, whose answer replaces it.

The cascade generates nothing itself. It is composed from the edge and cloud arms' answers, which
ran in the same experiment (and so come from the evaluation journal when they were answered
before): adding it costs an escalation check per question. Because the cloud arm answered every
question once, the cascade at any other threshold is recomputed from the stored confidences and
answers (``costing.hybrid.cascade_sweep``) without generating again.

Rules (``eval.cascade.rule``):
- ``logprob_mean`` / ``logprob_min``: the mean / lowest natural-log probability of the edge
  answer's tokens under the edge model (from the generator's scores; <= 0);
- ``retrieval``: the share of the edge answer's words (SQuAD-normalised) found in the text of the
  top-k chunks retrieved for the question on the edge (0-1; the retrieval is timed and counted
  as edge time).
An unknown confidence (a backend without log-probs) or a failed edge answer always escalates.

Per question the final answer carries the tier that gave it (timings, tokens, retrieval); the
``cascade`` record holds both answers, the confidence, the decision and per-tier seconds and
tokens. The network round trip is ``eval.cascade.rtt_s``, labelled modelled: both tiers ran on
this machine. ``request_s`` = edge + check + (round trip + cloud request if escalated).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from evaluate.arms.answering import Prediction
from evaluate.config.schema import Config, ConfigError
from evaluate.scoring.metrics import latency_summary, normalize_answer
from rag.core.types import QAPair

logger = logging.getLogger(__name__)

NAME = "cascade"
RULES = ("logprob_mean", "logprob_min", "retrieval")
NETWORK_MODELLED = "modelled: eval.cascade.rtt_s (both tiers ran on this machine)"


def parts(config: Config) -> tuple[str, str]:
    """The edge and the cloud arm."""
    c = config.eval.cascade
    return c.edge_arm, c.cloud_arm


def check(config: Config) -> None:
    """Config-time checks of ``eval.cascade`` (raises ConfigError naming the key)."""
    from evaluate.arms.registry import any_retrieves, is_composite

    c, arms = config.eval.cascade, list(config.eval.arms)
    for key in ("edge_arm", "cloud_arm"):
        name = getattr(c, key)
        if name not in arms or is_composite(name):
            raise ConfigError(
                f"eval.cascade.{key}={name!r} must be a generating arm listed in eval.arms "
                f"({', '.join(arms)}): the cascade combines its answers"
            )
    if c.edge_arm == c.cloud_arm:
        raise ConfigError(f"eval.cascade.edge_arm and cloud_arm are both {c.edge_arm!r}")
    if c.rule not in RULES:
        raise ConfigError(f"eval.cascade.rule={c.rule!r} is invalid: expected one of {RULES}")
    if c.rule == "retrieval" and not any_retrieves(arms):
        raise ConfigError(
            "eval.cascade.rule=retrieval needs the retriever: add an arm that retrieves "
            "(rag or finetune_rag) to eval.arms"
        )
    if not c.rtt_s >= 0:
        raise ConfigError(f"eval.cascade.rtt_s={c.rtt_s!r} is invalid: expected >= 0")
    devices = [d.lower() for d in config.costing.projection.devices]
    for key in ("edge_device", "cloud_device"):
        device = getattr(c, key)
        if device and device.lower() not in devices:
            raise ConfigError(
                f"eval.cascade.{key}={device!r} must also be listed in "
                f"costing.projection.devices ({', '.join(devices) or 'empty'})"
            )


def answer_support(answer: str, texts: list[str]) -> float:
    """Share of the answer's normalised words that occur among the texts' normalised words
    (0 for an empty answer)."""
    words = normalize_answer(answer).split()
    if not words:
        return 0.0
    vocabulary = set(normalize_answer(" ".join(texts)).split())
    return sum(w in vocabulary for w in words) / len(words)


def confidence(rule: str, edge: Prediction, qa: QAPair, retriever) -> tuple[float | None, float]:
    """The edge answer's confidence under ``rule`` and the seconds the check took."""
    if rule == "retrieval":
        started = time.perf_counter()
        retrieval = retriever.retrieve(qa.question)
        support = answer_support(edge.prediction, [chunk.text for chunk in retrieval.chunks])
        return support, time.perf_counter() - started
    return (edge.logprob_mean if rule == "logprob_mean" else edge.logprob_min), 0.0


def compose(
    config: Config,
    predictions: dict[str, list[Prediction]],
    questions: list[QAPair],
    retriever,
) -> list[Prediction]:
    """The cascade's prediction per question, at ``eval.cascade.threshold``."""
    c = config.eval.cascade
    edge, cloud = predictions[c.edge_arm], predictions[c.cloud_arm]
    out = []
    for qa, e, k in zip(questions, edge, cloud, strict=True):
        conf, check_s = confidence(c.rule, e, qa, retriever)
        escalate = e.error is not None or conf is None or conf < c.threshold
        out.append(_final(e, k, conf, check_s, escalate, c))
    n_up = sum(p.cascade["escalated"] for p in out)
    logger.info(
        "arm %s: %s -> %s, %s < %g escalated %d of %d questions",
        NAME,
        c.edge_arm,
        c.cloud_arm,
        c.rule,
        c.threshold,
        n_up,
        len(out),
    )
    return out


def _final(e: Prediction, k: Prediction, conf, check_s: float, escalate: bool, c) -> Prediction:
    p = Prediction.from_dict((k if escalate else e).to_dict())
    edge_s = e.request_s + check_s
    network_s = c.rtt_s if escalate else 0.0
    p.arm = NAME
    p.request_s = edge_s + (network_s + k.request_s if escalate else 0.0)
    p.reused = e.reused and (k.reused or not escalate)
    p.judge, p.judge_input_tokens, p.judge_output_tokens, p.judge_s = None, 0, 0, 0.0
    p.semantic_similarity = None
    p.cascade = {
        "rule": c.rule,
        "threshold": c.threshold,
        "confidence": conf,
        "escalated": escalate,
        "edge_arm": c.edge_arm,
        "cloud_arm": c.cloud_arm,
        "edge_answer": e.prediction,
        "edge_contains": e.contains,
        "edge_error": e.error,
        "cloud_answer": k.prediction,
        "cloud_contains": k.contains,
        "cloud_error": k.error,
        "edge_s": edge_s,
        "check_s": check_s,
        "cloud_s": k.request_s,
        "network_s": network_s,
        "network": NETWORK_MODELLED,
        "edge_input_tokens": e.input_tokens,
        "edge_output_tokens": e.output_tokens,
        "cloud_input_tokens": k.input_tokens if escalate else 0,
        "cloud_output_tokens": k.output_tokens if escalate else 0,
        "edge_reused": e.reused,
        "cloud_reused": k.reused,
    }
    return p


def summary(
    config: Config, predictions: list[Prediction], report: dict[str, Any] | None
) -> dict[str, Any]:
    """The cascade's own figures for results.json ``arms.cascade.cascade``: escalation, latency
    of edge-only vs escalated answers, tokens and cost per tier at the configured threshold, and
    the threshold sweep (measured on this machine; projected onto catalog devices if set)."""
    from costing.hybrid import CascadeQuestion, cascade_point, cascade_sweep
    from costing.rates import measuring_rates
    from evaluate.config.schema import cost_settings

    c = config.eval.cascade
    records = [p.cascade for p in predictions]
    questions = [
        CascadeQuestion(
            confidence=r["confidence"] if r["edge_error"] is None else None,
            edge_correct=r["edge_contains"] > 0,
            cloud_correct=r["cloud_contains"] > 0,
            edge_s=r["edge_s"],
            cloud_s=r["cloud_s"],
        )
        for r in records
    ]
    rates = measuring_rates(cost_settings(config), config.costing)
    thresholds = list(c.thresholds) or sorted(
        {q.confidence for q in questions if q.confidence is not None}
    )
    projected, projection_note = _projected(c, report)
    escalated = [r["escalated"] for r in records]
    at_threshold = cascade_point(questions, escalated, c.rtt_s, rates, rates)
    waits = {
        "edge_only_answers": [p.request_s for p in predictions if not p.cascade["escalated"]],
        "escalated_answers": [p.request_s for p in predictions if p.cascade["escalated"]],
    }
    return {
        "edge_arm": c.edge_arm,
        "cloud_arm": c.cloud_arm,
        "rule": c.rule,
        "threshold": c.threshold,
        "rtt_s": c.rtt_s,
        "network": NETWORK_MODELLED,
        "escalated": at_threshold["escalated"],
        "escalation_rate": at_threshold["escalation_rate"],
        "confidence_unknown": sum(q.confidence is None for q in questions),
        "latency": {
            group: latency_summary(values, "request") if values else {}
            for group, values in waits.items()
        },
        "tokens": {
            f"{tier}_{kind}_tokens_total": sum(r[f"{tier}_{kind}_tokens"] for r in records)
            for tier in ("edge", "cloud")
            for kind in ("input", "output")
        },
        "per_1k_queries": at_threshold["per_1k_queries"],  # measured, split by tier
        "cost_basis": "measured: device seconds on this machine (both tiers), priced with the "
        "measuring hardware's rates; the modelled round trip is waiting, not device time",
        "projection": projection_note,
        "sweep": cascade_sweep(questions, thresholds, c.rtt_s, rates, rates, projected),
    }


def _projected(c, report: dict[str, Any] | None):
    """Per-query figures of the edge and cloud arms on the configured catalog devices, or None
    and why not."""
    from costing.hybrid import arm_summary

    if not (c.edge_device or c.cloud_device):
        return None, {"note": "no eval.cascade.edge_device / cloud_device set"}
    if not report or "projections" not in report:
        return None, {"note": "no cost report (the model's size is unknown)"}
    ledgers = report["arms"]
    edge = arm_summary(ledgers, report["projections"], c.edge_arm, c.edge_device)
    cloud = arm_summary(ledgers, report["projections"], c.cloud_arm, c.cloud_device)
    if isinstance(edge, str) or isinstance(cloud, str):
        return None, {"note": edge if isinstance(edge, str) else cloud}
    return (edge, cloud), {
        "edge_device": c.edge_device or "as measured",
        "cloud_device": c.cloud_device or "as measured",
        "basis": "projected: each tier's per-query mean on its catalog device (roofline model, "
        "costing.projection), mixed by the measured escalation rate; accuracy as counted",
    }


def sweep_metrics(arm: str, figures: dict[str, Any]) -> dict[str, float]:
    """MLflow metrics of the cascade: headline figures and one group per sweep point,
    ``<arm>/sweep/NN/<name>`` in the sweep's order (edge-only first, cloud-only last)."""
    metrics = {
        f"{arm}/escalation_rate": float(figures["escalation_rate"]),
        f"{arm}/confidence_unknown": float(figures["confidence_unknown"]),
    }
    for tier, cost in figures["per_1k_queries"].items():
        for key in ("usd", "co2_kg", "co2_operational_kg"):
            if cost.get(key) is not None:
                metrics[f"cost/{arm}/{tier}_{key}_per_1k_queries"] = float(cost[key])
    for i, point in enumerate(figures["sweep"]):
        prefix = f"{arm}/sweep/{i:02d}"
        total = point["per_1k_queries"]["total"]
        values = {
            "threshold": point["threshold"],
            "accuracy": point["accuracy"],
            "escalation_rate": point["escalation_rate"],
            "latency_p95_s": point["latency_p95_s"],
            "usd_per_1k_queries": total["usd"],
            "co2_kg_per_1k_queries": total["co2_kg"],
            "co2_operational_kg_per_1k_queries": total["co2_operational_kg"],
            "end_point": {"edge_only": 0.0, "threshold": 0.5, "cloud_only": 1.0}[point["point"]],
        }
        metrics.update({f"{prefix}/{k}": float(v) for k, v in values.items() if v is not None})
    return metrics
