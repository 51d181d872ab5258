"""Training near compute peak: the machine's FP32 matmul peak, and the LoRA step's achieved
FLOP/s as a fraction of it.

Peak: best FLOP/s of ``torch.mm`` on square float32 matrices (2 * n^3 FLOPs per product, one
multiply-add per inner-product term), over a few sizes and repeats with torch's own threads:
what a well-shaped GEMM reaches here, measured rather than taken from a datasheet.

LoRA step: ``finetune.training.run_training`` on the real model, per-step time from the step
ends (``bench.overhead.step_timer``), FLOPs per step from the project's one counting rule
(``costing.formulas.lora_training_flops``: (4 N + 2 N_trainable) per token; a modelled count,
not a hardware counter).
"""

from __future__ import annotations

import logging
import statistics
import time
from dataclasses import replace

from bench.roofline import MATMUL_OPS, aten_events

logger = logging.getLogger(__name__)


def matmul_peak_flops(sizes: tuple[int, ...] = (512, 1024, 2048), repeats: int = 5) -> dict:
    """Best FP32 FLOP/s of ``torch.mm`` over ``sizes`` (square n x n), ``repeats`` each."""
    import torch

    best: dict[int, float] = {}
    for n in sizes:
        a, b = torch.randn(n, n), torch.randn(n, n)
        out = torch.empty(n, n)
        torch.mm(a, b, out=out)  # first call: allocation and kernel selection
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            torch.mm(a, b, out=out)
            times.append(time.perf_counter() - started)
        best[n] = 2.0 * n**3 / min(times)
    size = max(best, key=best.get)
    return {
        "peak_flops": best[size],
        "at_size": size,
        "per_size_flops": {str(n): f for n, f in best.items()},
        "threads": torch.get_num_threads(),
        "repeats": repeats,
    }


def lora_step_flops(model_path: str, settings, seq_len: int = 128, steps: int = 5) -> dict:
    """Median seconds per optimizer step of our training on ``batch_size`` x ``seq_len``
    random-token examples (no padding), and the step's modelled FLOPs."""
    from transformers import AutoConfig

    from bench.overhead import timed_training, training_examples
    from costing.formulas import lora_training_flops

    settings = replace(settings, max_steps=steps, checkpoint_steps=0, eval_fraction=0.0)
    vocab = int(AutoConfig.from_pretrained(model_path).vocab_size)
    tokens_per_step = settings.batch_size * settings.grad_accum * seq_len
    examples = training_examples(settings.batch_size * settings.grad_accum * steps, seq_len, vocab)
    result, timer = timed_training(model_path, examples, settings)
    step_times = [b - a for a, b in zip(timer.ends, timer.ends[1:], strict=False)]
    step_s = statistics.median(step_times)
    flops = lora_training_flops(result.total_params, result.trainable_params, tokens_per_step)
    return {
        "step_s": step_s,
        "step_flops": flops,
        "achieved_flops": flops / step_s,
        "tokens_per_step": tokens_per_step,
        "total_params": result.total_params,
        "trainable_params": result.trainable_params,
        "steps_timed": len(step_times),
    }


# Operator groups of a LoRA step's CPU self time (torch.profiler names).
STEP_GROUPS = {
    "matmul": MATMUL_OPS,
    "dropout mask (random numbers)": ("aten::bernoulli_",),
    "attention": (
        "aten::_scaled_dot_product_flash_attention_for_cpu",
        "aten::_scaled_dot_product_flash_attention_for_cpu_backward",
    ),
}


def lora_step_profile(model_path: str, settings, seq_len: int = 128) -> dict:
    """Where one LoRA optimizer step spends its time: ``torch.profiler`` over a step of the
    default adapter (peft on the real model, ``settings`` as configured, dropout included) on
    ``batch_size`` x ``seq_len`` random tokens, every position labelled, AdamW; after one
    warm-up step. Self time is split into matrix multiplies, the dropout masks' random numbers,
    attention and the rest (elementwise, norms, optimizer, dispatch); the matmuls' own rate is
    the modelled FLOPs over their self time."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    from bench.overhead import training_examples
    from costing.formulas import lora_training_flops
    from finetune.model_setup import load_trainable_model, parameter_counts

    torch.manual_seed(settings.seed)
    model = load_trainable_model(model_path, settings)
    model.train()
    trainable, total = parameter_counts(model)
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=settings.learning_rate
    )
    vocab = int(model.config.vocab_size)
    rows = [e.input_ids for e in training_examples(settings.batch_size, seq_len, vocab)]
    batch = torch.tensor(rows)

    def step() -> None:
        model(input_ids=batch, labels=batch).loss.backward()
        optimizer.step()
        optimizer.zero_grad()

    step()  # warm-up
    started = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        step()
    wall_s = time.perf_counter() - started
    events, total_us = aten_events(prof)
    shares = {
        group: sum(e.self_cpu_time_total for e in events if e.key in ops) / total_us
        for group, ops in STEP_GROUPS.items()
    }
    shares["other"] = 1.0 - sum(shares.values())
    grouped = {op for ops in STEP_GROUPS.values() for op in ops}
    others = [e for e in events if e.key not in grouped][:5]
    matmul_s = shares["matmul"] * total_us / 1e6
    flops = lora_training_flops(total, trainable, settings.batch_size * seq_len)
    return {
        "profiled_step_s": wall_s,
        "aten_self_s": total_us / 1e6,
        "shares": shares,
        "matmul_flops_per_s": flops / matmul_s if matmul_s > 0 else 0.0,
        "top_other_ops": [{"op": e.key, "share": e.self_cpu_time_total / total_us} for e in others],
        "dropout": settings.dropout,
        "tokens": settings.batch_size * seq_len,
        "threads": torch.get_num_threads(),
    }
