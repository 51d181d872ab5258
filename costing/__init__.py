"""Costing: FLOPs, device-hours, energy, CO2 and money from measured times and token counts.

Imports nothing from the rest of the project and no ML library; data rows live in
``costing/data/*.yaml`` with a source per row.
"""

from costing.catalog import (
    CostingConfigError,
    GridIntensity,
    Hardware,
    find_hardware,
    find_region,
    load_grid_intensity,
    load_hardware_catalog,
)
from costing.estimate import break_even_queries, compare_break_even, cost_arm, cost_stage
from costing.types import ArmCost, CostSettings, StageCost

__all__ = [
    "ArmCost",
    "CostSettings",
    "CostingConfigError",
    "GridIntensity",
    "Hardware",
    "StageCost",
    "break_even_queries",
    "compare_break_even",
    "cost_arm",
    "cost_stage",
    "find_hardware",
    "find_region",
    "load_grid_intensity",
    "load_hardware_catalog",
]
