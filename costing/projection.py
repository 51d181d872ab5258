"""Project an arm's measured workload onto catalog devices with roofline models.

Modelled time at 100% of peak: training FLOPs / peak (LoRA counted explicitly); prefill
2 * N * T_in / peak; decode (batch 1) bytes read per token / bandwidth, weights plus optional KV
cache. Utilization per phase is either configured or calibrated on the measuring device as
modelled-at-100% / measured, so the projection reproduces the measurement on that device and
scales with peak FLOP/s (train, prefill) or bandwidth (decode) elsewhere. Calibration carries the
measured efficiency over to very different hardware: treat it as a what-if, or configure a
utilization. Retrieval is carried over as measured (it runs another model) and the index build is
not projected. Times are for one device; a model that does not fit gets ``min_devices``.
"""

from __future__ import annotations

import math
from typing import Any

from costing.catalog import Hardware
from costing.cost import Rates
from costing.measurement import ArmMeasurement, ModelFacts, mean

TERA = 1e12
PHASES = ("train", "prefill", "decode")


def _peak(hw: Hardware) -> float | None:
    return None if hw.peak_tflops is None else hw.peak_tflops * TERA


def _bandwidth(hw: Hardware) -> float | None:
    return None if hw.bandwidth_tb_s is None else hw.bandwidth_tb_s * TERA


def decode_bytes(arm: ArmMeasurement, model: ModelFacts, bytes_per_param: float) -> list[float]:
    """Bytes read per query while decoding tokens 2..N: weights each step + growing KV cache."""
    out = []
    for t_in, n_out in zip(arm.input_tokens, arm.output_tokens, strict=True):
        steps = max(n_out - 1, 0)
        kv = model.kv_bytes_per_token * (steps * t_in + steps * (steps + 1) / 2)
        out.append(steps * model.n_params * bytes_per_param + kv)
    return out


def modelled_work(arm: ArmMeasurement, model: ModelFacts, bytes_per_param: float) -> dict:
    """Per phase: (work, measured seconds, resource) with work in FLOPs or bytes."""
    work: dict[str, tuple[float, float, str]] = {}
    if arm.train_tokens and arm.one_time_seconds.get("train", 0) > 0:
        work["train"] = (
            model.training_flops(arm.train_tokens),
            arm.one_time_seconds["train"],
            "flops",
        )
    prefill = sum(2.0 * model.n_params * t for t in arm.input_tokens)
    work["prefill"] = (prefill, math.fsum(arm.ttft_s), "flops")
    work["decode"] = (
        math.fsum(decode_bytes(arm, model, bytes_per_param)),
        math.fsum(arm.decode_seconds()),
        "bytes",
    )
    return work


def calibrate(
    arm: ArmMeasurement, model: ModelFacts, measured_on: Hardware, devices: int
) -> dict[str, dict[str, Any]]:
    """Utilization per phase = modelled time at 100% of peak / measured time."""
    out = {}
    for phase, (work, seconds, resource) in modelled_work(
        arm, model, model.bytes_per_param
    ).items():
        rate = _peak(measured_on) if resource == "flops" else _bandwidth(measured_on)
        entry: dict[str, Any] = {"measured_s": seconds, "utilization": None}
        if rate is None:
            what = "peak_tflops" if resource == "flops" else "bandwidth_tb_s"
            entry["unknown"] = f"hardware {measured_on.name!r} has no {what} in the catalog"
        elif work <= 0 or seconds <= 0:
            entry["unknown"] = f"no {phase} work was measured for arm {arm.name!r}"
        else:
            entry["modelled_s_at_peak"] = work / (rate * devices)
            entry["utilization"] = entry["modelled_s_at_peak"] / seconds
            if entry["utilization"] > 1:
                entry["warning"] = (
                    f"calibrated utilization {entry['utilization']:.3g} > 1: the catalog figure "
                    f"for {measured_on.name!r} understates what was achieved; ratios still hold"
                )
        out[phase] = entry
    if "train" not in out:
        out["train"] = {
            "utilization": None,
            "unknown": f"arm {arm.name!r} has no training stage with train_tokens > 0",
        }
    return out


def project_arm(
    arm: ArmMeasurement,
    model: ModelFacts,
    target: Hardware,
    rates: Rates,
    utilization: dict[str, float | None],
    bytes_per_param: float,
) -> dict[str, Any]:
    """Modelled times and costs of ``arm``'s workload on one ``target`` device."""
    work = modelled_work(arm, model, bytes_per_param)
    seconds: dict[str, float | None] = {}
    unknown: dict[str, str] = {}
    for phase in PHASES:
        if phase not in work:
            unknown[phase] = f"arm {arm.name!r} has no {phase} stage to project"
            continue
        amount, _, resource = work[phase]
        rate = _peak(target) if resource == "flops" else _bandwidth(target)
        util = utilization.get(phase)
        if rate is None:
            field = "peak_tflops" if resource == "flops" else "bandwidth_tb_s"
            unknown[phase] = f"hardware {target.name!r} has no {field} in the catalog"
        elif util is None:
            unknown[phase] = f"no utilization for {phase} (configure one or measure the phase)"
        else:
            seconds[phase] = amount / (rate * util)
    n = arm.n_queries
    weight_gb = model.n_params * bytes_per_param / 1e9
    out: dict[str, Any] = {
        "hardware": target.name,
        "bytes_per_param": bytes_per_param,
        "weights_gb": weight_gb,
        "min_devices": None
        if target.memory_gb is None
        else math.ceil(weight_gb / target.memory_gb),
        "utilization": dict(utilization),
        "train": rates.cost(seconds["train"]).to_dict() if "train" in seconds else None,
        "per_query": None,
        "unknown": unknown,
    }
    if "prefill" in seconds and "decode" in seconds:
        retrieval = mean(arm.retrieval_seconds)
        query_s = retrieval + (seconds["prefill"] + seconds["decode"]) / n
        cost = rates.cost(query_s)
        out["per_query"] = {
            "retrieval_s_as_measured": retrieval,
            "prefill_s": seconds["prefill"] / n,
            "decode_s": seconds["decode"] / n,
            "query_s": query_s,
            "cost": cost.to_dict(),
            "output_tokens_per_s": sum(arm.output_tokens) / (query_s * n) if query_s > 0 else None,
            "usd_per_1m_output_tokens": (
                cost.usd * n / sum(arm.output_tokens) * 1e6
                if cost.usd is not None and sum(arm.output_tokens)
                else None
            ),
        }
    return out
