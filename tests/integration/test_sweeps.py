"""Sweeps through Hydra's launcher and sweeper plugins: joblib, submitit (local executor), Optuna,
and the shipped SLURM and Ray launcher configs."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml
from hydra import compose, initialize_config_dir

from evaluate.cli import CONF_DIR
from tests.helpers.mlflow_runs import sweep_runs
from tests.helpers.ragtune_cli import ragtune

pytestmark = [
    pytest.mark.integration,
    # evaluate.cli silences this for the shipped same-named launcher files; pytest resets filters
    pytest.mark.filterwarnings("ignore:\\s*'hydra/launcher/.*ConfigStore schema:UserWarning"),
]

TINY_JOB = [
    "experiment=smoke",
    "eval.arms=[closed_book]",
    "eval.throughput_batch_size=0",
    "qa.max_eval_questions=2",
]


def run_sweep(cwd: Path, *overrides: str) -> subprocess.CompletedProcess:
    # Jobs run in other processes (loky workers, submitit subprocesses): they inherit this
    # environment, so the offline switches and the cache folder must be set here.
    return ragtune(cwd, "--multirun", *overrides, env={"HF_HUB_OFFLINE": "1"})


def hydra_node(*overrides: str):
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides), return_hydra_config=True)


def test_launcher_and_sweeper_configs_compose_with_their_documented_values():
    joblib = hydra_node("hydra/launcher=joblib").hydra.launcher
    assert joblib._target_.endswith("JoblibLauncher") and joblib.n_jobs == 2
    local = hydra_node("hydra/launcher=submitit_local").hydra.launcher
    assert local._target_.endswith("submitit_launcher.LocalLauncher")
    slurm = hydra_node("hydra/launcher=submitit_slurm", "hydra.launcher.partition=gpu")
    launcher = slurm.hydra.launcher
    assert launcher._target_.endswith("submitit_launcher.SlurmLauncher")
    assert (launcher.partition, launcher.gpus_per_node, launcher.timeout_min) == ("gpu", 1, 120)
    assert "???" not in yaml.safe_dump(
        yaml.safe_load((Path(CONF_DIR) / "hydra/launcher/submitit_slurm.yaml").read_text())
    )
    ray = hydra_node("hydra/launcher=ray").hydra.launcher  # composes without ray installed
    assert ray._target_ == "hydra_plugins.ragtune_ray_launcher.ray_launcher.RagtuneRayLauncher"
    assert ray.ray.init.address is None and ray.ray.remote.num_gpus == 0
    optuna = hydra_node("hydra/sweeper=optuna_tpe").hydra.sweeper
    assert optuna._target_.endswith("OptunaSweeper")
    assert optuna.sampler._target_ == "optuna.samplers.TPESampler"
    assert str(optuna.direction) in ("maximize", "Direction.maximize")
    assert set(optuna.params) == {"retriever.top_k", "finetune.rank", "finetune.learning_rate"}


def test_optuna_trials_run_in_parallel_on_joblib_as_one_parent_with_two_children(tmp_path):
    """Two Optuna trials launched together on the joblib launcher: one MLflow parent, two
    children whose runs overlap in time, and the best returned objective in Hydra's file."""
    proc = run_sweep(
        tmp_path,
        "hydra/launcher=joblib",
        "hydra/sweeper=optuna_tpe",
        "hydra.sweeper.n_trials=2",
        "hydra.sweeper.n_jobs=2",
        "hydra.sweeper.params=null",
        "generator.max_new_tokens=choice(3,5)",
        "objective.cost_weight_per_usd=1000",
        *TINY_JOB,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "cost estimate before running" in proc.stdout
    parent, children, _ = sweep_runs(tmp_path)
    assert parent.info.status == "FINISHED"
    assert all(r.data.tags["kind"] == "job" for r in children)
    assert len(children) == 2 and all(r.info.status == "FINISHED" for r in children)
    assert {r.data.params["generator.max_new_tokens"] for r in children} <= {"3", "5"}
    starts = [r.info.start_time for r in children]
    ends = [r.info.end_time for r in children]
    assert max(starts) < min(ends), "the two jobs did not run at the same time"

    (sweep_dir,) = (tmp_path / "multirun" / "smoke").iterdir()
    objectives = []
    for path in sorted(sweep_dir.glob("*/results.json")):
        arm = json.loads(path.read_text())["arms"]["closed_book"]
        usd = arm["cost"]["per_1k_queries"]["usd"]
        objectives.append(arm["accuracy"]["contains"] - 1000 * usd)
    assert len(objectives) == 2
    best = yaml.safe_load((sweep_dir / "optimization_results.yaml").read_text())
    assert best["best_value"] == pytest.approx(max(objectives))
    assert best["best_value"] < 0  # the cost term is in it


def test_submitit_local_executor_runs_a_sweep_job(tmp_path):
    proc = run_sweep(
        tmp_path,
        "hydra/launcher=submitit_local",
        "tracking=none",
        "generator.max_new_tokens=3",
        *TINY_JOB,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (sweep_dir,) = (tmp_path / "multirun" / "smoke").iterdir()
    results = json.loads((sweep_dir / "0" / "results.json").read_text())
    assert results["arms"]["closed_book"]["accuracy"]["questions"] == 2
    assert results["config"]["generator"]["max_new_tokens"] == 3
    # submitit's own record of the job, in a folder named after its job id (here: the pid)
    (job_folder,) = [p for p in (sweep_dir / ".submitit").iterdir() if p.name.isdigit()]
    assert list(job_folder.glob("*_result.pkl")) and list(job_folder.glob("*_log.out"))


def test_a_failing_job_fails_the_parent_and_the_sweep_file_holds_no_secret(tmp_path):
    """The second job cannot train its index: the sweep stops with the error, the parent run is
    closed FAILED (not left RUNNING), and multirun.yaml has the planted key redacted."""
    from mlflow.tracking import MlflowClient

    planted = "sk-PLANTEDsweep0123456789abcdef"
    proc = run_sweep(
        tmp_path,
        "experiment=smoke",
        "eval.throughput_batch_size=0",
        "qa.max_eval_questions=2",
        "eval.arms=[rag]",
        f"+tracking.tags.api_key={planted}",
        "retriever.index_factory=Flat,'IVF4096,Flat'",
    )
    assert proc.returncode != 0
    assert "IVF4096" in proc.stderr + proc.stdout
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("smoke").experiment_id])
    (parent,) = [r for r in runs if r.data.tags.get("kind") == "sweep"]
    assert parent.info.status == "FAILED"
    children = {
        r.data.params["retriever.index_factory"]: r.info.status
        for r in runs
        if r.data.tags["kind"] == "job"
    }
    assert children == {"Flat": "FINISHED", "IVF4096,Flat": "FAILED"}
    (multirun,) = (tmp_path / "multirun").rglob("multirun.yaml")
    text = multirun.read_text()
    assert planted not in text and "REDACTED" in text
