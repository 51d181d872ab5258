"""Fine-tuning resumes exactly after a hard kill; held-out eval loss and early stopping."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap
from dataclasses import asdict, replace
from pathlib import Path

import pytest
import torch
import transformers
from safetensors.torch import load_file

from finetune.data import build_examples, split_for_eval
from finetune.lora import LoraSettings, load_merged_model, train_lora
from finetune.training import last_complete_checkpoint
from rag.core.types import Document

ROOT = Path(__file__).resolve().parents[2]
KILL_EXIT_CODE = 17

# Run in a child process: train with a callback that hard-exits (no cleanup, like a kill or a
# lost node) at the end of optimizer step `exit_step`, after the checkpoints before it.
CHILD = textwrap.dedent(
    """
    import json, os, sys
    from pathlib import Path
    from transformers import TrainerCallback
    import finetune.training as training
    from finetune.data import TrainExample
    from finetune.lora import LoraSettings, train_lora

    job = json.loads(Path(sys.argv[1]).read_text())

    class HardExit(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == job["exit_step"]:
                os._exit(job["exit_code"])

    build = training.build_callbacks
    training.build_callbacks = lambda settings: [*build(settings), HardExit()]
    examples = [TrainExample(**e) for e in job["examples"]]
    train_lora(job["model"], examples, LoraSettings(**job["settings"]), Path(job["cache"]), False)
    sys.exit(0)
    """
)

TEXT = "Person 0 was born in Town 0 in 1950 and worked for the company in Town 1. " * 4


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    return transformers.AutoTokenizer.from_pretrained(tiny_model_dir)


@pytest.fixture(scope="module")
def doc_examples(tokenizer):
    """Eight full 24-token document windows (so no batch has padding)."""
    examples = build_examples([Document("d0", "P0", TEXT * 2)], [], tokenizer, "cpt", 24)[:8]
    assert len(examples) == 8 and {len(e.input_ids) for e in examples} == {24}
    return examples


def adapter_weights(adapter_dir: str) -> dict[str, torch.Tensor]:
    return load_file(str(Path(adapter_dir) / "adapter_model.safetensors"))


def test_training_killed_mid_way_resumes_to_the_uninterrupted_result(
    tiny_model_dir, doc_examples, tmp_path
):
    # 7 training sequences (1 held out), batch 2: 4 steps per epoch, so the kill at step 8
    # resumes from the step-6 checkpoint in the middle of the second epoch.
    settings = LoraSettings(
        mode="cpt", max_length=24, batch_size=2, max_steps=10, learning_rate=5e-3,
        dropout=0.1, warmup_ratio=0.1, lr_scheduler="cosine", weight_decay=0.01,
        eval_fraction=0.125, eval_steps=2, checkpoint_steps=3, seed=3,
    )  # fmt: skip
    straight = train_lora(
        tiny_model_dir, doc_examples, replace(settings, checkpoint_steps=0), tmp_path / "a", False
    )

    cache = tmp_path / "b"
    job = {
        "model": tiny_model_dir,
        "cache": str(cache),
        "settings": asdict(settings),
        "examples": [  # token ids as JSON lists (examples hold 32-bit arrays)
            {**asdict(e), "input_ids": list(e.input_ids), "labels": list(e.labels)}
            for e in doc_examples
        ],
        "exit_step": 8,
        "exit_code": KILL_EXIT_CODE,
    }
    (tmp_path / "job.json").write_text(json.dumps(job))
    (tmp_path / "child.py").write_text(CHILD)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    child = subprocess.run(
        [sys.executable, str(tmp_path / "child.py"), str(tmp_path / "job.json")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert child.returncode == KILL_EXIT_CODE, child.stderr[-2000:]
    [work_dir] = (cache / "adapters").glob(".work-*")
    assert sorted(p.name for p in work_dir.glob("checkpoint-*")) == ["checkpoint-3", "checkpoint-6"]
    assert not [p for p in (cache / "adapters").iterdir() if not p.name.startswith(".")]

    saved_state = json.loads((work_dir / "checkpoint-6" / "trainer_state.json").read_text())
    before_kill_s = saved_state["stateful_callbacks"]["TrainClock"]["attributes"][
        "elapsed_before_s"
    ]
    assert before_kill_s > 0

    resumed = train_lora(tiny_model_dir, doc_examples, settings, cache, False)
    assert resumed.wall_s > before_kill_s  # training time of both runs, up to the checkpoint
    assert resumed.resumed_from_step == 6 and straight.resumed_from_step == 0
    assert not work_dir.exists()  # removed once the adapter was published
    # checkpoint_steps is not part of the cache key: the same adapter either way.
    assert Path(resumed.adapter_dir).name == Path(straight.adapter_dir).name
    assert resumed.steps == straight.steps == 10
    # Epochs of 4 steps take 2+2+2+1 windows of 24 tokens: 2 epochs and 2 steps = 18 windows.
    assert resumed.tokens == straight.tokens == 18 * 24
    for name in ("loss_curve", "eval_loss_curve", "learning_rate_curve"):
        got, want = getattr(resumed, name), getattr(straight, name)
        assert [s for s, _ in got] == [s for s, _ in want], name
        assert [v for _, v in got] == pytest.approx([v for _, v in want], rel=1e-5), name
    assert [s for s, _ in straight.eval_loss_curve] == [2, 4, 6, 8, 10]
    assert resumed.eval_tokens == straight.eval_tokens == 5 * 24
    assert resumed.flops_estimate == straight.flops_estimate
    got, want = adapter_weights(resumed.adapter_dir), adapter_weights(straight.adapter_dir)
    assert got.keys() == want.keys() and len(got) > 0
    for key in want:
        torch.testing.assert_close(got[key], want[key], rtol=1e-5, atol=1e-6)

    # The cosine schedule reached the Trainer. The value logged at step s is the rate step s
    # used: 0 for the one warm-up step, then lr · 0.5 · (1 + cos(π · k / 9)) for the k-th of
    # the 9 decay steps (transformers' get_cosine_schedule_with_warmup).
    lrs = [lr for _, lr in straight.learning_rate_curve]
    cosine = [5e-3 * 0.5 * (1 + math.cos(math.pi * k / 9)) for k in range(9)]
    assert lrs == pytest.approx([0.0, *cosine], abs=1e-12)


def test_a_checkpoint_without_its_trainer_state_is_not_resumed_from(tmp_path):
    # The Trainer writes trainer_state.json last: a kill during a save leaves a folder without it.
    for step, complete in ((3, True), (6, True), (9, False)):
        folder = tmp_path / f"checkpoint-{step}"
        folder.mkdir()
        (folder / "adapter_model.safetensors").write_bytes(b"")
        if complete:
            (folder / "trainer_state.json").write_text("{}")
    (tmp_path / "checkpoint-x").mkdir()
    assert last_complete_checkpoint(tmp_path) == tmp_path / "checkpoint-6"
    assert last_complete_checkpoint(tmp_path / "missing") is None


def test_eval_loss_is_the_held_out_loss_and_early_stopping_stops_when_it_rises(
    tiny_model_dir, doc_examples, tmp_path
):
    # A learning rate of 0.5 makes training diverge, so the held-out loss rises after a step
    # or two; patience 2 must stop well before max_steps.
    settings = LoraSettings(
        mode="cpt", max_length=24, batch_size=4, max_steps=40, learning_rate=0.5,
        dropout=0.0, warmup_ratio=0.0, lr_scheduler="constant", eval_fraction=0.25,
        eval_steps=1, early_stopping_patience=2,
    )  # fmt: skip
    result = train_lora(tiny_model_dir, doc_examples, settings, tmp_path, False)
    curve = [loss for _, loss in result.eval_loss_curve]
    assert result.stopped_early and result.steps < 40
    assert [s for s, _ in result.eval_loss_curve] == list(range(1, result.steps + 1))
    best = curve.index(min(curve))
    assert len(curve) - 1 - best == 2  # stopped at the second evaluation without a new best
    assert all(loss >= curve[best] for loss in curve[best + 1 :])
    assert result.best_eval_loss == pytest.approx(min(curve))
    assert result.train_sequences == 6 and result.eval_sequences == 2

    # The last eval loss is the mean token loss of the saved adapter on the held-out windows.
    _, held_out = split_for_eval(doc_examples, settings.eval_fraction, settings.seed)
    model = load_merged_model(tiny_model_dir, result.adapter_dir, merge=False)
    batch = torch.tensor([e.input_ids for e in held_out])  # equal lengths: no padding
    with torch.no_grad():
        loss = model(input_ids=batch, labels=torch.tensor([e.labels for e in held_out])).loss
    assert curve[-1] == pytest.approx(loss.item(), rel=1e-4)

    # Without held-out data there is no eval curve, and stopping needs it.
    plain = train_lora(
        tiny_model_dir, doc_examples,
        replace(settings, eval_fraction=0.0, early_stopping_patience=0, max_steps=2), tmp_path,
        False,
    )  # fmt: skip
    assert plain.eval_loss_curve == [] and plain.best_eval_loss is None
    assert not plain.stopped_early and plain.eval_sequences == 0 and plain.steps == 2
