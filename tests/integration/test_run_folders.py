"""Run folders: two runs started in the same second get two folders, and a folder that a live
run is writing into is refused to a second run (exit 2, one line)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import filelock
import pytest

from tests.helpers.ragtune_cli import ragtune

pytestmark = pytest.mark.integration

QUICK = [
    "experiment=smoke",
    "eval.arms=[closed_book]",
    "eval.throughput_batch_size=0",
    "eval.semantic_similarity=false",
    "eval.warmup_requests=0",
    "qa.max_eval_questions=2",
]


def _cache(tmp_path: Path, tiny_model_dir: str) -> Path:
    cache = tmp_path / "cache"
    (cache / "models").mkdir(parents=True)
    (cache / "models" / Path(tiny_model_dir).name).symlink_to(tiny_model_dir)
    return cache


def test_two_runs_started_in_the_same_second_get_two_folders(tmp_path, tiny_model_dir):
    from mlflow.tracking import MlflowClient

    env = {**os.environ, "RAGTUNE_CACHE_DIR": str(_cache(tmp_path, tiny_model_dir))}
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    command = [sys.executable, "-m", "evaluate.cli", *QUICK, f"tracking.uri={uri}"]
    # Start both at the top of a fresh second, so the folders' time stamps are the same second
    # (Hydra names the folder within a second or two of the start; both see the same clock).
    time.sleep(1 - time.time() % 1)
    jobs = [
        subprocess.Popen(
            command,
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [job.communicate(timeout=900)[0] for job in jobs]
    for job, output in zip(jobs, outputs, strict=True):
        assert job.returncode == 0, output[-3000:]
    folders = sorted((tmp_path / "outputs" / "smoke").iterdir())
    assert len(folders) == 2, folders
    for folder in folders:
        results = json.loads((folder / "results.json").read_text())
        assert results["arms"]["closed_book"]
        log = (folder / "ragtune.log").read_text()
        assert log.count("results: ") == 1, log[-2000:]  # one run's log, not both mixed
        assert str(folder / "results.json") in log
    client = MlflowClient(tracking_uri=uri)
    runs = client.search_runs([client.get_experiment_by_name("smoke").experiment_id])
    jobs = [r for r in runs if r.data.tags.get("kind") == "job"]  # arms are nested runs
    assert sorted(r.info.run_name for r in jobs) == sorted(f"smoke-{f.name}" for f in folders)


def test_a_folder_in_use_by_a_live_run_is_refused(tmp_path, tiny_model_dir):
    from evaluate.pipeline.runner import RUN_LOCK_FILE

    folder = tmp_path / "out"
    folder.mkdir()
    held = filelock.FileLock(folder / RUN_LOCK_FILE)  # what a live run in that folder holds
    with held:
        proc = ragtune(
            tmp_path,
            *QUICK,
            "tracking=none",
            f"hydra.run.dir={folder}",
            cache=_cache(tmp_path, tiny_model_dir),
            timeout=300,
        )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 2, output[-2000:]
    assert "Traceback" not in output
    assert [line for line in output.splitlines() if "is in use by another running ragtune" in line]
    assert not (folder / "results.json").exists()
