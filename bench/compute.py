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
