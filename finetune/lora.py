"""LoRA adapters trained with the Hugging Face ``Trainer`` and cached by content.

The ``Trainer`` is used (rather than a hand-written loop) so that the same code runs under
``accelerate launch`` (DDP, FSDP, DeepSpeed) on a cluster. An adapter folder is named by the hash
of the base model's content, the training examples and every setting that changes the result,
so a re-run with the same inputs reuses it and any changed input trains a new one.

While training, checkpoints (``finetune.checkpoint_steps``) go to a work folder beside the cache
entry, ``<cache>/adapters/.work-<key>/``; a run interrupted mid-way is resumed from its last
complete checkpoint by the next call with the same inputs, and the folder is deleted once the
adapter is published. Two independent runs of the same inputs at the same time would share
that folder: run one at a time per cache (``accelerate launch`` processes are one run).

torch, transformers and peft are imported inside functions: validating settings stays instant.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from dataclasses import asdict, dataclass, field, fields
from importlib.metadata import version
from pathlib import Path
from typing import Any

from finetune.data import MODES, TrainExample, examples_fingerprint
from finetune.targets import resolve_target_modules, target_modules_problem
from rag.cache import content_key, model_fingerprint

logger = logging.getLogger(__name__)

RESULT_FILE = "train_result.json"
# Bump when the training code changes what an adapter with the same inputs would contain.
TRAIN_CODE_VERSION = "2"
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
# Settings that change how training runs but not what it produces: left out of the cache key.
NOT_IN_KEY = ("checkpoint_steps",)


@dataclass
class LoraSettings:
    """Mirrors the ``finetune`` config group (mutable: Hydra schemas must be).

    New fields go at the end so positional construction keeps working."""

    mode: str = "mixed"
    rank: int = 8
    alpha: int = 16
    dropout: float = 0.05
    # A preset name (finetune/targets.py: llama, llama-all, qwen2, gemma, gpt2, all-linear...)
    # or a list of module names; typed Any because the config schema cannot express str | list.
    target_modules: Any = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])
    learning_rate: float = 1e-3
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
    checkpoint_steps: int = 0  # optimizer steps between resumable checkpoints; 0 = none


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
    flops_estimate: float = 0.0  # finetune/flops.py: (4·N + 2·N_trainable)·D + 2·N·D_eval
    peak_cuda_mb: float = 0.0  # torch.cuda.max_memory_allocated of this process; 0 on CPU
    resumed_from_step: int = 0  # the checkpoint this run resumed from; 0 = started fresh

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


def is_main_process() -> bool:
    """True outside ``accelerate launch`` / torchrun and in their rank-0 process."""
    return int(os.environ.get("RANK", "0")) == 0


def adapter_cache_key(model_fingerprint: str, examples_fp: str, settings: LoraSettings) -> str:
    code = [TRAIN_CODE_VERSION, version("peft"), version("transformers")]
    params = {k: v for k, v in asdict(settings).items() if k not in NOT_IN_KEY}
    params["target_modules"] = resolve_target_modules(settings.target_modules)
    return content_key("lora-adapter", code, model_fingerprint, examples_fp, params)


def train_lora(
    model_path: str,
    examples: list[TrainExample],
    settings: LoraSettings,
    cache_root: Path,
    progress: bool = True,
) -> TrainResult:
    """Train an adapter on ``examples`` or return the cached one for identical inputs.

    Resumes from the last checkpoint of an interrupted run with the same inputs. Under
    ``accelerate launch`` every process must call this (they train together); only the main
    process writes the adapter and its result file."""
    validate_settings(settings)
    if not examples:
        raise ValueError(
            f"no training examples to fine-tune on (finetune.mode={settings.mode!r}); check that "
            "the corpus has documents (cpt, mixed) or the QA set has a train split (qa_sft, "
            "mixed), or change finetune.mode"
        )
    longest = max(len(e.input_ids) for e in examples)
    if longest > settings.max_length:
        raise ValueError(
            f"a training example has {longest} tokens, more than finetune.max_length="
            f"{settings.max_length}; build the examples with the same max_length"
        )
    key = adapter_cache_key(model_fingerprint(model_path), examples_fingerprint(examples), settings)
    adapters = Path(cache_root) / "adapters"
    final_dir = adapters / key
    if final_dir.exists():
        return _reuse(final_dir, key)
    # Parallel jobs wanting the same adapter: one trains, the others wait and reuse it (they
    # would otherwise share one work folder). Not under accelerate: its ranks train together.
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        return _train(model_path, examples, settings, key, final_dir, progress)
    from rag.lock import file_lock
    from rag.store import DEFAULT_LOCK_TIMEOUT_S

    lock = Path(cache_root) / ".locks" / f"adapter-{key}.lock"  # keeps adapters/ entries only
    with file_lock(lock, DEFAULT_LOCK_TIMEOUT_S, "adapter"):
        if final_dir.exists():
            return _reuse(final_dir, key)
        return _train(model_path, examples, settings, key, final_dir, progress)


def _reuse(final_dir: Path, key: str) -> TrainResult:
    work_dir = final_dir.with_name(f".work-{key}")
    if work_dir.exists() and is_main_process():  # left by a run stopped after publishing
        shutil.rmtree(work_dir, ignore_errors=True)
    logger.info("reusing cached adapter %s", key)
    return load_result(final_dir)


def _train(model_path, examples, settings, key: str, final_dir: Path, progress) -> TrainResult:
    work_dir = final_dir.with_name(f".work-{key}")
    from finetune.preflight import check_max_length, check_quantization

    check_quantization(settings.quantization)
    check_max_length(model_path, settings.max_length)
    from finetune.training import run_training

    result = run_training(model_path, examples, settings, work_dir, final_dir, progress)
    if result.reused:
        logger.info("another run published adapter %s first; using it", key)
    else:
        logger.info("trained adapter %s in %.1f s", key, result.wall_s)
    return result


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


def load_merged_model(model_path: str, adapter_dir: str, merge: bool = True):
    """Base model with the adapter, float32 on CPU in eval mode.

    ``merge=True`` folds the adapter into the weights (no peft wrappers, no inference
    overhead); ``merge=False`` keeps the LoRA layers separate, which is slower per token.
    A full fine-tune (``finetune.method=full``) saved the whole model: it is loaded as is and
    ``merge`` changes nothing. A QLoRA adapter is applied to the full-precision base."""
    import torch
    from transformers import AutoModelForCausalLM

    folder = Path(adapter_dir)
    if not (folder / "adapter_config.json").is_file() and (folder / "config.json").is_file():
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
        return model.to("cpu").eval()
    from peft import PeftModel

    base = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32)
    model = PeftModel.from_pretrained(base, adapter_dir)
    if merge:
        model = model.merge_and_unload()
    return model.to("cpu").eval()
