"""Pure costing formulas: FLOPs, device-hours, energy, CO2 and money.

Each function takes plain numbers in the units its argument names carry and validates them, so a
bad value fails with the argument's name instead of producing a silently wrong cost.
"""

from __future__ import annotations

import math
import numbers
from decimal import Decimal, InvalidOperation

SECONDS_PER_HOUR = 3600.0
HOURS_PER_YEAR = 365 * 24  # LLMCarbon amortises over 5 x 365 days
WATTS_PER_KILOWATT = 1000.0
GRAMS_PER_KILOGRAM = 1000.0
TOKENS_PER_MILLION = 1_000_000


def check_number(name: str, value: float, *, minimum: float = 0.0, strict: bool = False) -> float:
    """``value`` as a float if finite and >= ``minimum`` (> if ``strict``), else ValueError."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    if value < minimum or (strict and value == minimum):
        raise ValueError(f"{name} must be {'>' if strict else '>='} {minimum:g}, got {value!r}")
    return float(value)


def check_count(name: str, value: int, *, minimum: int = 0) -> int:
    """``value`` if it is an integer >= ``minimum``, else ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def xpu_hours(devices: int, seconds: float) -> float:
    """Device-hours from wall clock: H = devices * seconds / 3600."""
    n_devices = check_count("devices", devices, minimum=1)
    return n_devices * check_number("seconds", seconds) / SECONDS_PER_HOUR


def energy_kwh(xpu_hours: float, power_w: float, pue: float = 1.0) -> float:
    """E[kWh] = device-hours * average power per device [kW] * PUE (facility / IT energy)."""
    hours = check_number("xpu_hours", xpu_hours)
    power_kw = check_number("power_w", power_w) / WATTS_PER_KILOWATT
    return hours * power_kw * check_number("pue", pue, minimum=1)


def co2_kg(energy_kwh: float, g_per_kwh: float) -> float:
    """CO2e[kg] = energy [kWh] * grid intensity [g/kWh] / 1000."""
    energy = check_number("energy_kwh", energy_kwh)
    return energy * check_number("g_per_kwh", g_per_kwh) / GRAMS_PER_KILOGRAM


def usd_for_hours(xpu_hours: float, usd_per_hour: float) -> float:
    """Self-hosted or rented cost: device-hours * price per device-hour."""
    return check_number("xpu_hours", xpu_hours) * check_number("usd_per_hour", usd_per_hour)


def usd_per_1m_tokens(usd_per_hour: float, tokens_per_s: float) -> float:
    """USD per million tokens = price per hour / (3600 * tokens per second) * 1e6."""
    price = check_number("usd_per_hour", usd_per_hour)
    rate = check_number("tokens_per_s", tokens_per_s, strict=True)
    return price / (SECONDS_PER_HOUR * rate) * TOKENS_PER_MILLION


def api_cost_usd(
    input_tokens: int,
    output_tokens: int,
    usd_per_1m_input: Decimal | str,
    usd_per_1m_output: Decimal | str,
) -> Decimal:
    """Exact API bill: T_in * p_in + T_out * p_out with prices per million tokens.

    Prices are Decimals or decimal strings ("0.15"); a float is converted through its shortest
    repr, so 0.15 means Decimal("0.15") rather than the binary value 0.1499999...
    """
    tokens_in = check_count("input_tokens", input_tokens)
    tokens_out = check_count("output_tokens", output_tokens)
    price_in = to_price("usd_per_1m_input", usd_per_1m_input)
    price_out = to_price("usd_per_1m_output", usd_per_1m_output)
    return (tokens_in * price_in + tokens_out * price_out).scaleb(-6)


def to_price(name: str, value: Decimal | str | float) -> Decimal:
    """A finite price >= 0 as an exact Decimal; floats go through their shortest repr."""
    try:
        price = value if isinstance(value, Decimal) else Decimal(str(value))
    except InvalidOperation as err:
        raise ValueError(f"{name} must be a decimal number, got {value!r}") from err
    if not price.is_finite() or price < 0:
        raise ValueError(f"{name} must be a finite price >= 0, got {value!r}")
    return price


def training_flops_dense(n_params: float, tokens: float) -> float:
    """C = 6 * N * D for dense training (Kaplan et al. 2020, arXiv:2001.08361, section 2.1):
    2N per token forward, 4N backward (activation and weight gradients)."""
    return 6.0 * check_number("n_params", n_params) * check_number("tokens", tokens)


