"""Energy and CO2 of one API request, estimated with the EcoLogits method (an estimate, never a
measurement: providers publish neither their models' sizes nor their energy).

EcoLogits (ecologits.ai, methodology "LLM inference"; reimplemented from ecologits 0.11.3,
``ecologits/impacts/llm.py``, MPL-2.0) models a request on 80 GB GPUs in 8-GPU servers:

- GPU energy per output token [Wh] = alpha * exp(beta * batch) * P_active[B] + gamma, a fit to
  the ML.ENERGY leaderboard, times the GPUs the model needs;
- GPUs needed = 1.2 * P_total[B] * 16 bits / 8 / 80 GB, rounded up to a power of two;
- server energy (without GPUs) = generation time * 1.2 kW * GPUs/8 / batch, with generation time
  = output tokens / tokens_per_s + ttft_s (EcoLogits' deployment figures per model);
- request energy = PUE * (server + GPU energy); CO2 = energy * electricity-mix intensity.

Parameter counts are ranges, so every figure is a (min, max) range. Usage only: the embodied
share (EcoLogits reports it separately) is not included.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from costing import formulas
from costing.catalog import DATA_DIR
from costing.rows import load_table, lookup

API_ENERGY_PATH = DATA_DIR / "api_energy.yaml"
SOURCE = (
    "estimate by the EcoLogits method (ecologits.ai methodology, ecologits 0.11.3 "
    "impacts/llm.py and data/models.json); model sizes are EcoLogits' estimates, not published"
)

# Constants of ecologits 0.11.3, ecologits/impacts/llm.py (fits and hardware assumptions).
GPU_ENERGY_ALPHA = 1.1665273170451914e-06  # Wh per token per billion active parameters
GPU_ENERGY_BETA = -0.011205921025579175  # per request in the batch
GPU_ENERGY_GAMMA = 4.052928146734005e-05  # Wh per token
BATCH_SIZE = 64  # concurrent requests per server
QUANTIZATION_BITS = 16
MEMORY_OVERHEAD = 1.2  # weights x 1.2 for activations and KV cache
GPU_MEMORY_GB = 80
SERVER_GPUS = 8
SERVER_POWER_KW = 1.2  # server without its GPUs


@dataclass
class ApiModelEnergy:
    name: str
    provider: str
    total_params_b_min: float
    total_params_b_max: float
    active_params_b_min: float
    active_params_b_max: float
    tokens_per_s: float
    ttft_s: float
    source: str


@dataclass
class Provider:
    name: str
    pue_min: float
    pue_max: float
    zone: str
    source: str


@dataclass
class Zone:
    name: str
    kg_per_kwh: float
    source: str


def load_api_energy(path: Path | None = None) -> dict[str, dict[str, Any]]:
    file = Path(path or API_ENERGY_PATH)
    return {
        "models": load_table(ApiModelEnergy, file, "models", None),
        "providers": load_table(Provider, file, "providers", None),
        "zones": load_table(Zone, file, "zones", None),
    }


def gpus_required(total_params_b: float) -> int:
    """GPUs holding the weights: ceil(1.2 * P * 16 / 8 / 80 GB), up to a power of two."""
    memory_gb = MEMORY_OVERHEAD * total_params_b * QUANTIZATION_BITS / 8
    count = max(1, math.ceil(memory_gb / GPU_MEMORY_GB))
    return 2 ** math.ceil(math.log2(count))


def request_energy_kwh(
    active_params_b: float,
    total_params_b: float,
    output_tokens: float,
    pue: float,
    tokens_per_s: float,
    ttft_s: float,
) -> float:
    """EcoLogits' request energy in kWh for one parameter count (one end of the range)."""
    per_token_wh = (
        GPU_ENERGY_ALPHA * math.exp(GPU_ENERGY_BETA * BATCH_SIZE) * active_params_b
        + GPU_ENERGY_GAMMA
    )
    gpus = gpus_required(total_params_b)
    gpu_kwh = output_tokens * per_token_wh / 1000.0
    latency_s = output_tokens / tokens_per_s + ttft_s
    server_kwh = latency_s / 3600.0 * SERVER_POWER_KW * (gpus / SERVER_GPUS) / BATCH_SIZE
    return pue * (server_kwh + gpus * gpu_kwh)


def api_request_energy(
    model: str,
    output_tokens: float,
    zone: str | None = None,
    data: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Energy (kWh) and CO2 (g) of one request as a (min, max) range, labelled as an estimate;
    ``unknown`` with the reason when EcoLogits has no row for the model."""
    formulas.check_number("output_tokens", output_tokens)
    data = load_api_energy() if data is None else data
    row = data["models"].get(model.lower())
    if row is None:
        known = ", ".join(sorted(data["models"]))
        return {"unknown": f"no EcoLogits row for {model!r} in {API_ENERGY_PATH.name} ({known})"}
    provider = lookup(data["providers"], row.provider, "API provider", API_ENERGY_PATH.name)
    mix = lookup(data["zones"], zone or provider.zone, "electricity-mix zone", API_ENERGY_PATH.name)
    ends = [
        request_energy_kwh(active, total, output_tokens, pue, row.tokens_per_s, row.ttft_s)
        for active, total, pue in (
            (row.active_params_b_min, row.total_params_b_min, provider.pue_min),
            (row.active_params_b_max, row.total_params_b_max, provider.pue_max),
        )
    ]
    low, high = min(ends), max(ends)
    return {
        "kind": "estimate",
        "energy_kwh_min": low,
        "energy_kwh_max": high,
        "energy_wh_mid": (low + high) / 2 * 1000.0,
        "co2_g_min": low * mix.kg_per_kwh * 1000.0,
        "co2_g_max": high * mix.kg_per_kwh * 1000.0,
        "zone": mix.name,
        "kg_per_kwh": mix.kg_per_kwh,
        "pue": [provider.pue_min, provider.pue_max],
        "active_params_b": [row.active_params_b_min, row.active_params_b_max],
        "scope": "usage only (GPU + server share, PUE); embodied not included",
        "source": SOURCE,
        "model_source": row.source.strip(),
    }
