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

import logging
import os
import shutil
from dataclasses import asdict
from importlib.metadata import version
from pathlib import Path

from finetune.data import TrainExample, examples_fingerprint
from finetune.settings import (  # noqa: F401  (re-exported: the package's public names)
    LR_SCHEDULERS,
    METHODS,
    QUANTIZATIONS,
    RESULT_FILE,
    LoraSettings,
    TrainResult,
    load_result,
    validate_settings,
)
from finetune.targets import resolve_target_modules
from rag.core.cache import content_key, model_fingerprint

logger = logging.getLogger(__name__)

# Bump when the training code changes what an adapter with the same inputs would contain.
TRAIN_CODE_VERSION = "2"
# Settings that change how training runs but not what it produces: left out of the cache key.
NOT_IN_KEY = ("checkpoint_steps",)


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
    if final_dir.exists() and _intact(final_dir, key, remove=False):
        return _reuse(final_dir, key)
    # Parallel jobs wanting the same adapter: one trains, the others wait and reuse it (they
    # would otherwise share one work folder). Not under accelerate: its ranks train together.
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        if final_dir.exists() and is_main_process():
            _intact(final_dir, key, remove=True)
        return _train(model_path, examples, settings, key, final_dir, progress)
    from rag.core.lock import file_lock
    from rag.core.store import DEFAULT_LOCK_TIMEOUT_S

    lock = Path(cache_root) / ".locks" / f"adapter-{key}.lock"  # keeps adapters/ entries only
    with file_lock(lock, DEFAULT_LOCK_TIMEOUT_S, "adapter"):
        if final_dir.exists() and _intact(final_dir, key, remove=True):
            return _reuse(final_dir, key)
        return _train(model_path, examples, settings, key, final_dir, progress)


def _intact(final_dir: Path, key: str, remove: bool) -> bool:
    """Verify a cached adapter against its checksums (written when it was published); a
    truncated or changed file is logged and, with ``remove`` (under the lock), the entry is
    removed so that it is trained again."""
    from rag.core.store import CorruptEntryError, remove_entry, verify_entry

    try:
        verify_entry(final_dir, "adapter")
        return True
    except CorruptEntryError as err:
        if not remove:
            return False
        logger.warning("cached adapter %s failed verification (%s); training it again", key, err)
        remove_entry(final_dir)
        return False


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

    logger.info(
        "training LoRA adapter %s on %d examples (max_steps=%s, epochs=%s): the bar below counts "
        "optimizer steps",
        key,
        len(examples),
        settings.max_steps,
        settings.epochs,
    )
    result = run_training(model_path, examples, settings, work_dir, final_dir, progress)
    if result.reused:
        logger.info("another run published adapter %s first; using it", key)
    else:
        logger.info("trained adapter %s in %.1f s", key, result.wall_s)
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
