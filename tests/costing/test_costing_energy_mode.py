"""codecarbon's TDP fallback is labelled an estimate, with the mode it used recorded."""

from __future__ import annotations

import pytest

from costing import EnergyMeter
from tests.costing.test_costing_energy import CPU, FakeTracker


class GPU:
    """Stands for codecarbon's NVML-read GPU component."""


class RAM:
    """Stands for codecarbon's RAM component (power modelled from memory size)."""


def reading(hardware):
    meter = EnergyMeter("train", "FRA", tracker_factory=lambda **k: FakeTracker(hardware=hardware))
    with meter:
        pass
    return meter.result


@pytest.mark.parametrize("cpu_mode", ["constant", "cpu_load"])
def test_tdp_model_is_an_estimate_with_its_mode(cpu_mode):
    result = reading([RAM(), CPU(cpu_mode)])
    assert result.status == "estimated" and result.energy_kwh == 0.002
    assert result.mode == f"RAM: estimated from memory size; CPU: {cpu_mode}"
    assert "TDP" in result.reason


@pytest.mark.parametrize(
    ("hardware", "mode"),
    [
        ([CPU("intel_rapl")], "CPU: intel_rapl"),
        ([CPU("constant"), GPU()], "CPU: constant; GPU: nvml"),
    ],
)
def test_sensor_readings_are_measured(hardware, mode):
    result = reading(hardware)
    assert (result.status, result.mode, result.reason) == ("measured", mode, None)


def test_no_component_information_is_not_called_measured():
    assert reading([]).status == "estimated"


def test_real_codecarbon_on_this_machine_reports_its_mode():
    pytest.importorskip("codecarbon")
    meter = EnergyMeter("stage", "FRA", measure_power_secs=1)
    with meter:
        sum(range(200_000))
    result = meter.result
    if result.status == "unavailable":
        pytest.skip(f"codecarbon gave no reading here: {result.reason}")
    assert result.mode and "CPU: " in result.mode
    sensed = any(m in result.mode for m in ("intel_rapl", "intel_power_gadget", "nvml"))
    assert result.status == ("measured" if sensed else "estimated")
