"""Measured energy of a stage with codecarbon, when it is installed (the optional ``energy`` extra).

    with EnergyMeter("train", country_iso_code="FRA") as meter:
        train()
    meter.result.energy_kwh   # kWh, or None when no reading was available

codecarbon is imported lazily, only inside the meter. A missing package, a tracker that fails, or
a reading of zero or nothing all give ``energy_kwh = None`` with ``status = "unavailable"`` and the
reason: a stage whose energy was not measured is never reported as using 0 kWh. Errors of the
measured code itself are never swallowed.

A reading is ``"measured"`` only when codecarbon read a power sensor: Intel RAPL or Power Gadget or
Windows EMI for the CPU, NVML for NVIDIA GPUs, powermetrics on Apple silicon. Without one
(containers, most VMs, AMD without RAPL access) codecarbon models CPU power from its TDP table,
as a constant share of TDP or scaled by CPU load: such a reading has ``status = "estimated"``.
``mode`` records what codecarbon used, e.g. ``"CPU: cpu_load; RAM: estimated"``.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from costing.rows import CostingConfigError

logger = logging.getLogger(__name__)

INSTALL_HINT = "codecarbon is not installed (pip install 'ragtune-bench[energy]')"


@dataclass
class MeasuredEnergy:
    stage: str
    seconds: float
    energy_kwh: float | None  # what codecarbon measured (CPU, GPU, RAM), PUE applied
    co2_kg: float | None  # codecarbon's own estimate from its grid data for the country
    status: str  # "measured" (power sensors) | "estimated" (codecarbon's TDP model) | "unavailable"
    reason: str | None = None
    mode: str | None = None  # codecarbon's source per component, e.g. "CPU: constant; RAM: ..."

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _codecarbon_factory(**kwargs: Any) -> Any:
    from codecarbon import OfflineEmissionsTracker  # optional dependency, imported on use

    return OfflineEmissionsTracker(**kwargs)


class EnergyMeter:
    """Context manager measuring one stage; one meter per stage (a tracker runs once)."""

    def __init__(
        self,
        stage: str,
        country_iso_code: str,
        *,
        pue: float = 1.0,
        measure_power_secs: float = 1.0,
        tracker_factory: Callable[..., Any] | None = None,
    ) -> None:
        code = country_iso_code
        if not (isinstance(code, str) and len(code) == 3 and code.isalpha()):
            raise CostingConfigError(
                f"country_iso_code must be a 3-letter ISO 3166 code such as 'FRA', got {code!r}"
            )
        self.stage = stage
        self._kwargs = {
            "country_iso_code": code.upper(),
            "pue": pue,
            "measure_power_secs": measure_power_secs,
            "output_methods": [],  # keep the reading in memory: no emissions.csv
            "log_level": "error",
            "allow_multiple_runs": True,
        }
        self._factory = tracker_factory or _codecarbon_factory
        self._tracker: Any = None
        self._reason: str | None = None
        self._started = 0.0
        self.result: MeasuredEnergy | None = None

    def __enter__(self) -> EnergyMeter:
        try:
            self._tracker = self._factory(**self._kwargs)
            self._tracker.start()
        except ImportError:
            self._tracker, self._reason = None, INSTALL_HINT
        except Exception as err:  # a measuring tool must not break the experiment
            logger.warning("energy measurement of %r unavailable: %s", self.stage, err)
            self._tracker, self._reason = None, f"codecarbon could not start: {err}"
        self._started = time.perf_counter()  # after the tracker's own start-up time
        return self

    def __exit__(self, *exc_info: Any) -> bool:
        seconds = time.perf_counter() - self._started
        energy = co2 = None
        reason = self._reason
        if self._tracker is not None:
            try:
                co2 = self._tracker.stop()
                data = getattr(self._tracker, "final_emissions_data", None)
                energy = getattr(data, "energy_consumed", None)
            except Exception as err:
                logger.warning("energy measurement of %r failed: %s", self.stage, err)
                reason = f"codecarbon failed while stopping: {err}"
        if not _positive(energy):
            energy, co2 = None, None
            reason = reason or "codecarbon reported no energy (zero or missing reading)"
        elif not _positive(co2):
            co2 = None
        mode, sensed = codecarbon_mode(self._tracker)
        status = "unavailable" if energy is None else "measured" if sensed else "estimated"
        if status == "estimated":
            reason = reason or (
                "no power sensor readable: codecarbon estimated CPU power from its TDP table "
                f"({mode})"
            )
        self.result = MeasuredEnergy(self.stage, seconds, energy, co2, status, reason, mode)
        return False  # never hide the measured code's own exception


# codecarbon 3.3 (codecarbon/external/hardware.py): CPU modes that read a sensor; "constant"
# (a share of TDP) and "cpu_load" (TDP scaled by load) are models, not measurements.
SENSOR_CPU_MODES = {"intel_rapl", "intel_power_gadget", "windows_emi"}
SENSOR_COMPONENTS = {"GPU": "nvml", "AppleSiliconChip": "powermetrics"}


def codecarbon_mode(tracker: Any) -> tuple[str | None, bool]:
    """What the tracker read each component with, and whether the CPU (or chip) was sensed."""
    hardware = getattr(tracker, "_hardware", None) or []
    parts, sensed = [], False
    for item in hardware:
        kind = type(item).__name__
        if kind == "CPU":
            cpu_mode = str(getattr(item, "_mode", "unknown"))
            sensed = sensed or cpu_mode in SENSOR_CPU_MODES
            parts.append(f"CPU: {cpu_mode}")
        elif kind in SENSOR_COMPONENTS:
            sensed = True
            parts.append(f"{kind}: {SENSOR_COMPONENTS[kind]}")
        elif kind == "RAM":
            parts.append("RAM: estimated from memory size")
        else:
            parts.append(f"{kind}: unknown")
    return ("; ".join(parts) or None), sensed


def _positive(value: Any) -> bool:
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value > 0
    )
