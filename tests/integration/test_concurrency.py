"""Eight smoke jobs at once on one cache and one sqlite MLflow store: every run ends FINISHED
(none left RUNNING, lost or duplicated) and every cache entry is built exactly once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

JOBS = 8


def test_parallel_jobs_share_one_store_and_one_cache(tmp_path, tiny_model_dir):
    from mlflow.tracking import MlflowClient

    cache = tmp_path / "cache"
    (cache / "models").mkdir(parents=True)
    (cache / "models" / Path(tiny_model_dir).name).symlink_to(tiny_model_dir)
    env = {**os.environ, "RAGTUNE_CACHE_DIR": str(cache)}
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    jobs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "evaluate.cli",
                "experiment=smoke",
                "eval.arms=[rag,finetune]",
                "eval.throughput_batch_size=0",
                "eval.semantic_similarity=false",
                "eval.warmup_requests=0",
                "qa.max_eval_questions=2",
                "finetune.max_steps=2",
                f"tracking.uri={uri}",
                f"hydra.run.dir=out/{n}",
            ],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for n in range(JOBS)
    ]
    outputs = [job.communicate(timeout=900)[0] for job in jobs]
    for job, output in zip(jobs, outputs, strict=True):
        assert job.returncode == 0, output[-3000:]
        assert "Traceback" not in output

    client = MlflowClient(tracking_uri=uri)
    runs = client.search_runs(
        [client.get_experiment_by_name("smoke").experiment_id], filter_string="tags.kind = 'job'"
    )
    assert sorted(r.info.status for r in runs) == ["FINISHED"] * JOBS
    recorded = sorted(r.info.run_id for r in runs)
    written = sorted(
        json.loads((tmp_path / "out" / str(n) / "results.json").read_text())["mlflow_run_id"]
        for n in range(JOBS)
    )
    assert recorded == written and len(set(recorded)) == JOBS  # none lost, none duplicated

    log = "\n".join(outputs)
    assert log.count("embedding ") == 1  # the corpus was embedded by one job
    assert log.count("reusing cached index") == JOBS - 1
    assert log.count("trained adapter") == 1  # one job trained, seven waited and reused it
    assert log.count("[finetune.lora][INFO] - reusing cached adapter") == JOBS - 1
    for kind in ("indexes", "embeddings", "adapters"):
        entries = [p for p in (cache / kind).iterdir() if p.is_dir()]
        assert [p.name.startswith(".") for p in entries] == [False], (kind, entries)
