"""Settings and result records of the costing package; ``to_dict`` gives plain JSON values."""

from __future__ import annotations

from dataclasses import dataclass

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
