"""Measured energy: the EnergyMeter around a stage, with a stand-in for codecarbon's tracker."""

from __future__ import annotations

import subprocess
import sys

import pytest

from costing import CostingConfigError, EnergyMeter
from costing.energy import INSTALL_HINT


class CPU:
    """Stands for codecarbon's CPU component; ``_mode`` is how it read power."""

    def __init__(self, mode="intel_rapl"):
        self._mode = mode


class FakeTracker:
    """Mimics codecarbon's OfflineEmissionsTracker: start(), stop() -> kg, final_emissions_data,
    and the ``_hardware`` components it read (a RAPL-sensed CPU unless told otherwise)."""

    def __init__(self, energy_kwh=0.002, co2_kg=0.0001, fail_on=None, hardware=None, **kwargs):
        self.kwargs, self.energy, self.co2, self.fail_on = kwargs, energy_kwh, co2_kg, fail_on
        self.final_emissions_data = None
        self._hardware = [CPU()] if hardware is None else hardware

    def start(self):
        if self.fail_on == "start":
            raise RuntimeError("no power sensor")

    def stop(self):
        if self.fail_on == "stop":
            raise RuntimeError("scheduler died")
        self.final_emissions_data = type("Data", (), {"energy_consumed": self.energy})()
        return self.co2


def meter(**tracker_kwargs):
    made = []

    def factory(**kwargs):
        made.append(FakeTracker(**tracker_kwargs, **kwargs))
        return made[-1]

    return EnergyMeter("train", "fra", tracker_factory=factory), made


def test_a_reading_is_reported_with_the_tracker_settings():
    m, made = meter()
    with m:
        pass
    assert m.result.status == "measured"
    assert (m.result.energy_kwh, m.result.co2_kg) == (0.002, 0.0001)
    assert m.result.seconds >= 0 and m.result.stage == "train"
    assert made[0].kwargs["country_iso_code"] == "FRA"
    assert made[0].kwargs["output_methods"] == []  # no emissions.csv in the working directory


@pytest.mark.parametrize("energy", [0.0, None, float("nan")])
def test_zero_or_missing_reading_is_unavailable_not_zero(energy):
    m, _ = meter(energy_kwh=energy)
    with m:
        pass
    assert m.result.energy_kwh is None and m.result.co2_kg is None
    assert m.result.status == "unavailable" and "zero or missing" in m.result.reason


def test_missing_codecarbon_and_failing_trackers_are_unavailable():
    def not_installed(**kwargs):
        raise ImportError("No module named 'codecarbon'")

    m = EnergyMeter("index", "USA", tracker_factory=not_installed)
    with m:
        pass
    assert m.result.energy_kwh is None and m.result.reason == INSTALL_HINT
    for stage in ("start", "stop"):
        m, _ = meter(fail_on=stage)
        with m:
            pass
        assert m.result.energy_kwh is None and "codecarbon" in m.result.reason
        assert m.result.status == "unavailable"


def test_the_measured_code_keeps_its_own_exception():
    m, _ = meter()
    with pytest.raises(KeyError):
        with m:
            raise KeyError("boom")
    assert m.result.status == "measured"  # the stage's energy was still read


def test_country_code_is_checked():
    with pytest.raises(CostingConfigError, match="3-letter ISO 3166"):
        EnergyMeter("train", "world")


def test_no_ml_library_or_codecarbon_is_imported_eagerly():
    code = (
        "import sys, costing, costing.whatif, costing.report; "
        "bad = {'rag', 'finetune', 'evaluate', 'torch', 'transformers', 'numpy', 'mlflow', "
        "'codecarbon', 'pandas'}; print(sorted(bad & {m.split('.')[0] for m in sys.modules}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_energy_settings_choose_the_country_code():
    from costing.settings import EnergySettings

    assert EnergySettings().country_for("fra") == "FRA"
    assert EnergySettings().country_for("world") is None  # codecarbon needs a country
    assert EnergySettings(country_iso_code="deu").country_for("world") == "DEU"
    with pytest.raises(CostingConfigError, match=r"costing\.energy\.country_iso_code"):
        EnergySettings(country_iso_code="France")
    with pytest.raises(CostingConfigError, match=r"costing\.energy\.measure"):
        EnergySettings(measure="yes")
