"""Costing: FLOPs, device-hours, energy, CO2 and money from measured times and token counts.

Imports nothing from the rest of the project and no ML library (codecarbon only lazily, inside
``EnergyMeter``); data rows live in ``costing/data/*.yaml`` with a source per row. The experiment
runner calls ``build_cost_report``; ``python -m costing.whatif`` estimates without an experiment.
"""

from costing.catalog import (
    GridIntensity,
    Hardware,
    find_hardware,
    find_region,
    load_grid_intensity,
    load_hardware_catalog,
)
from costing.cost import Cost, Rates
from costing.energy import EnergyMeter, MeasuredEnergy
from costing.hybrid import ArmSummary, hybrid_edge_cloud
from costing.measurement import ArmMeasurement, ModelFacts
from costing.prices import ApiPrice, api_bill, find_api_price, load_api_prices
from costing.report import build_cost_report
from costing.rows import CostingConfigError
from costing.settings import (
    EmbodiedSettings,
    FreshnessSettings,
    HybridSettings,
    ProjectionSettings,
    QoESettings,
    ReportSettings,
    TrafficSettings,
)
from costing.types import CostSettings

__all__ = [
    "ApiPrice",
    "ArmMeasurement",
    "ArmSummary",
    "Cost",
    "CostSettings",
    "CostingConfigError",
    "EmbodiedSettings",
    "EnergyMeter",
    "FreshnessSettings",
    "GridIntensity",
    "Hardware",
    "HybridSettings",
    "MeasuredEnergy",
    "ModelFacts",
    "ProjectionSettings",
    "QoESettings",
    "Rates",
    "ReportSettings",
    "TrafficSettings",
    "api_bill",
    "build_cost_report",
    "find_api_price",
    "find_hardware",
    "find_region",
    "hybrid_edge_cloud",
    "load_api_prices",
    "load_grid_intensity",
    "load_hardware_catalog",
]
