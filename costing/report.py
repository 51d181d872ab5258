"""The one entry point the experiment runner calls: every cost view of a run, as plain JSON values.

    check_report_settings(settings, report, arm_names)   # at config time, before any work
    build_cost_report(arms, model, settings, report) -> dict

``settings`` (CostSettings) names the measuring device, its power and price, PUE and grid;
``report`` (ReportSettings) holds traffic, QoE, projection, API, embodied, freshness and hybrid
settings. Unknown inputs (no price, no power figure, no embodied data) give None plus a reason,
never 0; names missing from a table raise CostingConfigError, which ``check_report_settings``
lets the runner see before the experiment starts.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from costing.api import parse_day
from costing.breakeven import METRICS, pairwise_break_even
from costing.catalog import GridIntensity, Hardware, find_hardware, load_hardware_catalog
from costing.freshness import freshness_scenario
from costing.hybrid import hybrid_from_report
from costing.ledger import arm_ledger, strip_private
from costing.measurement import ArmMeasurement, ModelFacts
from costing.prices import ApiPrice, api_comparison, find_api_price, load_api_prices
from costing.projection import PHASES, calibrate, project_arm
from costing.qoe import qoe_summary
from costing.rates import device_rates, grid_g_per_kwh, measuring_rates
from costing.rows import CostingConfigError
from costing.serving import Roofline
from costing.settings import ReportSettings
from costing.tokenomics import self_hosted_vs_api_section
from costing.types import CostSettings

SCHEMA = "ragtune-cost-report/1"


def check_report_settings(
    settings: CostSettings,
    report: ReportSettings,
    arm_names: list[str] | None = None,
    *,
    catalog: Mapping[str, Hardware] | None = None,
    grid: Mapping[str, GridIntensity] | None = None,
    prices: Mapping[str, ApiPrice] | None = None,
) -> None:
    """Fail now, naming the key, if a device, region, API model or hybrid arm does not exist."""
    catalog = load_hardware_catalog() if catalog is None else catalog
    find_hardware(catalog, settings.hardware)
    grid_g_per_kwh(settings, grid)
    for name in report.projection.devices:
        find_hardware(catalog, name)
    for name in report.api_models:
        find_api_price(load_api_prices() if prices is None else prices, name)
    tokenomics = report.tokenomics
    Roofline(find_hardware(catalog, tokenomics.device), tokenomics.devices, tokenomics.mfu, 1.0)
    if report.tokenomics.price_date:
        parse_day(report.tokenomics.price_date, "costing.tokenomics.price_date")
    hybrid = report.hybrid
    devices = [d.lower() for d in report.projection.devices]
    for key in ("edge", "cloud") if hybrid.enabled else ():
        arm, device = getattr(hybrid, f"{key}_arm"), getattr(hybrid, f"{key}_device")
        if arm_names is not None and arm not in arm_names:
            raise CostingConfigError(
                f"costing.hybrid.{key}_arm={arm!r} is not an arm of this run; "
                f"arms: {', '.join(arm_names)}"
            )
        if device and device.lower() not in devices:
            raise CostingConfigError(
                f"costing.hybrid.{key}_device={device!r} must also be listed in "
                f"costing.projection.devices ({', '.join(devices) or 'empty'})"
            )


def build_cost_report(
    arms: list[ArmMeasurement],
    model: ModelFacts,
    settings: CostSettings,
    report: ReportSettings | None = None,
    *,
    catalog: Mapping[str, Hardware] | None = None,
    grid: Mapping[str, GridIntensity] | None = None,
    prices: Mapping[str, ApiPrice] | None = None,
) -> dict[str, Any]:
    report = ReportSettings() if report is None else report
    catalog = load_hardware_catalog() if catalog is None else catalog
    prices = load_api_prices() if prices is None else prices
    names = [arm.name for arm in arms]
    if not arms or len(set(names)) != len(names):
        raise ValueError(f"arms must be a non-empty list with unique names, got {names}")
    check_report_settings(settings, report, names, catalog=catalog, grid=grid, prices=prices)
    rates = measuring_rates(settings, report, catalog, grid)
    g_per_kwh, grid_label = grid_g_per_kwh(settings, grid)
    api = [find_api_price(prices, name) for name in report.api_models]

    ledgers = {arm.name: arm_ledger(arm, rates, report.traffic) for arm in arms}
    costs = {
        n: (led["_costs"]["one_time"], led["_costs"]["per_query"]) for n, led in ledgers.items()
    }
    qoe = {arm.name: qoe_summary(arm, report.qoe) for arm in arms}
    calibration, projections = _projections(arms, model, catalog, settings, report, g_per_kwh)
    life = report.embodied
    return {
        "schema": SCHEMA,
        "assumptions": {
            "measured_on": rates.to_dict(),
            "grid": grid_label,
            "market_g_per_kwh": report.market_g_per_kwh,
            "embodied": {
                "lifetime_years": life.lifetime_years,
                "use_rate": life.use_rate,
                "scope": "accelerator die only (LLMCarbon area x CPA) unless the catalog row "
                "gives a per-device figure; host servers are not included",
            },
            "per_query": "means over the measured questions at batch 1: retrieval + prefill "
            "(ttft_s) + decode (the rest of the request)",
            "co2_kg": "operational (location-based) + embodied; market-based reported apart",
        },
        "arms": {name: strip_private(led) for name, led in ledgers.items()},
        "break_even": {
            metric: pairwise_break_even(costs, metric, report.traffic.queries_per_day)
            for metric in METRICS
        },
        "qoe": qoe,
        "cost_vs_qoe": [_qoe_row(ledgers[name], qoe[name]) for name in names],
        "calibration": calibration,
        "projections": projections,
        "api_comparison": {
            arm.name: api_comparison(
                api,
                arm.input_tokens,
                arm.output_tokens,
                ledgers[arm.name]["n_correct"],
                ledgers[arm.name]["traffic"]["queries"],
                ledgers[arm.name]["per_query"]["total"]["usd"],
            )
            for arm in arms
        },
        "freshness": freshness_scenario(arms, rates, report.freshness),
        "hybrid": hybrid_from_report(ledgers, projections, report.hybrid),
        "self_hosted_vs_api": self_hosted_vs_api_section(
            arms, model, report, catalog, settings.pue, g_per_kwh, prices
        ),
    }


def _projections(
    arms: list[ArmMeasurement],
    model: ModelFacts,
    catalog: Mapping[str, Hardware],
    settings: CostSettings,
    report: ReportSettings,
    g_per_kwh: float,
) -> tuple[dict[str, Any], dict[str, Any]]:
    config = report.projection
    measured_on = find_hardware(catalog, settings.hardware)
    targets = [find_hardware(catalog, name) for name in config.devices]
    source = "configured" if config.utilization else f"calibrated on {measured_on.name}"
    calibrations: dict[str, Any] = {}
    projections: dict[str, Any] = {}
    for arm in arms:
        calibration = calibrate(arm, model, measured_on, settings.devices)
        calibrations[arm.name] = {"measured_on": measured_on.name, **calibration}
        utilization = {p: config.utilization or calibration[p]["utilization"] for p in PHASES}
        projections[arm.name] = {}
        for target in targets:
            rates = device_rates(
                target, devices=1, pue=settings.pue, g_per_kwh=g_per_kwh, report=report
            )
            result = project_arm(
                arm,
                model,
                target,
                rates,
                utilization,
                config.bytes_per_param or model.bytes_per_param,
            )
            projections[arm.name][target.name] = {**result, "utilization_source": source}
    return calibrations, projections


def _qoe_row(ledger: dict[str, Any], qoe: dict[str, Any]) -> dict[str, Any]:
    per_query = ledger["per_query"]["total"]
    return {
        "arm": ledger["name"],
        "accuracy": ledger["accuracy"],
        "qoe_score": qoe["qoe_score"],
        "share_first_token_within_threshold": qoe["share_first_token_within_threshold"],
        "first_token_s_p50": qoe["first_token_s_p50"],
        "usd_per_query": per_query["usd"],
        "usd_per_correct_answer": ledger["per_correct_answer"].get("usd"),
        "co2_g_per_query": _grams(per_query["co2_kg"]),
        "co2_operational_g_per_query": _grams(per_query["co2_operational_kg"]),
        "unknown": dict(per_query["unknown"]),
    }


def _grams(kg: float | None) -> float | None:
    return None if kg is None else kg * 1000.0
