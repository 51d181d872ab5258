"""Typed rows from the packaged YAML tables, with user overrides and errors that name the row.

Every table (hardware, grid, API prices) is a top-level list of mappings; each mapping becomes one
dataclass instance keyed by its lower-case ``name``. ``overrides`` update rows in part or add rows.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")

# Fields whose value must come from a closed list, whatever the table.
CHOICES = {"kind": ("cpu", "gpu", "tpu", "accelerator"), "basis": ("location", "market")}


class CostingConfigError(ValueError):
    """A name, data file or setting supplied by the user is wrong; the message says which."""


def load_table(
    cls: type[T], path: Path, list_key: str, overrides: Mapping[str, Mapping[str, Any]] | None
) -> dict[str, T]:
    """Rows of ``path``'s ``list_key`` list as ``cls`` instances keyed by lower-case name."""
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
        item = build_row(cls, row, where)
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
        item = build_row(cls, {**base, **changes, "name": base["name"]}, where)
        table[item.name.lower()] = item
    return table


def lookup(table: Mapping[str, T], name: str, what: str, where: str = "") -> T:
    """The row called ``name`` (any case), or an error listing the valid names."""
    if isinstance(name, str) and name.lower() in table:
        return table[name.lower()]
    source = f" in {where}" if where else ""
    raise CostingConfigError(
        f"unknown {what} {name!r}{source}; valid names: {', '.join(sorted(table))}"
    )


def build_row(cls: type[T], row: Any, where: str) -> T:
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
        missing = (
            spec.default is dataclasses.MISSING and spec.default_factory is dataclasses.MISSING
        )
        if name not in row and missing:
            raise CostingConfigError(f"{label}: missing field {name!r}")
        if name in row:
            values[name] = check_value(row[name], hints[name], f"{label}: field {name!r}")
        if name in CHOICES and name in values and values[name] not in CHOICES[name]:
            choices = ", ".join(CHOICES[name])
            raise CostingConfigError(
                f"{label}: field {name!r} must be one of {choices}, got {values[name]!r}"
            )
    try:
        return cls(**values)
    except ValueError as err:  # a row's own __post_init__ check
        raise CostingConfigError(f"{label}: {err}") from err


def check_value(value: Any, hint: Any, label: str) -> Any:
    allowed = typing.get_args(hint) or (hint,)
    numeric = int in allowed or float in allowed
    if value is None:
        if type(None) in allowed:
            return None
        raise CostingConfigError(f"{label} is required, got null")
    if str in allowed and isinstance(value, dt.date):  # YAML reads 2024-06-01 as a date
        return value.isoformat()
    if isinstance(value, str):
        if str in allowed:
            return value
        raise CostingConfigError(f"{label} must be a number, got {value!r}")
    if not numeric:
        raise CostingConfigError(f"{label} must be a string, got {value!r}")
    wants_int = int in allowed and float not in allowed
    if isinstance(value, bool) or not isinstance(value, int if wants_int else (int, float)):
        kind = "an integer" if wants_int else "a number"
        raise CostingConfigError(f"{label} must be {kind}, got {value!r}")
    if not math.isfinite(value) or value < 0:
        raise CostingConfigError(f"{label} must be finite and >= 0, got {value!r}")
    return value if wants_int else float(value)
