"""Costing: formulas against published worked examples, catalogs, arm costs and break-even."""

from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal

import pytest

from costing import (
    CostingConfigError,
    CostSettings,
    ReportSettings,
    find_hardware,
    load_grid_intensity,
    load_hardware_catalog,
)
from costing import formulas as f
from costing.breakeven import break_even_pair
from costing.cost import Cost
from costing.rates import measuring_rates


def rates(settings: CostSettings):
    """The measuring device's rates: the one path every cost of a run goes through."""
    return measuring_rates(settings, ReportSettings())


SECONDS_PER_DAY = 86_400


# Patterson et al. 2021 (arXiv:2104.10350), Table 4, GPT-3 column.
def test_patterson_gpt3_energy_and_co2_from_wall_clock():
    gpu_hours = f.xpu_hours(10_000, 14.8 * SECONDS_PER_DAY)
    assert gpu_hours == pytest.approx(3_552_000)
    energy = f.energy_kwh(gpu_hours, power_w=330, pue=1.1)
    assert energy / 1000 == pytest.approx(1_289, rel=0.005)  # MWh; published 1,287
    assert energy / 1000 == pytest.approx(1_287, rel=0.005)
    co2_t = f.co2_kg(energy, g_per_kwh=429) / 1000
    assert co2_t == pytest.approx(553, rel=0.005)  # published 552.1
    assert co2_t == pytest.approx(552.1, rel=0.005)


def test_patterson_gpt3_days_from_flops():
    gpu_hours = f.hours_from_flops(3.14e23, peak_flops_per_s=125e12, utilization=24.6 / 125)
    assert gpu_hours / 10_000 / 24 == pytest.approx(14.77, abs=0.01)


def test_patterson_gpt3_through_catalog_rows():
    settings = CostSettings(
        hardware="v100", devices=10_000, power_w=330, pue=1.1, region="gpt3-datacenter"
    )
    train = rates(settings).cost(14.8 * SECONDS_PER_DAY)
    assert train.xpu_hours == pytest.approx(3_552_000)
    assert train.energy_kwh == pytest.approx(1_287_000, rel=0.005)  # published 1,287 MWh
    assert train.co2_operational_kg == pytest.approx(552_100, rel=0.005)  # published 552.1 t


def test_flop_counts():
    assert f.forward_flops(1e9, 1e6) == 2e15
    assert f.training_flops_dense(1e9, 1e6) == 6e15
    assert f.lora_training_flops(1e9, 1e7, 1e6) == pytest.approx((4e9 + 2e7) * 1e6)
    assert f.lora_training_flops(1e9, 1e9, 1e6) == pytest.approx(f.training_flops_dense(1e9, 1e6))
    with pytest.raises(ValueError, match="n_trainable_params"):
        f.lora_training_flops(1e6, 2e6, 10)


def test_usd_per_1m_tokens_hand_computed():
    # $2/h at 50 tok/s: 180,000 tokens per hour -> 2 / 180,000 * 1e6 = 11.111... USD
    assert f.usd_per_1m_tokens(2.0, 50.0) == pytest.approx(100 / 9)
    assert f.usd_per_1m_tokens(3.6, 1.0) == pytest.approx(1000.0)
    with pytest.raises(ValueError, match="tokens_per_s"):
        f.usd_per_1m_tokens(2.0, 0.0)


def test_api_cost_is_exact_decimal():
    # GPT-4o at 5 / 15 USD per 1M tokens: 1,234 * 5e-6 + 567 * 15e-6 = 0.00617 + 0.008505
    cost = f.api_cost_usd(1_234, 567, "5", "15")
    assert isinstance(cost, Decimal)
    assert cost == Decimal("0.014675")
    # GPT-4o-mini 0.15 / 0.60: floats go through their repr, so no binary residue.
    assert f.api_cost_usd(1, 1, 0.15, 0.60) == Decimal("0.00000075")
    assert sum(f.api_cost_usd(1, 0, Decimal("0.1"), "0") for _ in range(3)) == Decimal("3E-7")
    with pytest.raises(ValueError, match="usd_per_1m_input"):
        f.api_cost_usd(1, 1, "five", "15")
    with pytest.raises(ValueError, match="output_tokens"):
        f.api_cost_usd(1, -1, "5", "15")


@pytest.mark.parametrize(
    ("call", "argument"),
    [
        (lambda: f.xpu_hours(1, -1.0), "seconds"),
        (lambda: f.xpu_hours(0, 1.0), "devices"),
        (lambda: f.energy_kwh(1.0, 300, pue=0.99), "pue"),
        (lambda: f.energy_kwh(1.0, float("nan")), "power_w"),
        (lambda: f.co2_kg(1.0, -5), "g_per_kwh"),
        (lambda: f.hours_from_flops(1e20, 1e12, 0.0), "utilization"),
        (lambda: f.hours_from_flops(1e20, 1e12, 1.5), "utilization"),
        (lambda: f.hours_from_flops(1e20, 0.0, 0.5), "peak_flops_per_s"),
    ],
)
def test_bad_values_name_the_argument(call, argument):
    with pytest.raises(ValueError, match=argument):
        call()


