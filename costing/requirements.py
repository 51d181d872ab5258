"""What-if estimates without an experiment, and paper-style xPU requirement tables.

A single estimate turns work (wall-clock hours on N devices, or FLOPs, or parameters x tokens)
into device-hours, days, energy, CO2 and USD. The tables size training and batch-1 serving of
named model sizes on catalog devices (Dong & Xie 2024, arXiv:2405.17147, "xPU requirements").
"""

from __future__ import annotations

import math
import re
from typing import Any

from costing import formulas
from costing.catalog import Hardware
from costing.cost import Rates

TERA = 1e12
# Mixed-precision Adam keeps fp16 weights and gradients plus fp32 master weights, momentum and
# variance: 16 bytes per parameter (Rajbhandari et al. 2020, ZeRO, arXiv:1910.02054, section 3.1).
TRAINING_BYTES_PER_PARAM = 16
_SUFFIX = {"": 1.0, "k": 1e3, "m": 1e6, "b": 1e9, "t": 1e12}


def parse_count(text: str) -> float:
    """'7b' -> 7e9, '135m' -> 1.35e8, '2e12' -> 2e12."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:e[0-9]+)?)\s*([kmbt]?)\s*", str(text).lower())
    if not match:
        raise ValueError(f"not a count: {text!r} (use e.g. 7b, 135m, 2e12)")
    return float(match.group(1)) * _SUFFIX[match.group(2)]


def estimate(
    rates: Rates,
    hardware: Hardware,
    *,
    hours: float | None = None,
    flops: float | None = None,
    utilization: float | None = None,
) -> dict[str, Any]:
    """Device-hours from wall-clock ``hours`` on ``rates.devices`` devices, or from ``flops``."""
    if (hours is None) == (flops is None):
        raise ValueError("give exactly one of hours (wall clock) or flops (work)")
    if hours is not None:
        xpu_hours = formulas.xpu_hours(rates.devices, formulas.check_number("hours", hours) * 3600)
    else:
        if hardware.peak_tflops is None:
            raise ValueError(
                f"hardware {hardware.name!r} has no peak_tflops in the catalog; "
                "give --hours instead or override the row"
            )
        xpu_hours = formulas.hours_from_flops(flops, hardware.peak_tflops * TERA, utilization)
    cost = rates.cost_hours(xpu_hours)
    out = cost.to_dict()
    out.update(
        flops=flops,
        utilization=utilization if flops is not None else None,
        wall_days=cost.seconds / 86_400,
        devices=rates.devices,
        hardware=hardware.name,
    )
    return out


def training_row(
    n_params: float,
    tokens: float,
    hardware: Hardware,
    rates: Rates,
    utilization: float,
    days: float,
) -> dict[str, Any]:
    """Dense training (6ND) of one model size on one device type."""
    row: dict[str, Any] = {
        "params": n_params,
        "tokens": tokens,
        "hardware": hardware.name,
        "flops": formulas.training_flops_dense(n_params, tokens),
    }
    if hardware.peak_tflops is None:
        return {**row, "unknown": f"hardware {hardware.name!r} has no peak_tflops"}
    hours = formulas.hours_from_flops(row["flops"], hardware.peak_tflops * TERA, utilization)
    cost = rates.cost_hours(hours)
    row.update(
        xpu_hours=hours,
        devices_for_days=math.ceil(hours / (formulas.check_number("days", days, strict=True) * 24)),
        min_devices_memory=_min_devices(n_params * TRAINING_BYTES_PER_PARAM, hardware),
        energy_mwh=_scale(cost.energy_kwh, 1e-3),
        co2_t=_scale(cost.co2_operational_kg, 1e-3),
        usd=cost.usd,
        unknown={k: v for k, v in cost.to_dict()["unknown"].items() if k in ("energy_kwh", "usd")},
    )
    return row


def serving_row(
    n_params: float,
    hardware: Hardware,
    rates: Rates,
    *,
    prompt_tokens: float,
    output_tokens: float,
    queries_per_day: float,
    bytes_per_param: float,
    mfu: float,
    mbu: float,
) -> dict[str, Any]:
    """Batch-1 serving: prefill compute-bound at ``mfu``, decode bandwidth-bound at ``mbu``, on
    the fewest devices (batches and the KV cache: costing/serving.py, ``ragtune-cost serve``)."""
    row: dict[str, Any] = {"params": n_params, "hardware": hardware.name}
    k = _min_devices(n_params * bytes_per_param, hardware)
    if k is None or hardware.peak_tflops is None or hardware.bandwidth_tb_s is None:
        return {**row, "unknown": f"hardware {hardware.name!r} lacks memory, peak or bandwidth"}
    prefill = formulas.prefill_seconds(
        n_params, prompt_tokens, k * hardware.peak_tflops * TERA, mfu
    )
    per_token = formulas.decode_seconds_per_token(
        n_params * bytes_per_param, k * hardware.bandwidth_tb_s * TERA, mbu
    )
    query_s = prefill + max(output_tokens - 1, 0) * per_token
    busy_hours_per_day = k * query_s * queries_per_day / 3600
    cost = rates.cost_hours(busy_hours_per_day)
    row.update(
        devices_per_replica=k,
        prefill_s=prefill,
        decode_s_per_token=per_token,
        query_s=query_s,
        devices_for_traffic=k * math.ceil(query_s * queries_per_day / 86_400),
        xpu_hours_per_day=busy_hours_per_day,
        usd_per_day=cost.usd,
        energy_kwh_per_day=cost.energy_kwh,
        co2_kg_per_day=cost.co2_operational_kg,
        usd_per_1m_output_tokens=(
            None
            if cost.usd is None or not output_tokens
            else cost.usd / (output_tokens * queries_per_day) * 1e6
        ),
    )
    return row


def _min_devices(total_bytes: float, hardware: Hardware) -> int | None:
    if hardware.memory_gb is None:
        return None
    return max(1, math.ceil(total_bytes / (hardware.memory_gb * 1e9)))


def _scale(value: float | None, factor: float) -> float | None:
    return None if value is None else value * factor
