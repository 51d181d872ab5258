"""SIGKILL ``ragtune`` during training, right after a checkpoint (the default settings save
them), then run the same command again: the re-run resumes from that step, says so, and ends
with the loss curve, adapter and answers of an uninterrupted run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

OVERRIDES = [
    "experiment=smoke",
    "tracking=none",
    "eval.arms=[finetune]",
    "eval.throughput_batch_size=0",
    "eval.semantic_similarity=false",
    "eval.warmup_requests=0",
    "qa.max_eval_questions=3",
    "finetune.max_steps=12",
    "finetune.checkpoint_steps=5",  # the default is 25: a smoke run trains fewer steps
]


def _cache(cache: Path, tiny_model_dir: str) -> Path:
    (cache / "models").mkdir(parents=True)
    (cache / "models" / Path(tiny_model_dir).name).symlink_to(tiny_model_dir)
    return cache


def _start(cwd: Path, cache: Path, run_dir: str, pause: bool = False) -> subprocess.Popen:
    env = {**os.environ, "RAGTUNE_CACHE_DIR": str(cache)}
    if pause:
        env |= {"RAGTUNE_TEST_PAUSE_AT": "checkpoint", "RAGTUNE_TEST_PAUSE_FILE": str(cwd / "p")}
    return subprocess.Popen(
        [sys.executable, "-m", "evaluate.cli", *OVERRIDES, f"hydra.run.dir={run_dir}"],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _finish(proc: subprocess.Popen) -> str:
    output, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, output[-3000:]
    return output


def _outcome(folder: Path) -> dict:
    results = json.loads((folder / "results.json").read_text())
    training = results["stages"]["finetune"]
    return {
        "loss_curve": training["loss_curve"],
        "steps": training["steps"],
        "adapter": Path(training["adapter_dir"]).name,
        "answers": [(p["qa_id"], p["prediction"]) for p in results["predictions"]],
        "accuracy": results["arms"]["finetune"]["accuracy"],
    }


def test_sigkill_during_training_resumes_from_the_checkpoint(tmp_path, tiny_model_dir):
    whole_dir = tmp_path / "whole"
    whole_dir.mkdir()
    whole_cache = _cache(whole_dir / "cache", tiny_model_dir)
    _finish(_start(whole_dir, whole_cache, "out"))
    whole = _outcome(whole_dir / "out")

    cache = _cache(tmp_path / "cache", tiny_model_dir)
    proc = _start(tmp_path, cache, "killed", pause=True)
    deadline = time.monotonic() + 300
    while not (tmp_path / "p").exists():
        assert proc.poll() is None, proc.communicate()[0][-3000:]
        assert time.monotonic() < deadline, "no checkpoint was saved"
        time.sleep(0.1)
    proc.kill()  # SIGKILL, right after the step-5 checkpoint is complete
    proc.communicate(timeout=60)
    (work,) = (cache / "adapters").glob(".work-*")
    assert [p.name for p in work.glob("checkpoint-*")] == ["checkpoint-5"]

    output = _finish(_start(tmp_path, cache, "resumed"))
    assert "resuming training from step 5" in output, output[-3000:]
    resumed = _outcome(tmp_path / "resumed")
    assert resumed == whole
    results = json.loads((tmp_path / "resumed" / "results.json").read_text())
    assert results["stages"]["finetune"]["resumed_from_step"] == 5
    assert results["stages"]["finetune"]["checkpoints_saved"] == 1  # step 10; 5 came before
    assert not work.exists()  # deleted once the adapter was published