def test_break_even_crossing_and_never():
    # a: 100 up front, 0.01 per query; b: nothing up front, 0.05 per query -> 100 / 0.04.
    a = (Cost(0.0, 0.0, 0.0, 0.0, None, 0.0, 100.0), Cost(0.0, 0.0, 0.0, 0.0, None, 0.0, 0.01))
    b = (Cost(0.0, 0.0, 0.0, 0.0, None, 0.0, 0.0), Cost(0.0, 0.0, 0.0, 0.0, None, 0.0, 0.05))
    n = break_even_pair("a", a, "b", b, "usd", queries_per_day=0.0)["break_even_queries"]
    assert n == pytest.approx(2500.0)
    assert 100.0 + n * 0.01 == pytest.approx(0.0 + n * 0.05)
    dear = (a[0], Cost(0.0, 0.0, 0.0, 0.0, None, 0.0, 0.06))  # dearer up front and per query
    assert break_even_pair("a", dear, "b", b, "usd", 0.0)["verdict"] == "never"


def test_break_even_between_a_training_arm_and_a_retrieval_arm():
    r = rates(CostSettings(usd_per_hour=3.6, g_per_kwh=0.0))
    # Fine-tune arm: one hour of training, then 1 s queries; RAG arm: 1 min index, 3 s queries.
    finetune = (r.cost(3600.0), r.cost(1.0))
    rag = (r.cost(60.0), r.cost(3.0))
    row = break_even_pair("finetune", finetune, "rag", rag, "usd", queries_per_day=100.0)
    # (3.6 - 0.06) USD / (0.003 - 0.001) USD per query = 1770 queries, 17.7 days at 100/day
    assert row["investor"] == "finetune" and row["verdict"] == "crossing"
    assert row["break_even_queries"] == pytest.approx(1770.0)
    assert row["break_even_days"] == pytest.approx(17.7)
    json.dumps(row, allow_nan=False)


def test_costs_sum_and_scale():
    r = rates(
        CostSettings(
            hardware="l4", devices=2, power_w=100, usd_per_hour=3.6, pue=1.5, g_per_kwh=500
        )
    )
    total = r.cost(600.0) + r.cost(3000.0)
    assert total.seconds == 3600.0
    assert total.xpu_hours == pytest.approx(2.0)  # 2 devices x 1 h
    assert total.energy_kwh == pytest.approx(0.3)  # 2 h x 0.1 kW x 1.5
    assert total.co2_operational_kg == pytest.approx(0.15)  # 0.3 kWh x 500 g/kWh
    assert total.usd == pytest.approx(7.2)
    per_query = r.cost(2.0)
    assert per_query.usd == pytest.approx(0.004)  # 2 devices x 2 s x 3.6 USD/h
    assert per_query.scaled(1000).usd == pytest.approx(4.0)


def test_costs_use_catalog_and_grid_rows_by_default():
    catalog, grid = load_hardware_catalog(), load_grid_intensity()
    cpu, world = catalog["cpu-2core"], grid["world"].g_per_kwh
    hour = rates(CostSettings()).cost(3600.0)
    assert hour.energy_kwh == pytest.approx(cpu.tdp_w / 1000)
    assert hour.co2_operational_kg == pytest.approx(cpu.tdp_w / 1000 * world / 1000)
    assert hour.usd == pytest.approx(cpu.usd_per_hour)


def test_unknown_names_list_the_valid_ones():
    with pytest.raises(CostingConfigError, match=r"'a100'.*a100-40gb.*v100") as err:
        rates(CostSettings(hardware="a100"))
    assert isinstance(err.value, ValueError)
    with pytest.raises(CostingConfigError, match=r"'mars'.*fra.*world"):
        rates(CostSettings(region="mars"))
    assert find_hardware(load_hardware_catalog(), "H100-SXM").name == "h100-sxm"


@pytest.mark.parametrize(
    ("field", "value"),
    [("devices", 0), ("pue", 0.9), ("power_w", 0.0), ("usd_per_hour", -1.0), ("hardware", "")],
)
def test_settings_reject_bad_values(field, value):
    with pytest.raises(CostingConfigError, match=field):
        CostSettings(**{field: value})


def test_missing_price_is_unknown_with_a_reason_and_settings_fill_it():
    hour = rates(CostSettings(hardware="h200")).cost(3600.0)
    assert hour.usd is None and "'h200' has no usd_per_hour" in hour.unknown["usd"]
    assert rates(CostSettings(hardware="h200", usd_per_hour=10.0)).cost(3600.0).usd == 10.0


