"""Read back the MLflow runs of a ``ragtune -m`` sweep from the sqlite store in its folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple


class SweepRuns(NamedTuple):
    parent: Any  # the sweep's run (tag kind=sweep)
    children: list[Any]  # runs whose parent is the sweep's run (its jobs)
    nested: dict[str, list[Any]]  # run id of each child -> the runs nested in it (its arms)


def sweep_runs(cwd: Path, experiment: str = "smoke") -> SweepRuns:
    """The one sweep parent run of ``experiment`` in ``cwd/mlflow.db``, its child runs, and the
    runs nested in each child."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{cwd / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
    (parent,) = [r for r in runs if r.data.tags.get("kind") == "sweep"]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    nested = {
        child.info.run_id: [
            r for r in runs if r.data.tags.get("mlflow.parentRunId") == child.info.run_id
        ]
        for child in children
    }
    return SweepRuns(parent, children, nested)


# The arms a job runs unless eval.arms says otherwise (conf/eval/default.yaml).
DEFAULT_ARMS = ["closed_book", "rag", "finetune", "finetune_rag"]


def finished_sweep(
    runs: SweepRuns, key: str, values: list[str], arms: list[str] = DEFAULT_ARMS
) -> list[Any]:
    """Check a sweep that succeeded: its parent run FINISHED, one FINISHED job run per swept
    ``key=value`` (the job's param), and in each job run the FINISHED runs of its ``arms``
    nested (not in the sweep's parent). Returns the job runs."""
    parent, children, nested = runs
    assert parent.info.status == "FINISHED"
    assert [c.data.tags["kind"] for c in children] == ["job"] * len(values)
    assert sorted(c.data.params[key] for c in children) == sorted(values)
    assert {c.info.status for c in children} == {"FINISHED"}
    for child in children:
        arm_runs = nested[child.info.run_id]
        assert sorted(r.data.tags["arm"] for r in arm_runs) == sorted(arms), child.info.run_name
        assert {(r.data.tags["kind"], r.info.status) for r in arm_runs} == {("arm", "FINISHED")}
    return children
