"""One LoRA training run with the Hugging Face ``Trainer``, measured; the adapter is saved.

``finetune.lora.train_lora`` wraps this with validation and the content-addressed cache.
"""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path

import torch
import transformers
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM, AutoTokenizer, Trainer, TrainingArguments
from transformers.trainer_callback import PrinterCallback, ProgressCallback

from finetune.data import TrainExample
from finetune.lora import LoraSettings, TrainResult
from finetune.trainer_parts import (
    ExampleDataset,
    LossCurveCallback,
    QuietProgressCallback,
    RightPadCollator,
    peak_rss_mb,
)

logger = logging.getLogger(__name__)


def check_target_modules(model: torch.nn.Module, targets: list[str]) -> None:
    """Fail early, listing real module names, if a LoRA target matches nothing in the model."""
    names = [name for name, _ in model.named_modules() if name]
    missing = [t for t in targets if not any(n == t or n.endswith("." + t) for n in names)]
    if missing:
        leaves = sorted(
            {
                n.rsplit(".", 1)[-1]
                for n, m in model.named_modules()
                if isinstance(m, torch.nn.Linear | torch.nn.Embedding)
            }
        )
        raise ValueError(
            f"finetune.target_modules {missing} not found in the model; "
            f"available layer names include: {', '.join(leaves[:12])}"
        )


def run_training(
    model_path: str,
    examples: list[TrainExample],
    settings: LoraSettings,
    out_dir: Path,
    progress: bool,
) -> TrainResult:
    """Train, save the adapter into ``out_dir`` and return the measurements."""
    transformers.set_seed(settings.seed)
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    pad_id = (
        tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    )
    if pad_id is None:
        raise ValueError(f"the tokenizer of {model_path} has neither a pad nor an eos token")
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32)
    check_target_modules(model, settings.target_modules)
    lora_config = LoraConfig(
        r=settings.rank,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=list(settings.target_modules),
        bias="none",
        task_type="CAUSAL_LM",
    )
    model = get_peft_model(model, lora_config)
    trainable_params, total_params = model.get_nb_trainable_parameters()
    curve = LossCurveCallback()
    # The Trainer's own output folder only ever holds transient files: nothing in the CWD.
    with tempfile.TemporaryDirectory(prefix="ragtune-trainer-") as trainer_dir:
        args = TrainingArguments(
            output_dir=trainer_dir,
            per_device_train_batch_size=settings.batch_size,
            gradient_accumulation_steps=settings.grad_accum,
            learning_rate=settings.learning_rate,
            num_train_epochs=settings.epochs,
            max_steps=settings.max_steps,
            warmup_steps=settings.warmup_ratio,  # a float in [0, 1) is a ratio of total steps
            logging_steps=1,
            save_strategy="no",
            report_to="none",
            disable_tqdm=not progress,
            use_cpu=not torch.cuda.is_available(),
            seed=settings.seed,
            data_seed=settings.seed,
            remove_unused_columns=False,
            include_num_input_tokens_seen="non_padding",
            dataloader_num_workers=0,
            train_sampling_strategy="group_by_length",  # similar lengths per batch: less padding
        )
        trainer = Trainer(
            model=model,
            args=args,
            train_dataset=ExampleDataset(examples),
            data_collator=RightPadCollator(pad_id),
            callbacks=[curve],
        )
        # Loss goes to the curve and the bar, not to stdout as one printed dict per step.
        trainer.remove_callback(PrinterCallback)
        trainer.remove_callback(ProgressCallback)
        if progress:
            trainer.add_callback(QuietProgressCallback)
        start = time.perf_counter()
        output = trainer.train()
        wall_s = time.perf_counter() - start
    model.save_pretrained(out_dir)
    state = trainer.state
    samples = _samples_seen(len(examples), settings, state.global_step, args.world_size)
    tokens = int(state.num_input_tokens_seen)
    final_loss = curve.curve[-1][1] if curve.curve else float(output.training_loss)
    return TrainResult(
        adapter_dir=str(out_dir),
        reused=False,
        steps=int(state.global_step),
        epochs=float(state.epoch or 0.0),
        examples=len(examples),
        tokens=tokens,
        wall_s=wall_s,
        samples_per_s=samples / wall_s if wall_s > 0 else 0.0,
        tokens_per_s=tokens / wall_s if wall_s > 0 else 0.0,
        peak_rss_mb=peak_rss_mb(),
        trainable_params=int(trainable_params),
        total_params=int(total_params),
        final_loss=final_loss,
        loss_curve=curve.curve,
    )


def _samples_seen(n_examples: int, settings: LoraSettings, steps: int, world_size: int) -> int:
    """Examples processed: whole epochs over the data plus the batches of a partial epoch."""
    per_step = settings.batch_size * settings.grad_accum * world_size
    batches_per_epoch = -(-n_examples // (settings.batch_size * world_size))
    steps_per_epoch = max(1, -(-batches_per_epoch // settings.grad_accum))
    full_epochs, rest_steps = divmod(steps, steps_per_epoch)
    return full_epochs * n_examples + min(n_examples, rest_steps * per_step)
