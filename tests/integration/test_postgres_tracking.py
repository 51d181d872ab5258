"""A shared tracking server as a team runs it: PostgreSQL (.ci/services/postgres.sh) behind
``mlflow server --serve-artifacts`` on 127.0.0.1, eight smoke jobs logging to it at once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.services import mlflow_server, require_module

pytestmark = pytest.mark.integration

JOBS = 8
SERVER_START_TIMEOUT_S = 300.0  # a fresh PostgreSQL database is migrated to MLflow's schema first
JOB_TIMEOUT_S = 900


@pytest.fixture
def postgres_mlflow_server(postgres_uri, tmp_path):
    """``mlflow server`` with the PostgreSQL back-end store and served artifacts."""
    # SQLAlchemy's default driver for postgresql:// URIs is psycopg (version 3)
    require_module("psycopg", "pip install 'psycopg[binary]==3.3.*' (the cluster extra)")
    store = tmp_path / "server"
    with mlflow_server(
        store, postgres_uri, workers=2, start_timeout_s=SERVER_START_TIMEOUT_S
    ) as uri:
        yield uri, store


def rows_in_postgres(postgres_uri: str, experiment: str) -> list[tuple[str, str]]:
    """(run id, status) of every run of ``experiment``, read from PostgreSQL itself."""
    import psycopg

    with psycopg.connect(postgres_uri) as connection, connection.cursor() as cursor:
        cursor.execute(
            "SELECT r.run_uuid, r.status FROM runs r JOIN experiments e "
            "ON r.experiment_id = e.experiment_id WHERE e.name = %s AND r.lifecycle_stage = %s",
            (experiment, "active"),
        )
        return sorted(cursor.fetchall())


def test_eight_parallel_jobs_log_to_a_postgres_backed_server(
    postgres_mlflow_server, postgres_uri, tmp_path, tiny_model_dir
):
    from mlflow.tracking import MlflowClient

    uri, store = postgres_mlflow_server
    cache = tmp_path / "cache"
    (cache / "models").mkdir(parents=True)
    (cache / "models" / Path(tiny_model_dir).name).symlink_to(tiny_model_dir)
    env = {**os.environ, "RAGTUNE_CACHE_DIR": str(cache)}
    env.pop("RAGTUNE_PARENT_RUN_ID", None)
    jobs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "evaluate.cli",
                "experiment=smoke",
                "eval.arms=[closed_book]",
                "eval.throughput_batch_size=0",
                "eval.semantic_similarity=false",
                "eval.warmup_requests=0",
                "qa.max_eval_questions=2",
                f"tracking.uri={uri}",
                f"hydra.run.dir=out/{n}",
            ],  # fmt: skip
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for n in range(JOBS)
    ]
    outputs = [job.communicate(timeout=JOB_TIMEOUT_S)[0] for job in jobs]
    for job, output in zip(jobs, outputs, strict=True):
        assert job.returncode == 0, output[-3000:]
        assert "Traceback" not in output

    written = sorted(
        json.loads((tmp_path / "out" / str(n) / "results.json").read_text())["mlflow_run_id"]
        for n in range(JOBS)
    )
    assert len(set(written)) == JOBS
    # The server's view over HTTP and the rows PostgreSQL holds agree: every job's run, once,
    # FINISHED (none lost, none duplicated, none left RUNNING).
    client = MlflowClient(tracking_uri=uri)
    runs = client.search_runs([client.get_experiment_by_name("smoke").experiment_id])
    jobs = [r for r in runs if r.data.tags.get("kind") == "job"]  # each with nested arm runs
    assert sorted(r.info.run_id for r in jobs) == written
    assert {r.info.status for r in runs} == {"FINISHED"}
    arms = [r for r in runs if r.data.tags.get("kind") == "arm"]
    assert {r.data.tags["mlflow.parentRunId"] for r in arms} == set(written)
    rows = rows_in_postgres(postgres_uri, "smoke")
    assert sorted(run_id for run_id, _ in rows) == sorted(r.info.run_id for r in runs)
    assert {status for _, status in rows} == {"FINISHED"}
    # Artifacts went through the server into its store, one results.json per run.
    stored = sorted(p.parent.parent.name for p in (store / "artifacts").rglob("results.json"))
    assert stored == written
    assert not (tmp_path / "mlartifacts").exists()
