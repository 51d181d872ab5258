"""One training run with the Hugging Face ``Trainer``, measured, resumable; the result published.

``finetune.lora.train_lora`` wraps this with validation, preflight checks and the cache lookup.
Everything that depends on the number of processes goes through the Trainer (its world size,
``is_world_process_zero``, ``save_model``), so ``accelerate launch`` runs the same code.
"""

from __future__ import annotations

import inspect
import json
import logging
import os
import shutil
import time
from pathlib import Path

import torch
import transformers
from transformers import AutoTokenizer, Trainer, TrainingArguments
from transformers.trainer_callback import PrinterCallback, ProgressCallback
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from costing.formulas import forward_flops, lora_training_flops
from finetune.data import IGNORE_INDEX, TrainExample, pack_examples, split_for_eval
from finetune.model_setup import load_trainable_model, parameter_counts
from finetune.settings import RESULT_FILE, LoraSettings, TrainResult, load_result
from finetune.trainer_parts import (
    ExampleDataset,
    HeldOutEarlyStopping,
    QuietProgressCallback,
    RightPadCollator,
    SeededLengthGroupedSampler,
    SkipFinalCheckpoint,
    TrainClock,
    log_curve,
    peak_cuda_mb,
    peak_rss_mb,
)
from rag.core.cache import atomic_write_text, fsync_dir, fsync_tree
from rag.core.pause import pause_point
from rag.core.store import write_checksums

logger = logging.getLogger(__name__)

TRAINER_STATE = "trainer_state.json"  # written last into a checkpoint: its presence = complete


