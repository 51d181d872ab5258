"""Budget guard and dry run: estimates from the config, a planted over-budget sweep, dry runs."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from evaluate.cli import CONF_DIR, to_config
from evaluate.config.schema import ConfigError
from evaluate.pipeline.budget import (
    ALIAS_PARAMS,
    BudgetError,
    JobEstimate,
    check_limits,
    estimate_job,
    guard,
    model_params,
    render_table,
)
from evaluate.pipeline.sweep import objective_value
from tests.helpers.ragtune_cli import ragtune


def composed(*overrides: str):
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return to_config(compose(config_name="config", overrides=["experiment=smoke", *overrides]))


def run_cli(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return ragtune(cwd, *args, timeout=300)


def test_more_epochs_cost_more_device_hours_and_only_in_training():
    one = estimate_job(composed("finetune.max_steps=-1", "finetune.epochs=1"))
    three = estimate_job(composed("finetune.max_steps=-1", "finetune.epochs=3"))
    assert three.stages_h["train"] == pytest.approx(3 * one.stages_h["train"])
    assert three.stages_h["eval"] == pytest.approx(one.stages_h["eval"])
    assert three.xpu_hours > one.xpu_hours > 0


def test_a_dearer_device_hour_costs_proportionally_more_usd_for_the_same_work():
    cheap = estimate_job(composed("hardware.usd_per_hour=1.0"))
    dear = estimate_job(composed("hardware.usd_per_hour=3.0"))
    assert dear.xpu_hours == pytest.approx(cheap.xpu_hours)
    assert dear.usd == pytest.approx(3 * cheap.usd)
    assert cheap.usd == pytest.approx(cheap.xpu_hours * 1.0)


def test_faster_hardware_needs_fewer_device_hours_and_arms_add_work():
    cpu = estimate_job(composed())
    gpu = estimate_job(composed("hardware.name=h100-sxm"))
    assert gpu.xpu_hours < cpu.xpu_hours / 100  # 989 vs 0.157 TFLOP/s, 3.35 vs 0.0064 TB/s
    closed = estimate_job(composed("eval.arms=[closed_book]"))
    assert closed.stages_h["train"] == 0 and closed.stages_h["index"] == 0
    assert closed.stages_h["eval"] < cpu.stages_h["eval"]


def test_model_size_comes_from_the_alias_table_the_weights_or_the_hub_id(tiny_model_dir):
    assert (
        model_params(composed(f"generator.model={tiny_model_dir}"))
        == (ALIAS_PARAMS["tiny-random-llama"])
    )
    assert model_params(composed("generator.model=Qwen/Qwen2.5-0.5B-Instruct")) == 500_000_000
    assert model_params(composed("generator.model=org/mystery", "budget.model_params=7")) == 7
    with pytest.raises(BudgetError, match="budget.model_params"):
        model_params(composed("generator.model=org/mystery"))


def job(name: str, usd: float | None) -> JobEstimate:
    return JobEstimate(name, f"k={name}", 1.0, usd, 0.5, {})


def test_the_limit_names_the_first_job_whose_cumulative_cost_crosses_it():
    config = composed("budget.max_usd=2.5")
    check_limits(config, [job("0", 1.0), job("1", 1.0)])  # 2.0 <= 2.5
    with pytest.raises(BudgetError, match=r"budget.max_usd=2.5 .* job 2 \(k=2\).*3 USD"):
        check_limits(config, [job("0", 1.0), job("1", 1.0), job("2", 1.0)])
    with pytest.raises(BudgetError, match="job 0 has no USD estimate"):
        check_limits(config, [job("0", None)])
    with pytest.raises(BudgetError, match="budget.max_xpu_hours=1.5 .* job 1"):
        check_limits(composed("budget.max_xpu_hours=1.5"), [job("0", 0.0), job("1", 0.0)])


def test_an_estimate_that_cannot_be_made_warns_without_a_limit_and_fails_with_one():
    def unknown():
        raise BudgetError("no size")

    shown: list[str] = []
    assert guard(composed(), unknown, shown.append) is True and shown == []
    with pytest.raises(BudgetError, match="no size"):
        guard(composed("budget.max_kg_co2=1"), unknown, shown.append)


def test_table_has_a_row_per_job_with_running_totals():
    table = render_table([job("0", 1.0), job("1", 2.0), job("2", None)]).splitlines()
    assert table[1].split()[:3] == ["job", "overrides", "xPU-h"]
    rows = [line.split() for line in table[2:]]
    assert [r[0] for r in rows] == ["0", "1", "2"]
    assert rows[1][-3:] == ["2", "3", "1"]  # cumulative xPU-h, USD, kg CO2
    assert rows[2][3] == "unknown" and rows[2][-2] == "unknown"


def test_bad_budget_and_objective_values_fail_with_the_key_named():
    with pytest.raises(ConfigError, match="budget.utilization"):
        composed("budget.utilization=0")
    with pytest.raises(ConfigError, match="budget.max_usd"):
        composed("budget.max_usd=-1")
    with pytest.raises(ConfigError, match="objective.arm='rag'.*eval.arms"):
        composed("eval.arms=[closed_book]", "objective.arm=rag")


def test_objective_is_the_metric_minus_the_weighted_cost_of_the_arm_or_the_best_arm():
    results = {
        "arms": {
            "rag": {"accuracy": {"contains": 0.8}, "cost": {"per_1k_queries": {"usd": 0.5}}},
            "finetune": {"accuracy": {"contains": 0.6}, "cost": {"per_1k_queries": {"usd": 0.0}}},
        }
    }
    assert objective_value(composed(), results) == pytest.approx(0.8)
    weighted = composed("objective.cost_weight_per_usd=0.5")
    assert objective_value(weighted, results) == pytest.approx(0.6)  # rag 0.55, finetune 0.6
    assert objective_value(composed("objective.arm=rag"), results) == pytest.approx(0.8)
    with pytest.raises(ConfigError, match="arms.rag.accuracy.f2.*'contains'"):
        objective_value(composed("objective.metric=accuracy.f2", "objective.arm=rag"), results)


def test_planted_over_budget_sweep_stops_before_its_first_job(tmp_path):
    first = estimate_job(composed("finetune.max_steps=4"))
    limit = first.usd * 1.5  # job 0 fits, job 1 (100x the training steps) does not
    proc = run_cli(
        tmp_path,
        "--multirun",
        "experiment=smoke",
        f"budget.max_usd={limit}",
        "finetune.max_steps=4,400,4000",
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 2, output[-3000:]
    assert "would be exceeded by job 1 (finetune.max_steps=400)" in output
    assert "raise budget.max_usd" in output and "Traceback" not in output
    assert len([line for line in proc.stdout.splitlines() if line[:2] in ("0 ", "1 ", "2 ")]) == 3
    assert not list(tmp_path.rglob("results.json"))
    assert not (tmp_path / "mlflow.db").exists()  # no parent run, no child run


def test_dry_run_prints_one_row_per_job_and_runs_nothing(tmp_path):
    proc = run_cli(
        tmp_path,
        "--multirun",
        "experiment=smoke",
        "budget.dry_run=true",
        "generator.max_new_tokens=3,4,5",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [line.split() for line in proc.stdout.splitlines() if line[:2] in ("0 ", "1 ", "2 ")]
    assert [r[1] for r in rows] == [f"generator.max_new_tokens={n}" for n in (3, 4, 5)]
    usd = [float(r[3]) for r in rows]
    assert usd[0] < usd[1] < usd[2]  # more new tokens, more decode time
    assert "nothing was run" in proc.stdout
    assert not list(tmp_path.rglob("results.json")) and not (tmp_path / "mlflow.db").exists()
    single = run_cli(tmp_path, "experiment=smoke", "budget.dry_run=true", "budget.max_usd=0")
    assert single.returncode == 0, single.stderr[-3000:]
    assert "over budget: budget.max_usd=0 would be exceeded by job run" in single.stdout
    assert not list(tmp_path.rglob("results.json"))
