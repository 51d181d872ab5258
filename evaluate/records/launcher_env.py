"""Which launcher job a run is: tags read from the environment the launcher gives its jobs.

A sweep's failed job is named in its parent run by these tags, so a user can find the job's
own log on the cluster (SLURM's job id, a Ray job's submission id).
"""

from __future__ import annotations

import os

# Environment variables set by the launchers, and the MLflow tag each one becomes.
LAUNCHER_VARIABLES = {
    "SLURM_JOB_ID": "slurm_job_id",
    "SLURM_ARRAY_JOB_ID": "slurm_array_job_id",
    "SLURM_ARRAY_TASK_ID": "slurm_array_task_id",
    "SLURM_CLUSTER_NAME": "slurm_cluster",
    "SLURMD_NODENAME": "slurm_node",
    "RAY_JOB_SUBMISSION_ID": "ray_job_submission_id",
    "RAGTUNE_RAY_TASK_ID": "ray_task_id",  # set by hydra_plugins/ragtune_ray_launcher
}


def launcher_tags() -> dict[str, str]:
    """``{tag: value}`` for each launcher variable set in this process's environment."""
    return {tag: os.environ[var] for var, tag in LAUNCHER_VARIABLES.items() if os.environ.get(var)}


def describe_job(tags: dict[str, str]) -> str:
    """``job 1 (retriever.top_k=3; slurm job 12_1)``: a sweep job as its run's tags name it."""
    parts = [tags[k] for k in ("sweep_overrides",) if tags.get(k)]
    if tags.get("slurm_array_job_id") and tags.get("slurm_array_task_id"):
        parts.append(f"slurm job {tags['slurm_array_job_id']}_{tags['slurm_array_task_id']}")
    elif tags.get("slurm_job_id"):
        parts.append(f"slurm job {tags['slurm_job_id']}")
    if tags.get("ray_job_submission_id"):
        parts.append(f"ray job {tags['ray_job_submission_id']}")
    if tags.get("ray_task_id"):
        parts.append(f"ray task {tags['ray_task_id']}")
    label = f"job {tags.get('sweep_job', '?')}"
    return f"{label} ({'; '.join(parts)})" if parts else label
