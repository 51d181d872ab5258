"""Settings and result records of the costing package; ``to_dict`` gives plain JSON values."""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from costing import formulas
from costing.catalog import CostingConfigError


@dataclass
class CostSettings:
    """Filled from the ``costing`` and ``hardware`` config groups."""

    hardware: str = "cpu-2core"  # catalog row
    devices: int = 1
    power_w: float | None = None  # average draw per device; None = catalog TDP
    usd_per_hour: float | None = None  # price per device-hour; None = catalog price
    # PUE = facility energy / IT energy. A laptop or desk machine has no facility overhead (1.0).
    # Datacenters run from about 1.1 (Google fleet average, Google 2023 Environmental Report;
    # Patterson et al. 2021 used 1.1 for GPT-3) to 1.58 (industry average, Uptime Institute
    # Global Data Center Survey 2023).
    pue: float = 1.0
    region: str = "world"  # grid row
    g_per_kwh: float | None = None  # None = the grid row's location-based intensity

    def __post_init__(self) -> None:
        checks = (
            ("hardware", "a catalog name", isinstance(self.hardware, str) and self.hardware),
            ("devices", "an integer >= 1", _is_count(self.devices)),
            ("power_w", "> 0 or null", _is_number(self.power_w, 0, strict=True, optional=True)),
            ("usd_per_hour", ">= 0 or null", _is_number(self.usd_per_hour, 0, optional=True)),
            ("pue", ">= 1", _is_number(self.pue, 1)),
            ("region", "a grid region name", isinstance(self.region, str) and self.region),
            ("g_per_kwh", ">= 0 or null", _is_number(self.g_per_kwh, 0, optional=True)),
        )
        for name, rule, ok in checks:
            if not ok:
                raise CostingConfigError(f"{name} must be {rule}, got {getattr(self, name)!r}")


def _is_number(
    value: object, minimum: float, *, strict: bool = False, optional: bool = False
) -> bool:
    if value is None:
        return optional
    try:
        formulas.check_number("value", value, minimum=minimum, strict=strict)
    except ValueError:
        return False
    return True


def _is_count(value: object) -> bool:
    try:
        formulas.check_count("value", value, minimum=1)
    except ValueError:
        return False
    return True


@dataclass
class StageCost:
    seconds: float
    xpu_hours: float
    energy_kwh: float
    co2_kg: float
    usd: float

    def to_dict(self) -> dict[str, float]:
        return {f.name: float(getattr(self, f.name)) for f in fields(self)}

    def __add__(self, other: StageCost) -> StageCost:
        return StageCost(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))

    def scaled(self, factor: float) -> StageCost:
        return StageCost(*(getattr(self, f.name) * factor for f in fields(self)))


@dataclass
class ArmCost:
    one_time: dict[str, StageCost]  # stage name -> cost, e.g. {"index": ..., "train": ...}
    one_time_total: StageCost
    per_query: StageCost  # mean over the measured queries
    per_1k_queries: StageCost
    usd_per_1m_output_tokens: float | None  # serving cost only; None when no token was produced
    usd_per_1m_total_tokens: float | None  # input + output tokens
    break_even_queries_vs: dict[str, float | None] = field(default_factory=dict)
    assumptions: dict[str, float | int | str] = field(default_factory=dict)  # resolved inputs

    def to_dict(self) -> dict:
        stages = ("one_time_total", "per_query", "per_1k_queries")
        return {
            "one_time": {name: cost.to_dict() for name, cost in self.one_time.items()},
            **{name: getattr(self, name).to_dict() for name in stages},
            "usd_per_1m_output_tokens": _float_or_none(self.usd_per_1m_output_tokens),
            "usd_per_1m_total_tokens": _float_or_none(self.usd_per_1m_total_tokens),
            "break_even_queries_vs": {
                k: _float_or_none(v) for k, v in self.break_even_queries_vs.items()
            },
            "assumptions": dict(self.assumptions),
        }


def _float_or_none(value: float | None) -> float | None:
    return None if value is None else float(value)
