"""Fine-tuning settings and results: plain dataclasses, no torch (validation stays instant).

``LoraSettings`` is the ``finetune`` config group's schema (the entry point's schema extends it);
``validate_settings`` checks its values; ``TrainResult`` is what training returns and what a
cached adapter folder records in ``train_result.json``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from finetune.data import MODES
from finetune.targets import target_modules_problem

RESULT_FILE = "train_result.json"
METHODS = ("lora", "full")
QUANTIZATIONS = ("none", "4bit")
# transformers SchedulerType values that need no extra arguments (tests check they exist).
LR_SCHEDULERS = (
    "linear",
    "cosine",
    "cosine_with_restarts",
    "polynomial",
    "constant",
    "constant_with_warmup",
    "inverse_sqrt",
)


@dataclass
class LoraSettings:
    """Mirrors the ``finetune`` config group (mutable: Hydra schemas must be).

    New fields go at the end so positional construction keeps working."""

    mode: str = "qa_sft"
    rank: int = 8
    alpha: int = 16
    dropout: float = 0.05
    # A preset name (finetune/targets.py: llama, llama-all, qwen2, gemma, gpt2, all-linear...)
    # or a list of module names; typed Any because the config schema cannot express str | list.
    # a preset (finetune/targets.py) or a list of module names; llama-all: every linear layer
    target_modules: Any = "llama-all"
    learning_rate: float = 2e-3
    epochs: float = 3.0
    max_steps: int = -1  # > 0 overrides epochs
    batch_size: int = 8
    grad_accum: int = 1
    max_length: int = 256
    warmup_ratio: float = 0.05
    seed: int = 0
    method: str = "lora"  # lora: train an adapter | full: train every weight (small models)
    quantization: str = "none"  # none | 4bit (QLoRA: bitsandbytes on a CUDA GPU, method=lora)
    lr_scheduler: str = "linear"  # one of LR_SCHEDULERS (transformers lr_scheduler_type)
    weight_decay: float = 0.0  # AdamW decoupled weight decay
    packing: bool = False  # concatenate documents into max_length blocks (finetune/data.py)
    eval_fraction: float = 0.0  # share of training sequences held out for eval loss; 0 = off
    eval_steps: int = 10  # optimizer steps between held-out evaluations
    early_stopping_patience: int = 0  # stop after N evaluations without a new best; 0 = off
    # Optimizer steps between resumable checkpoints (0 = none). On by default so a killed run
    # resumes; the cost is measured per run (TrainResult.checkpoint_save_s, see README).
    checkpoint_steps: int = 25


@dataclass
class TrainResult:
    adapter_dir: str
    reused: bool
    steps: int
    epochs: float
    examples: int
    tokens: int  # non-pad tokens processed over all epochs
    wall_s: float  # training time, summed over resumed runs (up to their last checkpoint)
    samples_per_s: float
    tokens_per_s: float
    peak_rss_mb: float  # peak of the whole process, which includes loading the base model
    trainable_params: int
    total_params: int
    final_loss: float
    loss_curve: list[tuple[int, float]]  # (step, loss)
    method: str = "lora"
    world_size: int = 1  # processes that trained (accelerate launch / DDP)
    train_sequences: int = 0  # sequences trained on, after packing and the held-out split
    eval_sequences: int = 0  # held-out sequences
    eval_tokens: int = 0  # non-pad held-out tokens, summed over every evaluation
    eval_loss_curve: list[tuple[int, float]] = field(default_factory=list)  # (step, eval loss)
    best_eval_loss: float | None = None
    stopped_early: bool = False
    learning_rate_curve: list[tuple[int, float]] = field(default_factory=list)  # (step, lr)
    flops_estimate: float = 0.0  # costing.formulas: (4·N + 2·N_trainable)·D + 2·N·D_eval
    peak_cuda_mb: float = 0.0  # torch.cuda.max_memory_allocated of this process; 0 on CPU
    resumed_from_step: int = 0  # the checkpoint this run resumed from; 0 = started fresh
    checkpoints_saved: int = 0  # resumable checkpoints this run wrote
    checkpoint_save_s: float = 0.0  # measured time spent writing them

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainResult:
        known = {f.name for f in fields(cls)}
        result = cls(**{k: v for k, v in data.items() if k in known})
        for name in ("loss_curve", "eval_loss_curve", "learning_rate_curve"):
            curve = getattr(result, name)
            setattr(result, name, [(int(step), float(value)) for step, value in curve])
        return result


def validate_settings(settings: LoraSettings) -> None:
    """Raise ValueError naming the first bad ``finetune.*`` key."""
    s = settings
    target_problem = target_modules_problem(s.target_modules)
    checks = [
        ("mode", s.mode in MODES, f"one of {', '.join(MODES)}"),
        ("method", s.method in METHODS, f"one of {', '.join(METHODS)}"),
        ("rank", s.rank >= 1, ">= 1"),
        ("alpha", s.alpha > 0, "> 0"),
        ("dropout", 0 <= s.dropout < 1, "in [0, 1)"),
        ("target_modules", target_problem is None, target_problem),
        ("learning_rate", s.learning_rate > 0, "> 0"),
        ("lr_scheduler", s.lr_scheduler in LR_SCHEDULERS, f"one of {', '.join(LR_SCHEDULERS)}"),
        ("weight_decay", s.weight_decay >= 0, ">= 0"),
        ("epochs", s.max_steps > 0 or s.epochs > 0, "> 0 (or set max_steps)"),
        ("max_steps", s.max_steps == -1 or s.max_steps > 0, "-1 or > 0"),
        ("batch_size", s.batch_size >= 1, ">= 1"),
        ("grad_accum", s.grad_accum >= 1, ">= 1"),
        ("max_length", s.max_length >= 2, ">= 2"),
        ("packing", isinstance(s.packing, bool), "true or false"),
        ("warmup_ratio", 0 <= s.warmup_ratio < 1, "in [0, 1)"),
        ("seed", s.seed >= 0, ">= 0"),
        ("quantization", s.quantization in QUANTIZATIONS, f"one of {', '.join(QUANTIZATIONS)}"),
        (
            "quantization",
            s.quantization == "none" or s.method == "lora",
            "none with finetune.method=full (QLoRA trains an adapter on a 4-bit base: "
            "set finetune.method=lora)",
        ),
        ("eval_fraction", 0 <= s.eval_fraction < 1, "in [0, 1) (0 turns held-out eval off)"),
        ("eval_steps", s.eval_steps >= 1, ">= 1"),
        ("early_stopping_patience", s.early_stopping_patience >= 0, ">= 0 (0 = off)"),
        (
            "early_stopping_patience",
            s.early_stopping_patience == 0 or s.eval_fraction > 0,
            "0 unless finetune.eval_fraction > 0 (early stopping watches the held-out loss)",
        ),
        ("checkpoint_steps", s.checkpoint_steps >= 0, ">= 0 (0 = no checkpoints)"),
    ]
    for key, ok, expected in checks:
        if not ok:
            value = getattr(s, key)
            raise ValueError(f"finetune.{key} must be {expected}, got {value!r}")


def load_result(adapter_dir: Path) -> TrainResult:
    path = adapter_dir / RESULT_FILE
    try:
        result = TrainResult.from_dict(json.loads(path.read_text()))
    except (OSError, ValueError, TypeError) as err:
        raise RuntimeError(
            f"cached adapter {adapter_dir} is unreadable ({err}); delete it"
        ) from err
    result.adapter_dir, result.reused = str(adapter_dir), True
    return result
