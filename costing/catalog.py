"""Hardware and grid-intensity catalogs, read from the packaged YAML data files.

Every row carries its own source (see ``costing/data/*.yaml``). Users add or correct rows with
``overrides`` rather than by editing the packaged files. Names are matched without regard to case.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml

DATA_DIR = Path(__file__).parent / "data"
HARDWARE_PATH = DATA_DIR / "hardware.yaml"
GRID_PATH = DATA_DIR / "grid.yaml"

_CHOICES = {"kind": ("cpu", "gpu", "tpu"), "basis": ("location", "market")}


class CostingConfigError(ValueError):
    """A name, data file or setting supplied by the user is wrong; the message says which."""


@dataclass
class Hardware:
    name: str
    kind: str
    precision: str
    peak_tflops: float
    memory_gb: float
    bandwidth_tb_s: float
    tdp_w: float
    usd_per_hour: float | None
    price_date: str | None
    price_source: str | None
    source: str
    date: str
    notes: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class GridIntensity:
    name: str
    g_per_kwh: float
    year: int
    basis: str
    source: str
    notes: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


T = TypeVar("T", Hardware, GridIntensity)


def load_hardware_catalog(
    path: Path | None = None, overrides: Mapping[str, Mapping[str, Any]] | None = None
) -> dict[str, Hardware]:
    """Hardware rows keyed by lower-case name; ``overrides`` update rows in part or add rows."""
    return _load_table(Hardware, Path(path or HARDWARE_PATH), "devices", overrides)


def load_grid_intensity(
    path: Path | None = None, overrides: Mapping[str, Mapping[str, Any]] | None = None
) -> dict[str, GridIntensity]:
    """Grid rows keyed by lower-case region name; ``overrides`` work as for hardware."""
    return _load_table(GridIntensity, Path(path or GRID_PATH), "regions", overrides)


def find_hardware(catalog: Mapping[str, Hardware], name: str) -> Hardware:
    return _lookup(catalog, name, "hardware")


def find_region(grid: Mapping[str, GridIntensity], name: str) -> GridIntensity:
    return _lookup(grid, name, "grid region")


def _lookup(table: Mapping[str, T], name: str, what: str) -> T:
    if name in table:
        return table[name]
    if isinstance(name, str) and name.lower() in table:
        return table[name.lower()]
    raise CostingConfigError(f"unknown {what} {name!r}; valid names: {', '.join(sorted(table))}")


def _load_table(
    cls: type[T], path: Path, list_key: str, overrides: Mapping[str, Mapping[str, Any]] | None
) -> dict[str, T]:
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise CostingConfigError(f"{path}: cannot read the file ({err.strerror})") from err
    except yaml.YAMLError as err:
        raise CostingConfigError(f"{path}: not valid YAML: {err}") from err
    rows = document.get(list_key) if isinstance(document, dict) else None
    if not isinstance(rows, list):
        raise CostingConfigError(f"{path}: expected a top-level '{list_key}:' list of rows")
    table: dict[str, T] = {}
    for index, row in enumerate(rows):
        where = f"{path}: {list_key}[{index}]"
        item = _build(cls, row, where)
        if item.name.lower() in table:
            raise CostingConfigError(f"{where}: duplicate name {item.name!r}")
        table[item.name.lower()] = item
    for name, changes in (overrides or {}).items():
        where = f"overrides[{name!r}]"
        if not isinstance(changes, Mapping):
            raise CostingConfigError(f"{where}: expected a mapping of field: value")
        old = table.get(str(name).lower())
        base = dataclasses.asdict(old) if old else {"name": str(name)}
        if "name" in changes and str(changes["name"]).lower() != base["name"].lower():
            raise CostingConfigError(f"{where}: field 'name' cannot rename a row")
        item = _build(cls, {**base, **changes, "name": base["name"]}, where)
        table[item.name.lower()] = item
    return table


def _build(cls: type[T], row: Any, where: str) -> T:
    if not isinstance(row, Mapping):
        raise CostingConfigError(f"{where}: expected a mapping of field: value, got {row!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    label = f"{where} ({row.get('name')!r})" if "name" in row else where
    unknown = sorted(set(row) - set(fields))
    if unknown:
        raise CostingConfigError(
            f"{label}: unknown field {unknown[0]!r}; valid: {', '.join(fields)}"
        )
    values = {}
    for name, spec in fields.items():
        if name not in row and spec.default is dataclasses.MISSING:
            raise CostingConfigError(f"{label}: missing field {name!r}")
        if name in row:
            values[name] = _check_value(row[name], hints[name], f"{label}: field {name!r}")
        if name in _CHOICES and name in values and values[name] not in _CHOICES[name]:
            choices = ", ".join(_CHOICES[name])
            raise CostingConfigError(
                f"{label}: field {name!r} must be one of {choices}, got {values[name]!r}"
            )
    return cls(**values)


def _check_value(value: Any, hint: Any, label: str) -> Any:
    allowed = typing.get_args(hint) or (hint,)
    if value is None:
        if type(None) in allowed:
            return None
        raise CostingConfigError(f"{label} is required, got null")
    if str in allowed:
        if isinstance(value, dt.date):  # YAML reads an unquoted 2024-06-01 as a date
            return value.isoformat()
        if isinstance(value, str):
            return value
        raise CostingConfigError(f"{label} must be a string, got {value!r}")
    wants_int = int in allowed and float not in allowed
    if isinstance(value, bool) or not isinstance(value, int if wants_int else (int, float)):
        kind = "an integer" if wants_int else "a number"
        raise CostingConfigError(f"{label} must be {kind}, got {value!r}")
    if not math.isfinite(value) or value < 0:
        raise CostingConfigError(f"{label} must be finite and >= 0, got {value!r}")
    return value if wants_int else float(value)
