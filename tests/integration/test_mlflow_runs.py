"""MLflow runs are never left RUNNING: a killed `ragtune` leaves its run RUNNING (nothing can
close it), and the next run in the experiment on this host closes it as FAILED with a tag."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from contextlib import closing

import pytest

from evaluate.records.tracking import KILLED_TAG, is_orphan, process_tags
from tests.helpers.ragtune_cli import ragtune

pytestmark = pytest.mark.integration
COMMAND = [
    "experiment=smoke",
    "eval.arms=[closed_book]",
    "eval.throughput_batch_size=0",
    "qa.max_eval_questions=2",
]
RUNNING_TIMEOUT_S = 900  # start-up (model load, store creation) on a loaded 2-core machine


def test_orphan_is_a_dead_process_on_this_host():
    tags = process_tags()
    assert not is_orphan(tags, tags["host"])  # this process is alive
    assert not is_orphan(tags, "another-host")  # other hosts' runs are left alone
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()
    assert is_orphan({**tags, "pid": str(ended.pid)}, tags["host"])
    # a live process with the same pid but another start time is not the run's process
    assert is_orphan({**tags, "pid_started": "1"}, tags["host"])


def _running_run_ids(db) -> list[str]:
    """Ids of the runs a store lists as RUNNING; [] while the store or its tables do not exist."""
    if not db.exists():
        return []
    try:
        with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1.0)) as store:
            rows = store.execute("SELECT run_uuid FROM runs WHERE status = 'RUNNING'")
            return [row[0] for row in rows]
    except sqlite3.Error:
        return []


def test_a_killed_run_is_closed_as_failed_when_the_command_runs_again(tmp_path):
    from mlflow.tracking import MlflowClient

    env = {**os.environ, "RAGTUNE_CACHE_DIR": str(tmp_path / "cache")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "evaluate.cli", *COMMAND],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    deadline = time.monotonic() + RUNNING_TIMEOUT_S
    running: list[str] = []
    try:
        while not running and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(1.0)
            # read the store directly, read-only: an MlflowClient here would create the schema
            # while the run is creating it too, and one of the two would fail
            running = _running_run_ids(tmp_path / "mlflow.db")
    finally:
        proc.kill()
        proc.wait()
    assert running, f"the run never started (exit code {proc.returncode})"
    (killed_id,) = running
    client = MlflowClient(tracking_uri=uri)
    killed = client.get_run(killed_id)
    assert killed.info.status == "RUNNING"

    again = ragtune(tmp_path, *COMMAND)
    assert again.returncode == 0, again.stderr[-3000:]
    closed = client.get_run(killed.info.run_id)
    assert closed.info.status == "FAILED"
    assert f"process {killed.data.tags['pid']}" in closed.data.tags[KILLED_TAG]
    assert "closed 1 MLflow run(s) left RUNNING by killed processes" in again.stderr + again.stdout
    statuses = [r.info.status for r in client.search_runs([killed.info.experiment_id])]
    assert statuses.count("RUNNING") == 0
