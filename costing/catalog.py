"""Hardware and grid-intensity catalogs, read from the packaged YAML data files.

Every row carries its own source (see ``costing/data/*.yaml``). Users add or correct rows with
``overrides`` rather than by editing the packaged files. Names are matched without regard to case.
A figure nobody publishes is null in the file and reported as unknown by every consumer.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from costing.rows import CostingConfigError, load_table, lookup

DATA_DIR = Path(__file__).parent / "data"
HARDWARE_PATH = DATA_DIR / "hardware.yaml"
GRID_PATH = DATA_DIR / "grid.yaml"

__all__ = [
    "CostingConfigError",
    "GridIntensity",
    "Hardware",
    "find_hardware",
    "find_region",
    "load_grid_intensity",
    "load_hardware_catalog",
]


@dataclass
class Hardware:
    name: str
    kind: str
    precision: str
    peak_tflops: float | None
    memory_gb: float | None
    bandwidth_tb_s: float | None
    tdp_w: float | None
    usd_per_hour: float | None
    price_date: str | None
    price_source: str | None
    source: str
    date: str
    notes: str = ""
    # Embodied-carbon inputs (LLMCarbon, arXiv:2309.14393, eq. 12 and its hardware table):
    # die area x carbon per unit area (CPA) of the process node, or a published per-device
    # manufacturing footprint, which wins when both are given.
    die_area_mm2: float | None = None
    process_node: str | None = None
    cpa_kg_per_cm2: float | None = None
    embodied_kg_co2e: float | None = None
    embodied_source: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def embodied_kg(self) -> tuple[float | None, str]:
        """Manufacturing kg CO2e of one device and how it was obtained (or why it is unknown)."""
        if self.embodied_kg_co2e is not None:
            return self.embodied_kg_co2e, "per-device figure from the catalog row"
        if self.die_area_mm2 is not None and self.cpa_kg_per_cm2 is not None:
            # mm2 -> cm2 is / 100.
            kg = self.die_area_mm2 / 100.0 * self.cpa_kg_per_cm2
            return kg, "die area x CPA (LLMCarbon method; die only, no memory, board or host)"
        return None, (
            f"hardware {self.name!r} has no embodied_kg_co2e and no die_area_mm2/cpa_kg_per_cm2 "
            "in the catalog; override the row to include embodied carbon"
        )


@dataclass
class GridIntensity:
    name: str
    g_per_kwh: float
    year: int
    basis: str  # location | market: never mix them in one figure
    source: str
    notes: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def load_hardware_catalog(
    path: Path | None = None, overrides: Mapping[str, Mapping[str, Any]] | None = None
) -> dict[str, Hardware]:
    """Hardware rows keyed by lower-case name; ``overrides`` update rows in part or add rows."""
    return load_table(Hardware, Path(path or HARDWARE_PATH), "devices", overrides)


def load_grid_intensity(
    path: Path | None = None, overrides: Mapping[str, Mapping[str, Any]] | None = None
) -> dict[str, GridIntensity]:
    """Grid rows keyed by lower-case region name; ``overrides`` work as for hardware."""
    return load_table(GridIntensity, Path(path or GRID_PATH), "regions", overrides)


def find_hardware(catalog: Mapping[str, Hardware], name: str) -> Hardware:
    return lookup(catalog, name, "hardware", "the hardware catalog")


def find_region(grid: Mapping[str, GridIntensity], name: str) -> GridIntensity:
    return lookup(grid, name, "grid region", "the grid table")
