"""Resolve what a device-hour costs (power, price, grid, embodied share) from settings and tables.

Settings' ``power_w`` and ``usd_per_hour`` describe the measuring machine, so they apply to the
measuring device only; projection targets use their catalog rows (override those rows to change
them). A value neither the settings nor the catalog give stays None with a reason.
"""

from __future__ import annotations

from collections.abc import Mapping

from costing import formulas
from costing.catalog import (
    GridIntensity,
    Hardware,
    find_hardware,
    find_region,
    load_grid_intensity,
    load_hardware_catalog,
)
from costing.cost import Rates
from costing.rows import CostingConfigError
from costing.settings import ReportSettings
from costing.types import CostSettings


def grid_g_per_kwh(
    settings: CostSettings, grid: Mapping[str, GridIntensity] | None = None
) -> tuple[float, str]:
    """Location-based intensity and a label saying where it comes from."""
    if settings.g_per_kwh is not None:
        return float(settings.g_per_kwh), "override (costing.g_per_kwh)"
    row = find_region(load_grid_intensity() if grid is None else grid, settings.region)
    if row.basis != "location":
        raise CostingConfigError(
            f"grid row {row.name!r} is {row.basis}-based; costing.region must name a "
            "location-based row (put market-based figures in costing.market_g_per_kwh)"
        )
    return row.g_per_kwh, f"{row.name} ({row.basis}-based, {row.year}; {row.source.strip()})"


def device_rates(
    hardware: Hardware,
    *,
    devices: int,
    pue: float,
    g_per_kwh: float,
    report: ReportSettings,
    power_w: float | None = None,
    usd_per_hour: float | None = None,
) -> Rates:
    """Rates for ``devices`` devices of ``hardware``; explicit power/price win over the row."""
    reasons = {}
    power = power_w if power_w is not None else hardware.tdp_w
    if power is None:
        reasons["power_w"] = (
            f"hardware {hardware.name!r} has no tdp_w in the catalog and no power_w was set"
        )
    price = usd_per_hour if usd_per_hour is not None else hardware.usd_per_hour
    if price is None:
        reasons["usd_per_hour"] = (
            f"hardware {hardware.name!r} has no usd_per_hour in the catalog and none was set"
        )
    market = report.market_g_per_kwh
    if market is None:
        reasons["market_g_per_kwh"] = "no market-based intensity configured (market_g_per_kwh)"
    device_kg, how = hardware.embodied_kg()
    per_hour = None
    if device_kg is None:
        reasons["embodied"] = how
    else:
        life = report.embodied
        per_hour = formulas.embodied_co2_kg(device_kg, 1.0, life.lifetime_years, life.use_rate)
    return Rates(
        hardware=hardware.name,
        devices=formulas.check_count("devices", devices, minimum=1),
        power_w=None if power is None else float(power),
        usd_per_hour=None if price is None else float(price),
        pue=formulas.check_number("pue", pue, minimum=1),
        g_per_kwh=formulas.check_number("g_per_kwh", g_per_kwh),
        market_g_per_kwh=None if market is None else float(market),
        embodied_kg_per_device_hour=per_hour,
        reasons=reasons,
    )


def measuring_rates(
    settings: CostSettings,
    report: ReportSettings,
    catalog: Mapping[str, Hardware] | None = None,
    grid: Mapping[str, GridIntensity] | None = None,
) -> Rates:
    """Rates of the device the run was measured on (``settings.hardware``)."""
    hardware = find_hardware(
        load_hardware_catalog() if catalog is None else catalog, settings.hardware
    )
    g_per_kwh, _ = grid_g_per_kwh(settings, grid)
    return device_rates(
        hardware,
        devices=settings.devices,
        pue=settings.pue,
        g_per_kwh=g_per_kwh,
        report=report,
        power_w=settings.power_w,
        usd_per_hour=settings.usd_per_hour,
    )
