"""Cost of one experiment arm from its measured times and token counts.

Seconds are taken as measured on ``settings.hardware``: this module prices device occupancy,
it does not project a CPU timing onto a GPU. A query's seconds are the time it held the devices
(batch 1, one after another); for batched runs pass batch wall time divided by batch size.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping

from costing import formulas
from costing.catalog import (
    CostingConfigError,
    GridIntensity,
    Hardware,
    find_hardware,
    find_region,
    load_grid_intensity,
    load_hardware_catalog,
)
from costing.types import ArmCost, CostSettings, StageCost

__all__ = [
    "ArmCost",
    "CostSettings",
    "StageCost",
    "break_even_queries",
    "compare_break_even",
    "cost_arm",
    "cost_stage",
    "resolve_power_and_price",
]


def resolve_power_and_price(settings: CostSettings, hardware: Hardware) -> tuple[float, float]:
    """Average watts and USD per hour per device: the settings' overrides, else the catalog row."""
    power_w = settings.power_w if settings.power_w is not None else hardware.tdp_w
    price = settings.usd_per_hour if settings.usd_per_hour is not None else hardware.usd_per_hour
    if power_w is None:
        raise CostingConfigError(
            f"hardware {hardware.name!r} has no tdp_w in the catalog; "
            "set power_w in the costing settings or override the catalog row"
        )
    if price is None:
        raise CostingConfigError(
            f"hardware {hardware.name!r} has no usd_per_hour in the catalog; "
            "set usd_per_hour in the costing settings or override the catalog row"
        )
    return float(power_w), float(price)


def cost_stage(
    seconds: float, settings: CostSettings, hardware: Hardware, g_per_kwh: float
) -> StageCost:
    """Device-hours, energy, CO2 and USD for ``seconds`` on ``settings.devices`` devices."""
    power_w, usd_per_hour = resolve_power_and_price(settings, hardware)
    hours = formulas.xpu_hours(settings.devices, seconds)
    energy = formulas.energy_kwh(hours, power_w, settings.pue)
    co2 = formulas.co2_kg(energy, g_per_kwh)
    return StageCost(
        float(seconds), hours, energy, co2, formulas.usd_for_hours(hours, usd_per_hour)
    )


def cost_arm(
    one_time_seconds: Mapping[str, float],
    query_seconds: list[float],
    input_tokens: list[int],
    output_tokens: list[int],
    settings: CostSettings,
    catalog: Mapping[str, Hardware] | None = None,
    grid: Mapping[str, GridIntensity] | None = None,
) -> ArmCost:
    """Price one arm: one-time stages (index build, training) plus the measured queries.

    ``query_seconds``, ``input_tokens`` and ``output_tokens`` hold one entry per query. Per-query
    and per-1k figures use the mean query time; token prices divide query-time cost only (one-time
    cost is amortised by ``break_even_queries`` instead).
    """
    n_queries = len(query_seconds)
    if n_queries == 0:
        raise ValueError("query_seconds is empty: at least one measured query is needed")
    for name, values in (("input_tokens", input_tokens), ("output_tokens", output_tokens)):
        if len(values) != n_queries:
            raise ValueError(f"{name} has {len(values)} entries, query_seconds has {n_queries}")
    if catalog is None:
        catalog = load_hardware_catalog()
    hardware = find_hardware(catalog, settings.hardware)
    g_per_kwh = settings.g_per_kwh
    if g_per_kwh is None:
        grid = load_grid_intensity() if grid is None else grid
        g_per_kwh = find_region(grid, settings.region).g_per_kwh

    def cost(seconds: float) -> StageCost:
        return cost_stage(seconds, settings, hardware, g_per_kwh)

    one_time = {stage: cost(seconds) for stage, seconds in one_time_seconds.items()}
    per_query = cost(math.fsum(query_seconds) / n_queries)
    query_usd = per_query.usd * n_queries
    tokens_out = sum(formulas.check_count("output_tokens[i]", n) for n in output_tokens)
    tokens_in = sum(formulas.check_count("input_tokens[i]", n) for n in input_tokens)
    power_w, usd_per_hour = resolve_power_and_price(settings, hardware)
    return ArmCost(
        one_time=one_time,
        one_time_total=sum(one_time.values(), StageCost(0.0, 0.0, 0.0, 0.0, 0.0)),
        per_query=per_query,
        per_1k_queries=per_query.scaled(1000),
        usd_per_1m_output_tokens=_per_1m(query_usd, tokens_out),
        usd_per_1m_total_tokens=_per_1m(query_usd, tokens_in + tokens_out),
        assumptions={
            "hardware": hardware.name,
            "devices": settings.devices,
            "power_w": power_w,
            "usd_per_hour": usd_per_hour,
            "pue": float(settings.pue),
            "g_per_kwh": float(g_per_kwh),
            "region": settings.region if settings.g_per_kwh is None else "override",
        },
    )


def _per_1m(usd: float, tokens: int) -> float | None:
    return usd / tokens * formulas.TOKENS_PER_MILLION if tokens else None


def break_even_queries(
    one_time_a_usd: float, per_query_a_usd: float, one_time_b_usd: float, per_query_b_usd: float
) -> float | None:
    """Queries after which arm a's total cost stays at or below arm b's; None if it never does.

    Totals are one_time + n * per_query. The answer is real-valued (round up for a whole count):
    0.0 when a is never dearer, (O_a - O_b) / (p_b - p_a) when a's cheaper queries pay back its
    larger one-time cost, None when a's queries cost more (or the same, with a larger one-time
    cost) so b wins in the long run.
    """
    o_a, p_a, o_b, p_b = (
        formulas.check_number(name, value)
        for name, value in zip(
            ("one_time_a_usd", "per_query_a_usd", "one_time_b_usd", "per_query_b_usd"),
            (one_time_a_usd, per_query_a_usd, one_time_b_usd, per_query_b_usd),
            strict=True,
        )
    )
    if p_a < p_b:
        return max(0.0, (o_a - o_b) / (p_b - p_a))
    if p_a == p_b and o_a <= o_b:
        return 0.0
    return None


def compare_break_even(arms: Mapping[str, ArmCost]) -> None:
    """Fill every arm's ``break_even_queries_vs`` against every other arm, in place (USD)."""
    for (_, a), (name_b, b) in itertools.permutations(arms.items(), 2):
        a.break_even_queries_vs[name_b] = break_even_queries(
            a.one_time_total.usd, a.per_query.usd, b.one_time_total.usd, b.per_query.usd
        )
