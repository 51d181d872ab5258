"""Pieces plugged into the Hugging Face ``Trainer``: dataset, padding collator, loss recorder.

Kept separate from ``lora`` so that module stays about settings, caching and the training flow.
"""

from __future__ import annotations

import resource
import sys
from typing import Any

import torch
from transformers import TrainerCallback
from transformers.trainer_callback import ProgressCallback

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


class LossCurveCallback(TrainerCallback):
    """Collects ``(global_step, loss)`` each time the Trainer logs a training loss."""

    def __init__(self) -> None:
        self.curve: list[tuple[int, float]] = []

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "loss" in logs:
            self.curve.append((int(state.global_step), float(logs["loss"])))


class QuietProgressCallback(ProgressCallback):
    """The Trainer's progress bar with the loss on the bar instead of a printed dict per log."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        if state.is_world_process_zero and self.training_bar is not None and logs:
            if "loss" in logs:
                self.training_bar.set_postfix(loss=f"{logs['loss']:.4g}", refresh=False)


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far (ru_maxrss is KB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024
