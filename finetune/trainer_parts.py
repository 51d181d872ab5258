"""Pieces plugged into the Hugging Face ``Trainer``: dataset, padding collator, a sampler whose
order survives a resume, callbacks (progress, early stopping, clock) and measurements.

Kept separate from ``lora`` so that module stays about settings, caching and the training flow.
"""

from __future__ import annotations

import resource
import sys
import time
from typing import Any

import torch
from transformers import TrainerCallback
from transformers.trainer_callback import ExportableState, ProgressCallback
from transformers.trainer_pt_utils import get_length_grouped_indices

from finetune.data import IGNORE_INDEX, TrainExample


class ExampleDataset(torch.utils.data.Dataset):
    """A list of examples as the map-style dataset the Trainer's sampler expects."""

    def __init__(self, examples: list[TrainExample]) -> None:
        self.examples = examples

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, index: int) -> dict[str, list[int]]:
        example = self.examples[index]
        return {"input_ids": example.input_ids, "labels": example.labels}


class RightPadCollator:
    """Right-pads ``input_ids`` with the pad token and ``labels`` with -100; builds the mask.

    Right padding is fine for training (positions of real tokens are unchanged); batched
    generation elsewhere pads on the left.
    """

    def __init__(self, pad_token_id: int) -> None:
        self.pad_token_id = pad_token_id

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        width = max(len(f["input_ids"]) for f in features)
        input_ids, labels, mask = [], [], []
        for feature in features:
            length = len(feature["input_ids"])
            pad = width - length
            input_ids.append(list(feature["input_ids"]) + [self.pad_token_id] * pad)
            labels.append(list(feature["labels"]) + [IGNORE_INDEX] * pad)
            mask.append([1] * length + [0] * pad)
        return {
            "input_ids": torch.tensor(input_ids, dtype=torch.long),
            "labels": torch.tensor(labels, dtype=torch.long),
            "attention_mask": torch.tensor(mask, dtype=torch.long),
        }


class SeededLengthGroupedSampler(torch.utils.data.Sampler[int]):
    """Length-grouped shuffling (less padding) drawn from a generator seeded by (seed, epoch).

    The Trainer's own length-grouped sampler draws from the global torch RNG, whose state at
    the start of an epoch differs between an uninterrupted run and one resumed mid-way; here
    epoch e has the same order in both. The Trainer calls ``set_epoch`` at each epoch start.
    """

    def __init__(self, lengths: list[int], group_size: int, seed: int) -> None:
        self.lengths = lengths
        self.group_size = group_size
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.lengths)

    def __iter__(self):
        # A distinct generator seed per (seed, epoch) pair (1_000_003 is a prime > any epoch).
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        return iter(get_length_grouped_indices(self.lengths, self.group_size, generator=generator))


class HeldOutEarlyStopping(TrainerCallback):
    """Stops training once ``patience`` evaluations in a row bring no new best held-out loss.

    Stateless (it re-reads the eval losses in ``state.log_history``, which checkpoints keep),
    so it behaves the same after a resume. The weights at the stopping step are kept: they
    are not rolled back to the best evaluation.
    """

    def __init__(self, patience: int) -> None:
        self.patience = patience

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        losses = [h["eval_loss"] for h in state.log_history if "eval_loss" in h]
        if losses:
            best = losses.index(min(losses))
            if len(losses) - 1 - best >= self.patience:
                control.should_training_stop = True


class SkipFinalCheckpoint(TrainerCallback):
    """The Trainer saves a checkpoint at the last step; the adapter is saved right after and
    the work folder deleted, so that write is skipped unless it is a regular checkpoint."""

    def __init__(self, checkpoint_steps: int) -> None:
        self.checkpoint_steps = checkpoint_steps

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step >= state.max_steps and state.global_step % self.checkpoint_steps:
            control.should_save = False


class TrainClock(TrainerCallback, ExportableState):
    """Training seconds, carried through checkpoints so a resumed run reports the total."""

    def __init__(self) -> None:
        self.elapsed_before_s = 0.0  # restored from the checkpoint's trainer state
        self._started: float | None = None

    def on_train_begin(self, args, state, control, **kwargs):
        self._started = time.perf_counter()

    def elapsed_s(self) -> float:
        running = time.perf_counter() - self._started if self._started is not None else 0.0
        return self.elapsed_before_s + running

    def state(self) -> dict:
        return {"args": {}, "attributes": {"elapsed_before_s": self.elapsed_s()}}


class QuietProgressCallback(ProgressCallback):
    """The Trainer's progress bar with the losses on the bar instead of a printed dict per log."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.shown: dict[str, str] = {}  # latest of each: train and eval losses log separately

    def on_log(self, args, state, control, logs=None, **kwargs):
        if state.is_world_process_zero and self.training_bar is not None and logs:
            self.shown.update({k: f"{logs[k]:.4g}" for k in ("loss", "eval_loss") if k in logs})
            if self.shown:
                self.training_bar.set_postfix(self.shown, refresh=False)


def log_curve(log_history: list[dict[str, Any]], key: str) -> list[tuple[int, float]]:
    """``(step, value)`` for every Trainer log entry holding ``key``."""
    return [(int(h["step"]), float(h[key])) for h in log_history if key in h]


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far (ru_maxrss is KB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def peak_cuda_mb() -> float:
    """Most CUDA memory torch allocated in this process (0 without a GPU)."""
    if not torch.cuda.is_available() or not torch.cuda.is_initialized():
        return 0.0
    return torch.cuda.max_memory_allocated() / 2**20
