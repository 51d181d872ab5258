"""Sweeps as Ray tasks on a real one-node Ray cluster (.ci/services/ray.sh, ``ray start
--head`` on 127.0.0.1) through hydra-ray-launcher: one MLflow parent run, one child per task."""

from __future__ import annotations

import pytest

from tests.helpers.mlflow_runs import finished_sweep, sweep_runs
from tests.helpers.ragtune_cli import ragtune
from tests.integration.services import require_module

pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore:\\s*'hydra/launcher/.*ConfigStore schema:UserWarning"),
]

SMALL_JOB = ["eval.throughput_batch_size=0", "qa.max_eval_questions=2"]
SWEEP_TIMEOUT_S = 900


@pytest.fixture
def ray_launcher(ray_cluster):
    require_module(
        "hydra_plugins.hydra_ray_launcher", "pip install --no-deps 'hydra-ray-launcher==1.2.*'"
    )
    # One CPU per job: the cluster has 2, so both jobs run at once.
    return [
        "hydra/launcher=ray",
        f"hydra.launcher.ray.init.address={ray_cluster['RAY_ADDRESS']}",
        "hydra.launcher.ray.remote.num_cpus=1",
    ]


def test_a_two_job_sweep_runs_as_ray_tasks_under_one_parent(ray_launcher, tmp_path):
    proc = ragtune(
        tmp_path,
        "-m",
        *ray_launcher,
        "experiment=smoke",
        "retriever.top_k=1,3",
        *SMALL_JOB,
        env={"HF_HUB_OFFLINE": "1"},
        timeout=SWEEP_TIMEOUT_S,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    children = finished_sweep(sweep_runs(tmp_path), "retriever.top_k", ["1", "3"])
    # Two different Ray tasks ran the jobs, and wrote into this folder (not the worker's).
    tasks = {c.data.tags["ray_task_id"] for c in children}
    assert len(tasks) == 2 and "" not in tasks
    (sweep_dir,) = (tmp_path / "multirun" / "smoke").iterdir()
    assert sorted(p.parent.name for p in sweep_dir.glob("*/results.json")) == ["0", "1"]
    assert (tmp_path / "cache").is_dir()  # RAGTUNE_CACHE_DIR reached the workers


def test_a_job_that_fails_on_ray_fails_the_parent_and_is_named(ray_launcher, tmp_path):
    proc = ragtune(
        tmp_path,
        "-m",
        *ray_launcher,
        "experiment=smoke",
        "eval.arms=[rag]",
        "retriever.index_factory=Flat,'IVF4096,Flat'",
        *SMALL_JOB,
        env={"HF_HUB_OFFLINE": "1"},
        timeout=SWEEP_TIMEOUT_S,
    )
    assert proc.returncode != 0
    assert "IVF4096" in proc.stderr
    parent, children, _ = sweep_runs(tmp_path)
    assert parent.info.status == "FAILED"
    by_factory = {c.data.params["retriever.index_factory"]: c for c in children}
    assert {k: c.info.status for k, c in by_factory.items()} == {
        "Flat": "FINISHED",
        "IVF4096,Flat": "FAILED",
    }
    bad = by_factory["IVF4096,Flat"].data.tags
    named = parent.data.tags["failed_jobs"]
    assert f"ray task {bad['ray_task_id']}" in named and "IVF4096" in named
    assert f"job {bad['sweep_job']} " in named and named.count("ray task") == 1