def forward_flops(n_params: float, tokens: float) -> float:
    """About 2 * N FLOPs per token for a forward pass (one multiply-add per weight)."""
    return 2.0 * check_number("n_params", n_params) * check_number("tokens", tokens)


def lora_training_flops(n_params: float, n_trainable_params: float, tokens: float) -> float:
    """(4 * N + 2 * N_trainable) * D FLOPs for training with some weights frozen (LoRA).

    A dense matmul with N weights costs about 2 * N FLOPs per token forward (Kaplan et al. 2020,
    arXiv:2001.08361, section 2.1). The backward pass has two parts of that size: activation
    gradients (dL/dx = W^T dL/dy), 2 * N per token for every weight, frozen or not, because the
    gradient must flow back through frozen layers to reach earlier adapters; and weight
    gradients (dL/dW), 2 * N per token only for weights that train. Full fine-tuning
    (N_trainable = N) gives Kaplan's 6 * N * D; LoRA with N_trainable << N about 4 * N * D.

    N counts every weight the model holds, embeddings and adapters included (a deliberate
    overestimate against Kaplan's non-embedding count); D counts non-padding tokens; attention's
    sequence-length term is left out, as in 6 * N * D. Slightly high, since no activation
    gradient is needed below the lowest adapter; gradient checkpointing adds one more forward
    pass (2 * N * D) that is not counted here.
    """
    n_total = check_number("n_params", n_params)
    n_trainable = check_number("n_trainable_params", n_trainable_params)
    if n_trainable > n_total:
        raise ValueError(f"n_trainable_params ({n_trainable:g}) exceeds n_params ({n_total:g})")
    return (4.0 * n_total + 2.0 * n_trainable) * check_number("tokens", tokens)


def hours_from_flops(flops: float, peak_flops_per_s: float, utilization: float) -> float:
    """Device-hours to do ``flops`` of work: H = C / (peak FLOP/s * utilization * 3600)."""
    peak = check_number("peak_flops_per_s", peak_flops_per_s, strict=True)
    share = check_number("utilization", utilization, strict=True)
    if share > 1:
        raise ValueError(f"utilization must be in (0, 1], got {utilization!r}")
    return check_number("flops", flops) / (peak * share * SECONDS_PER_HOUR)


def prefill_seconds(
    n_params: float, input_tokens: float, peak_flops_per_s: float, utilization: float
) -> float:
    """Compute-bound prefill: 2 * N * T_in / (peak FLOP/s * utilization)."""
    hours = hours_from_flops(forward_flops(n_params, input_tokens), peak_flops_per_s, utilization)
    return hours * SECONDS_PER_HOUR


def decode_seconds_per_token(
    weight_bytes: float,
    bandwidth_bytes_per_s: float,
    utilization: float = 1.0,
    kv_bytes: float = 0.0,
) -> float:
    """Memory-bound decode at batch 1: every weight (and the KV cache) is read once per token.

    ``utilization`` is the achieved share of peak bandwidth.
    """
    bandwidth = check_number("bandwidth_bytes_per_s", bandwidth_bytes_per_s, strict=True)
    share = check_number("utilization", utilization, strict=True)
    if share > 1:
        raise ValueError(f"utilization must be in (0, 1], got {utilization!r}")
    moved = check_number("weight_bytes", weight_bytes) + check_number("kv_bytes", kv_bytes)
    return moved / (bandwidth * share)


def embodied_co2_kg(
    device_kg: float, device_hours: float, lifetime_years: float = 5.0, use_rate: float = 1.0
) -> float:
    """Manufacturing footprint charged to a job (LLMCarbon, arXiv:2309.14393, eq. 12).

    device_kg * device-hours / (lifetime hours * use_rate): the job pays for the share of the
    devices' useful life it occupies. ``use_rate`` < 1 means devices sit idle part of their life,
    so each busy hour carries more (Luccioni et al. 2022 used 6 years at 85%).
    """
    kg = check_number("device_kg", device_kg)
    hours = check_number("device_hours", device_hours)
    years = check_number("lifetime_years", lifetime_years, strict=True)
    rate = check_number("use_rate", use_rate, strict=True)
    if rate > 1:
        raise ValueError(f"use_rate must be in (0, 1], got {use_rate!r}")
    return kg * hours / (years * HOURS_PER_YEAR * rate)