def scores_only_labelled_positions(model: torch.nn.Module) -> bool:
    """Whether ``model`` (peft-wrapped or not) can project onto the vocabulary only at chosen
    positions: transformers' causal LMs take a boolean ``logits_to_keep`` mask for that."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "logits_to_keep" in inspect.signature(base.forward).parameters


class SeededTrainer(Trainer):
    """The Trainer with a training order that depends only on (seed, epoch): see the sampler.

    The loss is computed from logits at labelled positions only. A question-answer example
    scores its few answer tokens, yet the model's own loss projects every position onto the
    49,152-word vocabulary (SmolLM2's head is 21% of its parameters) and runs a softmax there.
    Passing the labelled positions as ``logits_to_keep`` with their ``shift_labels`` gives the
    same loss and gradients (tests/finetune/test_training_loss.py) for less work.
    """

    def __init__(self, *args, sampler_seed: int, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.sampler_seed = sampler_seed
        self.labelled_logits_only = scores_only_labelled_positions(self.model)
        self.checkpoint_save_s = (
            0.0  # the measured cost of resumability (finetune.checkpoint_steps)
        )
        self.checkpoints_saved = 0

    def _save_checkpoint(self, model, trial):
        started = time.perf_counter()
        super()._save_checkpoint(model, trial)
        self.checkpoint_save_s += time.perf_counter() - started
        self.checkpoints_saved += 1
        pause_point("checkpoint")  # test hook (rag/core/pause.py); a no-op in real runs

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        labels = inputs.get("labels")
        if self.labelled_logits_only and labels is not None:
            # position t predicts token t + 1, as in transformers' ForCausalLMLoss
            shifted = torch.nn.functional.pad(labels, (0, 1), value=IGNORE_INDEX)[:, 1:]
            keep = shifted != IGNORE_INDEX
            inputs = {**inputs, "logits_to_keep": keep, "shift_labels": shifted[keep]}
        return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)

    def _get_train_sampler(self, train_dataset=None):
        dataset = train_dataset if train_dataset is not None else self.train_dataset
        lengths = [len(dataset[i]["input_ids"]) for i in range(len(dataset))]
        group = self.args.train_batch_size * self.args.gradient_accumulation_steps
        return SeededLengthGroupedSampler(lengths, group, self.sampler_seed)


def training_arguments(
    settings: LoraSettings, work_dir: Path, progress: bool, has_eval: bool
) -> TrainingArguments:
    s = settings
    on_gpu = torch.cuda.is_available()
    half = s.quantization == "4bit"  # QLoRA computes in bf16 (fp16 on GPUs without bf16)
    bf16 = half and torch.cuda.is_bf16_supported()
    return TrainingArguments(
        output_dir=str(work_dir),
        restore_callback_states_from_checkpoint=True,  # the training clock spans resumes
        per_device_train_batch_size=s.batch_size,
        per_device_eval_batch_size=s.batch_size,
        gradient_accumulation_steps=s.grad_accum,
        learning_rate=s.learning_rate,
        lr_scheduler_type=s.lr_scheduler,
        weight_decay=s.weight_decay,
        num_train_epochs=s.epochs,
        max_steps=s.max_steps,
        warmup_steps=s.warmup_ratio,  # a float in [0, 1) is a ratio of total steps
        logging_steps=1,
        eval_strategy="steps" if has_eval else "no",
        eval_steps=s.eval_steps if has_eval else None,
        prediction_loss_only=True,
        save_strategy="steps" if s.checkpoint_steps > 0 else "no",
        save_steps=s.checkpoint_steps if s.checkpoint_steps > 0 else 500,
        save_total_limit=2,  # the newest complete one survives a kill during the next save
        report_to="none",
        disable_tqdm=not progress,
        use_cpu=not on_gpu,
        bf16=bf16,
        fp16=half and not bf16,
        seed=s.seed,
        data_seed=s.seed,
        remove_unused_columns=False,
        include_num_input_tokens_seen="non_padding",
        dataloader_num_workers=0,
    )


def last_complete_checkpoint(work_dir: Path) -> Path | None:
    """The newest ``checkpoint-N`` whose trainer state was written (the Trainer writes it last)."""
    if not work_dir.is_dir():
        return None
    found = []
    for path in work_dir.glob(f"{PREFIX_CHECKPOINT_DIR}-*"):
        suffix = path.name.rsplit("-", 1)[-1]
        if suffix.isdigit() and (path / TRAINER_STATE).is_file():
            found.append((int(suffix), path))
    return max(found)[1] if found else None


def build_callbacks(settings: LoraSettings) -> list:
    callbacks: list = [TrainClock()]
    if settings.early_stopping_patience > 0:
        callbacks.append(HeldOutEarlyStopping(settings.early_stopping_patience))
    if settings.checkpoint_steps > 0:
        callbacks.append(SkipFinalCheckpoint(settings.checkpoint_steps))
    return callbacks


def run_training(
    model_path: str,
    examples: list[TrainExample],
    settings: LoraSettings,
    work_dir: Path,
    final_dir: Path,
    progress: bool,
) -> TrainResult:
    """Train (resuming from ``work_dir`` if a checkpoint is there) and publish to ``final_dir``."""
    transformers.set_seed(settings.seed)
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    pad_id = (
        tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    )
    if pad_id is None:
        raise ValueError(f"the tokenizer of {model_path} has neither a pad nor an eos token")
    sequences = pack_examples(examples, settings.max_length) if settings.packing else examples
    train_set, eval_set = split_for_eval(sequences, settings.eval_fraction, settings.seed)
    model = load_trainable_model(model_path, settings)
    trainable_params, total_params = parameter_counts(model)
    args = training_arguments(settings, work_dir, progress, has_eval=bool(eval_set))
    trainer = SeededTrainer(
        model=model,
        args=args,
        train_dataset=ExampleDataset(train_set),
        eval_dataset=ExampleDataset(eval_set) if eval_set else None,
        data_collator=RightPadCollator(pad_id),
        callbacks=build_callbacks(settings),
        sampler_seed=settings.seed,
    )
    # Losses go to the curves and the bar, not to stdout as one printed dict per step.
    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    if progress:
        trainer.add_callback(QuietProgressCallback)
    checkpoint = last_complete_checkpoint(work_dir)
    if checkpoint is not None:
        logger.info("resuming training from step %d (%s)", _checkpoint_step(checkpoint), checkpoint)
    output = trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    result = _measure(trainer, settings, len(examples), train_set, eval_set, final_dir)
    result.trainable_params, result.total_params = trainable_params, total_params
    # (4·N + 2·N_trainable)·D_train + 2·N·D_eval (costing.formulas states the counting rule)
    result.flops_estimate = lora_training_flops(
        total_params, trainable_params, result.tokens
    ) + forward_flops(total_params, result.eval_tokens)
    result.resumed_from_step = _checkpoint_step(checkpoint)
    result.checkpoint_save_s = trainer.checkpoint_save_s
    result.checkpoints_saved = trainer.checkpoints_saved
    if trainer.checkpoints_saved:
        logger.info(
            "saved %d checkpoints in %.2f s (%.1f%% of this run's %.1f s of training)",
            trainer.checkpoints_saved,
            trainer.checkpoint_save_s,
            100 * trainer.checkpoint_save_s / max(trainer.checkpoint_save_s, _clock_s(trainer)),
            _clock_s(trainer),
        )
    if not result.loss_curve:  # no step logged (e.g. resumed at the last step)
        result.final_loss = float(output.training_loss)
    return _publish(trainer, tokenizer, settings, result, work_dir, final_dir)


def _measure(
    trainer: Trainer,
    settings: LoraSettings,
    n_examples: int,
    train_set: list[TrainExample],
    eval_set: list[TrainExample],
    final_dir: Path,
) -> TrainResult:
    """Steps, tokens, time, memory and the curves, from the Trainer's state (which a resumed
    run restores from the checkpoint, so they cover the whole training). The caller adds the
    parameter counts and the FLOPs estimate, known from the model."""
    clock = next(c for c in trainer.callback_handler.callbacks if isinstance(c, TrainClock))
    wall_s = clock.elapsed_s()
    state, world_size = trainer.state, int(trainer.args.world_size)
    loss_curve = log_curve(state.log_history, "loss")
    eval_curve = log_curve(state.log_history, "eval_loss")
    tokens = int(state.num_input_tokens_seen)
    samples = _samples_seen(len(train_set), settings, state.global_step, world_size)
    stop_step = state.max_steps if state.max_steps > 0 else state.global_step
    return TrainResult(
        adapter_dir=str(final_dir),
        reused=False,
        steps=int(state.global_step),
        epochs=float(state.epoch or 0.0),
        examples=n_examples,
        tokens=tokens,
        wall_s=wall_s,
        samples_per_s=samples / wall_s if wall_s > 0 else 0.0,
        tokens_per_s=tokens / wall_s if wall_s > 0 else 0.0,
        peak_rss_mb=peak_rss_mb(),
        trainable_params=0,
        total_params=0,
        final_loss=loss_curve[-1][1] if loss_curve else float("nan"),
        loss_curve=loss_curve,
        method=settings.method,
        world_size=world_size,
        train_sequences=len(train_set),
        eval_sequences=len(eval_set),
        eval_tokens=len(eval_curve) * sum(len(e.input_ids) for e in eval_set),
        eval_loss_curve=eval_curve,
        best_eval_loss=min(loss for _, loss in eval_curve) if eval_curve else None,
        stopped_early=settings.early_stopping_patience > 0 and state.global_step < stop_step,
        learning_rate_curve=log_curve(state.log_history, "learning_rate"),
        peak_cuda_mb=peak_cuda_mb(),
    )


def _publish(trainer, tokenizer, settings, result, work_dir: Path, final_dir: Path) -> TrainResult:
    """Every process takes part in saving (FSDP/DeepSpeed gather the weights); the main one
    writes the result, renames the staged folder into the cache and removes the work folder."""
    staging = work_dir / "final"
    main = trainer.is_world_process_zero()
    if main and staging.exists():
        shutil.rmtree(staging)
    trainer.accelerator.wait_for_everyone()
    trainer.save_model(str(staging))  # the adapter, or the whole model for method=full
    published = True
    if main:
        (staging / "training_args.bin").unlink(missing_ok=True)  # a pickle; the cache has JSON
        if settings.method == "full":
            tokenizer.save_pretrained(staging)  # the folder is a complete model
        atomic_write_text(staging / RESULT_FILE, json.dumps(result.to_dict(), indent=2))
        write_checksums(staging)  # verified on every reuse (finetune/lora.py)
        _share(staging)
        fsync_tree(staging)  # on disk before the entry's name appears (power loss)
        try:
            os.rename(staging, final_dir)
            fsync_dir(final_dir.parent)
        except OSError:
            if not final_dir.exists():
                raise
            published = False  # another run finished the same key first: keep its entry
        shutil.rmtree(work_dir, ignore_errors=True)
    trainer.accelerator.wait_for_everyone()
    return result if published else load_result(final_dir)


def _share(folder: Path) -> None:
    """Cache entries are shared: some writers create files private (0600); apply the umask."""
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(folder, 0o777 & ~mask)
    for path in folder.rglob("*"):
        os.chmod(path, (0o777 if path.is_dir() else 0o666) & ~mask)


def _clock_s(trainer) -> float:
    """Training seconds of this process (the TrainClock callback, without earlier runs)."""
    clock = next(c for c in trainer.callback_handler.callbacks if isinstance(c, TrainClock))
    return clock.elapsed_s() - clock.elapsed_before_s


def _checkpoint_step(checkpoint: Path | None) -> int:
    return int(checkpoint.name.rsplit("-", 1)[-1]) if checkpoint is not None else 0


def _samples_seen(n_examples: int, settings: LoraSettings, steps: int, world_size: int) -> int:
    """Examples processed: whole epochs over the data plus the batches of a partial epoch."""
    per_step = settings.batch_size * settings.grad_accum * world_size
    batches_per_epoch = -(-n_examples // (settings.batch_size * world_size))
    steps_per_epoch = max(1, -(-batches_per_epoch // settings.grad_accum))
    full_epochs, rest_steps = divmod(steps, steps_per_epoch)
    return full_epochs * n_examples + min(n_examples, rest_steps * per_step)
