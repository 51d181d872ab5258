"""LoRA adapters trained with the Hugging Face ``Trainer`` and cached by content.

The ``Trainer`` is used (rather than a hand-written loop) so that the same code runs under
``accelerate launch`` / DDP on a cluster. An adapter folder is named by the hash of the base
model's content, the training examples and every setting, so a re-run with the same inputs
reuses it and any changed input trains a new one.

torch, transformers and peft are imported inside functions: validating settings stays instant.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field, fields
from importlib.metadata import version
from pathlib import Path
from typing import Any

from finetune.data import MODES, TrainExample, examples_fingerprint
from rag.cache import atomic_dir, atomic_write_text, content_key, model_fingerprint

logger = logging.getLogger(__name__)

RESULT_FILE = "train_result.json"
# Bump when the training code changes what an adapter with the same inputs would contain.
TRAIN_CODE_VERSION = "1"


@dataclass
class LoraSettings:
    """Mirrors the ``finetune`` config group (mutable: Hydra schemas must be)."""

    mode: str = "mixed"
    rank: int = 8
    alpha: int = 16
    dropout: float = 0.05
    target_modules: list[str] = field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"]
    )
    learning_rate: float = 1e-3
    epochs: float = 3.0
    max_steps: int = -1  # > 0 overrides epochs
    batch_size: int = 8
    grad_accum: int = 1
    max_length: int = 256
    warmup_ratio: float = 0.05
    seed: int = 0


@dataclass
class TrainResult:
    adapter_dir: str
    reused: bool
    steps: int
    epochs: float
    examples: int
    tokens: int  # non-pad tokens processed over all epochs
    wall_s: float
    samples_per_s: float
    tokens_per_s: float
    peak_rss_mb: float  # peak of the whole process, which includes loading the base model
    trainable_params: int
    total_params: int
    final_loss: float
    loss_curve: list[tuple[int, float]]  # (step, loss)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainResult:
        known = {f.name for f in fields(cls)}
        result = cls(**{k: v for k, v in data.items() if k in known})
        result.loss_curve = [(int(step), float(loss)) for step, loss in result.loss_curve]
        return result


def validate_settings(settings: LoraSettings) -> None:
    """Raise ValueError naming the first bad ``finetune.*`` key."""
    checks = [
        ("mode", settings.mode in MODES, f"one of {', '.join(MODES)}"),
        ("rank", settings.rank >= 1, ">= 1"),
        ("alpha", settings.alpha > 0, "> 0"),
        ("dropout", 0 <= settings.dropout < 1, "in [0, 1)"),
        (
            "target_modules",
            bool(settings.target_modules)
            and all(isinstance(m, str) and m for m in settings.target_modules),
            "a non-empty list of module names",
        ),
        ("learning_rate", settings.learning_rate > 0, "> 0"),
        ("epochs", settings.max_steps > 0 or settings.epochs > 0, "> 0 (or set max_steps)"),
        ("max_steps", settings.max_steps == -1 or settings.max_steps > 0, "-1 or > 0"),
        ("batch_size", settings.batch_size >= 1, ">= 1"),
        ("grad_accum", settings.grad_accum >= 1, ">= 1"),
        ("max_length", settings.max_length >= 2, ">= 2"),
        ("warmup_ratio", 0 <= settings.warmup_ratio < 1, "in [0, 1)"),
        ("seed", settings.seed >= 0, ">= 0"),
    ]
    for key, ok, expected in checks:
        if not ok:
            value = getattr(settings, key)
            raise ValueError(f"finetune.{key} must be {expected}, got {value!r}")


def adapter_cache_key(model_fingerprint: str, examples_fp: str, settings: LoraSettings) -> str:
    code = [TRAIN_CODE_VERSION, version("peft"), version("transformers")]
    return content_key("lora-adapter", code, model_fingerprint, examples_fp, asdict(settings))


def train_lora(
    model_path: str,
    examples: list[TrainExample],
    settings: LoraSettings,
    cache_root: Path,
    progress: bool = True,
) -> TrainResult:
    """Train a LoRA adapter on ``examples`` or return the cached one for identical inputs."""
    validate_settings(settings)
    if not examples:
        raise ValueError("train_lora needs at least one training example, got none")
    longest = max(len(e.input_ids) for e in examples)
    if longest > settings.max_length:
        raise ValueError(
            f"a training example has {longest} tokens, more than finetune.max_length="
            f"{settings.max_length}; build the examples with the same max_length"
        )
    key = adapter_cache_key(model_fingerprint(model_path), examples_fingerprint(examples), settings)
    final_dir = Path(cache_root) / "adapters" / key
    if final_dir.exists():
        logger.info("reusing cached adapter %s", key)
        return _load_result(final_dir)
    fresh: dict[str, TrainResult] = {}

    def build(tmp_dir: Path) -> None:
        from finetune.training import run_training

        result = run_training(model_path, examples, settings, tmp_dir, progress)
        result.adapter_dir = str(final_dir)
        atomic_write_text(tmp_dir / RESULT_FILE, json.dumps(result.to_dict(), indent=2))
        fresh["result"] = result

    adapter_dir, reused = atomic_dir(final_dir, build)
    if reused or "result" not in fresh:
        logger.info("reusing cached adapter %s", key)
        return _load_result(adapter_dir)
    logger.info("trained adapter %s in %.1f s", key, fresh["result"].wall_s)
    return fresh["result"]


def _load_result(adapter_dir: Path) -> TrainResult:
    path = adapter_dir / RESULT_FILE
    try:
        result = TrainResult.from_dict(json.loads(path.read_text()))
    except (OSError, ValueError, TypeError) as err:
        raise RuntimeError(
            f"cached adapter {adapter_dir} is unreadable ({err}); delete it"
        ) from err
    result.adapter_dir, result.reused = str(adapter_dir), True
    return result


def load_merged_model(model_path: str, adapter_dir: str, merge: bool = True):
    """Base model with the adapter, float32 on CPU in eval mode.

    ``merge=True`` folds the adapter into the weights (no peft wrappers, no inference
    overhead); ``merge=False`` keeps the LoRA layers separate, which is slower per token."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32)
    model = PeftModel.from_pretrained(base, adapter_dir)
    if merge:
        model = model.merge_and_unload()
    return model.to("cpu").eval()
