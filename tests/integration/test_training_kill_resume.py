"""SIGKILL ``ragtune`` during training, right after a checkpoint (the default settings save
them), then run the same command again: the re-run resumes from that step, says so, and ends
with the loss curve, adapter and answers of an uninterrupted run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers.ragtune_cli import cache_with_tiny_model, finish, kill_at_pause, start_ragtune

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


def _run(cwd: Path, cache: Path, run_dir: str, pause_at: str | None = None):
    return start_ragtune(
        cwd, *OVERRIDES, f"hydra.run.dir={run_dir}", cache=cache, pause_at=pause_at
    )


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
    whole_cache = cache_with_tiny_model(whole_dir / "cache", tiny_model_dir)
    finish(_run(whole_dir, whole_cache, "out"))
    whole = _outcome(whole_dir / "out")

    cache = cache_with_tiny_model(tmp_path / "cache", tiny_model_dir)
    # SIGKILL right after the step-5 checkpoint is complete
    kill_at_pause(_run(tmp_path, cache, "killed", pause_at="checkpoint"), tmp_path, "checkpoint")
    (work,) = (cache / "adapters").glob(".work-*")
    assert [p.name for p in work.glob("checkpoint-*")] == ["checkpoint-5"]

    output = finish(_run(tmp_path, cache, "resumed"))
    assert "resuming training from step 5" in output, output[-3000:]
    resumed = _outcome(tmp_path / "resumed")
    assert resumed == whole
    results = json.loads((tmp_path / "resumed" / "results.json").read_text())
    assert results["stages"]["finetune"]["resumed_from_step"] == 5
    assert results["stages"]["finetune"]["checkpoints_saved"] == 1  # step 10; 5 came before
    assert not work.exists()  # deleted once the adapter was published
