"""The cost report's self-hosted versus API section: each measured arm served on a catalog device,
batching to the latency target, against each API model answering with the RAG arm's tokens.

Per arm and API model: daily USD, energy and CO2 at ``traffic.queries_per_day``, which is cheaper
and greener, the crossing points in queries/day, and a table over traffic levels (for a plot).
API energy and CO2 are EcoLogits estimates (costing/api_energy.py); self-hosted energy is the
provisioned device-hours at the device's power and PUE.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping
from typing import Any

from costing.api import api_quote
from costing.catalog import Hardware, find_hardware
from costing.measurement import ArmMeasurement, ModelFacts
from costing.prices import ApiPrice
from costing.rates import device_rates
from costing.serving import ModelShape, Roofline
from costing.settings import ReportSettings
from costing.traffic import self_hosted_capacity, self_hosted_vs_api


def tokens(arm: ArmMeasurement) -> tuple[int, int]:
    """Mean prompt and output tokens per query, rounded to whole tokens."""
    return round(statistics.fmean(arm.input_tokens)), round(statistics.fmean(arm.output_tokens))


def self_hosted_vs_api_section(
    arms: list[ArmMeasurement],
    model: ModelFacts,
    report: ReportSettings,
    catalog: Mapping[str, Hardware],
    pue: float,
    g_per_kwh: float,
    prices: Mapping[str, ApiPrice],
) -> dict[str, Any]:
    config = report.tokenomics
    hardware = find_hardware(catalog, config.device)
    shape = ModelShape(
        n_params=model.n_params,
        bytes_per_param=config.bytes_per_param,
        # The KV cache is kept in the weights' dtype: scale the measured figure to serving's.
        kv_bytes_per_token_given=model.kv_bytes_per_token
        * config.bytes_per_param
        / model.bytes_per_param,
    )
    roof = Roofline(hardware, config.devices, config.mfu, config.mbu)
    rates = device_rates(
        hardware, devices=config.devices, pue=pue, g_per_kwh=g_per_kwh, report=report
    )
    by_name = {arm.name: arm for arm in arms}
    api_arm = by_name.get(config.api_arm)
    queries_per_day = report.traffic.queries_per_day or 1.0
    out: dict[str, Any] = {}
    for arm in arms:
        prompt, output = tokens(arm)
        api_prompt, api_output = tokens(api_arm or arm)
        host = self_hosted_capacity(
            shape, roof, rates, prompt, max(output, 1), config.latency_target_s
        )
        out[arm.name] = {
            name: self_hosted_vs_api(
                host,
                api_quote(name, api_prompt, api_output, 1, config.price_date or None, prices),
                queries_per_day,
            )
            for name in report.api_models
        }
    return {
        "assumptions": {
            "device": hardware.name,
            "devices_per_replica": config.devices,
            "latency_target_s": config.latency_target_s,
            "mfu": config.mfu,
            "mbu": config.mbu,
            "bytes_per_param": config.bytes_per_param,
            "kv_bytes_per_token": shape.kv_bytes_per_token,
            "queries_per_day": queries_per_day,
            "price_date": config.price_date or "newest rows",
            "api_answers_with": f"the {api_arm.name!r} arm's tokens (API + RAG)"
            if api_arm
            else "each arm's own tokens",
            "self_hosted_energy": "provisioned device-hours x power x PUE, 24 h a day",
            "api_energy": "EcoLogits-method estimate (midpoint of its range), usage only",
        },
        "arms": out,
    }