def test_overrides_update_rows_partially_and_add_rows():
    new_row = {
        "kind": "gpu",
        "precision": "bf16 tensor (dense)",
        "peak_tflops": 100,
        "memory_gb": 48,
        "bandwidth_tb_s": 1.0,
        "tdp_w": 250,
        "usd_per_hour": 1.5,
        "price_date": "2026-01",
        "price_source": "quote",
        "source": "vendor datasheet",
        "date": "2025-01",
    }
    catalog = load_hardware_catalog(overrides={"V100": {"tdp_w": 250}, "my-gpu": new_row})
    assert catalog["v100"].tdp_w == 250.0
    assert catalog["v100"].peak_tflops == 125.0  # untouched fields stay
    assert catalog["my-gpu"].usd_per_hour == 1.5
    assert load_hardware_catalog()["v100"].tdp_w == 300.0  # the packaged file is unchanged
    settings = CostSettings(hardware="my-gpu", g_per_kwh=100.0)
    stage = measuring_rates(settings, ReportSettings(), catalog=catalog).cost(3600.0)
    assert stage.energy_kwh == pytest.approx(0.25)
    assert stage.co2_operational_kg == pytest.approx(0.025)
    grid = load_grid_intensity(overrides={"fra": {"g_per_kwh": 40, "year": 2025}})
    assert (grid["fra"].g_per_kwh, grid["fra"].year, grid["fra"].basis) == (40.0, 2025, "location")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"v100": {"tdp_watts": 1}}, "unknown field 'tdp_watts'"),
        ({"v100": {"tdp_w": "lots"}}, "field 'tdp_w' must be a number"),
        ({"v100": {"kind": "fpga"}}, "field 'kind' must be one of"),
        ({"new": {"kind": "gpu"}}, "missing field 'precision'"),
    ],
)
def test_bad_overrides_name_the_field(overrides, message):
    with pytest.raises(CostingConfigError, match=message):
        load_hardware_catalog(overrides=overrides)


def test_malformed_data_file_names_path_and_field(tmp_path):
    path = tmp_path / "grid.yaml"
    path.write_text(
        "regions:\n  - {name: x, g_per_kwh: -3, year: 2024, basis: location, source: s}\n"
    )
    with pytest.raises(CostingConfigError, match=r"grid\.yaml.*regions\[0\].*'g_per_kwh'"):
        load_grid_intensity(path)
    path.write_text("devices: [\n")
    with pytest.raises(CostingConfigError, match=r"grid\.yaml: not valid YAML"):
        load_grid_intensity(path)
    path.write_text("rows: []\n")
    with pytest.raises(CostingConfigError, match="'regions:'"):
        load_grid_intensity(path)
    with pytest.raises(CostingConfigError, match="cannot read"):
        load_grid_intensity(tmp_path / "missing.yaml")


def test_every_catalog_row_carries_its_sources():
    catalog = load_hardware_catalog()
    assert {"cpu-2core", "v100", "a100-80gb", "h100-sxm", "h200"} <= set(catalog)
    for row in catalog.values():
        assert row.source.strip() and row.date and row.precision, row.name
        assert row.price_source and row.price_source.strip(), row.name
        assert (row.usd_per_hour is None) == (row.price_date is None), row.name
    for row in load_grid_intensity().values():
        assert row.source.strip() and row.year >= 2000 and row.basis == "location", row.name


def test_catalog_figures_match_the_datasheets():
    catalog = load_hardware_catalog()
    figures = {
        name: (r.peak_tflops, r.memory_gb, r.bandwidth_tb_s, r.tdp_w) for name, r in catalog.items()
    }
    assert figures["v100"] == (125, 32, 0.9, 300)
    assert figures["a100-80gb"] == (312, 80, pytest.approx(2.04, abs=0.001), 400)
    assert figures["h100-sxm"] == (989, 80, 3.35, 700)
    assert figures["h200"] == (989, 141, 4.8, 700)
    cpu = catalog["cpu-2core"]  # 2 cores x 2.45 GHz x 32 FLOP/cycle; 280 W / 64 cores x 2
    assert cpu.peak_tflops == pytest.approx(2 * 2.45 * 32 / 1000)
    assert cpu.tdp_w == pytest.approx(280 / 64 * 2)
    grid = load_grid_intensity()
    assert (grid["fra"].g_per_kwh, grid["usa"].g_per_kwh) == (56.039, 369.473)


def test_costing_imports_no_project_package_or_ml_library():
    code = (
        "import sys, costing, costing.report, costing.whatif; "
        "bad = {'rag', 'finetune', 'evaluate', 'torch', 'transformers', 'numpy', 'mlflow'}; "
        "print(sorted(bad & {m.split('.')[0] for m in sys.modules}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
