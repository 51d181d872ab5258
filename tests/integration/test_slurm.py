"""Sweeps submitted through sbatch to a real one-node SLURM cluster (.ci/services/slurm.sh) with
hydra-submitit-launcher: one MLflow parent run, one child per SLURM job."""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import pytest

from tests.helpers.mlflow_runs import finished_sweep, sweep_runs
from tests.helpers.ragtune_cli import ragtune

pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore:\\s*'hydra/launcher/.*ConfigStore schema:UserWarning"),
]

# The shipped submitit_slurm config asks for a GPU node with 8 CPUs and 32 GB; the test cluster
# has one CPU node of 2 CPUs and 4 GB (.ci/services/slurm.sh), so each job asks for 1 CPU.
LOCAL_CLUSTER = [
    "hydra/launcher=submitit_slurm",
    "hydra.launcher.partition=debug",
    "hydra.launcher.gpus_per_node=null",
    "hydra.launcher.cpus_per_task=1",
    "hydra.launcher.mem_gb=1",
    "hydra.launcher.timeout_min=15",
]
SMALL_JOB = ["eval.throughput_batch_size=0", "qa.max_eval_questions=2"]
SWEEP_TIMEOUT_S = 900
# States of a job that has not ended yet (squeue(1), "JOB STATE CODES").
ACTIVE_JOB_STATES = {
    "PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED", "REQUEUED", "RESIZING",
    "SIGNALING", "STAGE_OUT", "STOPPED",
}  # fmt: skip
# Only a bound on waiting for a job that wrote its result to end (its process exited about 4 s
# after writing it here; slurmd then cleans up, KillWait=5 s in .ci/services/slurm.sh).
JOB_SETTLE_TIMEOUT_S = 120.0


def slurm_job(tags: dict[str, str]) -> str:
    """``<array job id>_<task id>``, as submitit names a job array's task."""
    return f"{tags['slurm_array_job_id']}_{tags['slurm_array_task_id']}"


def submitted_job_ids(sweep_dir: Path) -> set[str]:
    """SLURM job ids of the sweep, from submitit's per-job folders (``<array>_<task>``)."""
    names = (p.name for p in (sweep_dir / ".submitit").iterdir() if p.is_dir())
    return {name for name in names if re.fullmatch(r"\d+_\d+", name)}


def settled_job_state(job: str, slurm_env: dict[str, str]) -> tuple[str, str]:
    """``(JobState, scontrol's whole record)`` of ``job`` once it has left SLURM's active states.

    submitit takes a job as done as soon as its result file exists (``Job.done`` in
    submitit/core/core.py), and the job writes it before its Python process exits, so the sweep
    can return while SLURM still shows the job RUNNING (the process exiting) or COMPLETING
    (slurmd cleaning up). sacct would need accounting; scontrol keeps finished jobs for
    MinJobAge seconds (600 in .ci/services/slurm.sh)."""
    deadline = time.monotonic() + JOB_SETTLE_TIMEOUT_S
    while True:
        shown = subprocess.run(
            ["scontrol", "show", "job", job], env={**slurm_env, "PATH": "/usr/bin:/bin"},
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        found = re.search(r"JobState=(\w+)", shown)
        state = found.group(1) if found else ""
        if state not in ACTIVE_JOB_STATES or time.monotonic() > deadline:
            return state, shown
        time.sleep(0.5)


def test_a_two_job_sweep_runs_as_slurm_jobs_under_one_parent(slurm_cluster, tmp_path):
    proc = ragtune(
        tmp_path,
        "-m",
        *LOCAL_CLUSTER,
        "experiment=smoke",
        "retriever.top_k=1,3",
        *SMALL_JOB,
        env={**slurm_cluster, "HF_HUB_OFFLINE": "1"},
        timeout=SWEEP_TIMEOUT_S,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    children = finished_sweep(sweep_runs(tmp_path), "retriever.top_k", ["1", "3"])
    # Each child ran inside a SLURM job of this cluster, one array task per sweep job.
    (sweep_dir,) = (tmp_path / "multirun" / "smoke").iterdir()
    ran_in = {slurm_job(c.data.tags) for c in children}
    assert ran_in == submitted_job_ids(sweep_dir) and len(ran_in) == 2
    assert {c.data.tags["slurm_cluster"] for c in children} == {"ragtune-ci"}
    # SLURM's own record agrees: both jobs completed in the partition asked for.
    for job in ran_in:
        state, shown = settled_job_state(job, slurm_cluster)
        assert state == "COMPLETED" and "Partition=debug" in shown, shown


def test_a_job_that_fails_on_the_cluster_fails_the_parent_and_is_named(slurm_cluster, tmp_path):
    """The second job cannot train its IVF index (4096 lists from a tiny corpus): the sweep
    exits non-zero naming the SLURM job, and the parent run is FAILED with a tag naming it."""
    proc = ragtune(
        tmp_path,
        "-m",
        *LOCAL_CLUSTER,
        "experiment=smoke",
        "eval.arms=[rag]",
        "retriever.index_factory=Flat,'IVF4096,Flat'",
        *SMALL_JOB,
        env={**slurm_cluster, "HF_HUB_OFFLINE": "1"},
        timeout=SWEEP_TIMEOUT_S,
    )
    assert proc.returncode != 0
    (sweep_dir,) = (tmp_path / "multirun" / "smoke").iterdir()
    parent, children, _ = sweep_runs(tmp_path)
    assert parent.info.status == "FAILED"
    by_factory = {c.data.params["retriever.index_factory"]: c for c in children}
    assert {k: c.info.status for k, c in by_factory.items()} == {
        "Flat": "FINISHED",
        "IVF4096,Flat": "FAILED",
    }
    bad = by_factory["IVF4096,Flat"].data.tags
    job = slurm_job(bad)
    assert job in submitted_job_ids(sweep_dir)
    named = parent.data.tags["failed_jobs"]
    assert f"slurm job {job}" in named and "IVF4096" in named
    assert f"job {bad['sweep_job']} " in named and named.count("slurm job") == 1
    assert job in proc.stderr + proc.stdout  # submitit's error names the job's log
