"""A cost record whose unknown parts stay unknown, and the per-device rates that produce it.

``Cost`` holds device-hours, energy, CO2 (operational location-based, operational market-based,
embodied) and USD. A value that cannot be computed (no price, no power figure, no embodied data)
is None and ``unknown`` maps its field to the reason; sums and scalings keep it None, so a missing
input never turns into a cost of 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any

from costing import formulas

_VALUES = (
    "xpu_hours",
    "energy_kwh",
    "co2_operational_kg",
    "co2_market_kg",
    "co2_embodied_kg",
    "usd",
)


@dataclass
class Cost:
    seconds: float  # wall-clock seconds on the devices
    xpu_hours: float | None
    energy_kwh: float | None
    co2_operational_kg: float | None  # location-based grid intensity
    co2_market_kg: float | None  # operational, market-based intensity (when configured)
    co2_embodied_kg: float | None  # manufacturing share (LLMCarbon)
    usd: float | None
    unknown: dict[str, str] = field(default_factory=dict)  # field -> why it is None

    @property
    def co2_kg(self) -> float | None:
        """Operational (location-based) + embodied CO2e; unknown if either part is."""
        if self.co2_operational_kg is None or self.co2_embodied_kg is None:
            return None
        return self.co2_operational_kg + self.co2_embodied_kg

    def reason(self, name: str) -> str | None:
        if name == "co2_kg" and self.co2_kg is None:
            parts = ("co2_operational_kg", "co2_embodied_kg")
            return "; ".join(self.unknown[p] for p in parts if p in self.unknown)
        return self.unknown.get(name)

    def __add__(self, other: Cost) -> Cost:
        values = {name: _add(getattr(self, name), getattr(other, name)) for name in _VALUES}
        unknown = {**other.unknown, **self.unknown}
        return Cost(self.seconds + other.seconds, **values, unknown=_kept(unknown, values))

    def scaled(self, factor: float) -> Cost:
        factor = formulas.check_number("factor", factor)
        values = {name: _mul(getattr(self, name), factor) for name in _VALUES}
        return Cost(self.seconds * factor, **values, unknown=dict(self.unknown))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self)}
        out["co2_kg"] = self.co2_kg
        out["unknown"] = {name: self.reason(name) for name in (*_VALUES, "co2_kg")}
        out["unknown"] = {k: v for k, v in out["unknown"].items() if v and out[k] is None}
        return out

    @staticmethod
    def zero() -> Cost:
        return Cost(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)


def total(costs: list[Cost]) -> Cost:
    result = Cost.zero()
    for cost in costs:
        result = result + cost
    return result


def _add(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a + b


def _mul(a: float | None, factor: float) -> float | None:
    return None if a is None else a * factor


def _kept(unknown: dict[str, str], values: dict[str, float | None]) -> dict[str, str]:
    return {k: v for k, v in unknown.items() if values.get(k, 0.0) is None}


@dataclass(frozen=True)
class Rates:
    """What one device-hour costs on one device type; None parts carry a reason."""

    hardware: str
    devices: int
    power_w: float | None
    usd_per_hour: float | None
    pue: float
    g_per_kwh: float
    market_g_per_kwh: float | None
    embodied_kg_per_device_hour: float | None
    reasons: dict[str, str] = field(default_factory=dict)

    def cost(self, seconds: float) -> Cost:
        """Cost of holding ``devices`` devices for ``seconds`` of wall-clock time."""
        return self.cost_hours(formulas.xpu_hours(self.devices, seconds), seconds)

    def cost_hours(self, xpu_hours: float, seconds: float | None = None) -> Cost:
        """Cost of ``xpu_hours`` device-hours (e.g. modelled from FLOPs)."""
        hours = formulas.check_number("xpu_hours", xpu_hours)
        if seconds is None:
            seconds = hours * formulas.SECONDS_PER_HOUR / self.devices
        energy = None
        if self.power_w is not None:
            energy = formulas.energy_kwh(hours, self.power_w, self.pue)
        co2 = None if energy is None else formulas.co2_kg(energy, self.g_per_kwh)
        market = None
        if energy is not None and self.market_g_per_kwh is not None:
            market = formulas.co2_kg(energy, self.market_g_per_kwh)
        embodied = _mul(self.embodied_kg_per_device_hour, hours)
        usd = (
            None if self.usd_per_hour is None else formulas.usd_for_hours(hours, self.usd_per_hour)
        )
        unknown = {}
        for name, value, cause in (
            ("energy_kwh", energy, "power_w"),
            ("co2_operational_kg", co2, "power_w"),
            ("co2_market_kg", market, "market_g_per_kwh" if energy is not None else "power_w"),
            ("co2_embodied_kg", embodied, "embodied"),
            ("usd", usd, "usd_per_hour"),
        ):
            if value is None:
                unknown[name] = self.reasons.get(cause, f"{cause} unknown")
        return Cost(float(seconds), hours, energy, co2, market, embodied, usd, unknown)

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "reasons"}
        return {**out, "unknown": dict(self.reasons)}


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
