"""Decode time per token against the memory roofline.

At batch 1 every generated token reads every weight once (the KV cache of a short prompt is
tiny beside 135M parameters), so the fastest possible time per output token is
``model bytes / memory bandwidth``. The bandwidth is measured here with a large numpy copy
(best of several; a copy reads and writes every byte, so bytes moved = 2 x size, the STREAM
"Copy" convention: McCalpin, https://www.cs.virginia.edu/stream/ref.html).
"""

from __future__ import annotations

import statistics
import time

import numpy as np

from bench.overhead import LONG_PROMPT


def copy_bandwidth_gbs(size_bytes: int = 2**30, repeats: int = 5) -> dict:
    """Best GB/s (1e9 bytes/s) of ``np.copyto`` over ``repeats`` copies of ``size_bytes``."""
    if size_bytes < 2**20:
        raise ValueError(f"size_bytes must be >= 1 MiB to measure memory, got {size_bytes}")
    source = np.ones(size_bytes // 4, dtype=np.float32)
    target = np.empty_like(source)
    np.copyto(target, source)  # first touch: page faults are not bandwidth
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        np.copyto(target, source)
        times.append(time.perf_counter() - started)
    moved = 2 * source.nbytes
    return {
        "bytes": int(source.nbytes),
        "repeats": repeats,
        "best_gbs": moved / min(times) / 1e9,
        "median_gbs": moved / statistics.median(times) / 1e9,
    }


def torch_copy_bandwidth_gbs(size_bytes: int = 2**30, repeats: int = 5) -> float:
    """The same copy with torch's intra-op threads (all cores, as decoding uses them)."""
    import torch

    source = torch.ones(size_bytes // 4, dtype=torch.float32)
    target = torch.empty_like(source)
    target.copy_(source)
    best = min(_timed(lambda: target.copy_(source)) for _ in range(repeats))
    return 2 * source.numel() * 4 / best / 1e9


def _timed(call) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def parameter_bytes(model) -> int:
    """Bytes of the model's parameters at their dtype (tied weights counted once)."""
    return int(sum(p.numel() * p.element_size() for p in model.parameters()))


def decode_tpot(model_path: str, max_new_tokens: int = 64, repeats: int = 5) -> dict:
    """Median TPOT (evaluate.backends.transformers token clock) of batch-1 greedy chat
    generation."""
    import torch

    from evaluate.backends.transformers import ChatGenerator

    generator = ChatGenerator.load(model_path, max_new_tokens=max_new_tokens)
    messages = [{"role": "user", "content": LONG_PROMPT}]
    generator.generate(messages)  # warm-up
    runs = [generator.generate(messages) for _ in range(repeats)]
    dtype = next(generator.model.parameters()).dtype
    return {
        "tpot_s": statistics.median(r.tpot_s for r in runs),
        "ttft_s": statistics.median(r.ttft_s for r in runs),
        "output_tokens": runs[-1].output_tokens,
        "prompt_tokens": runs[-1].input_tokens,
        "model_bytes": parameter_bytes(generator.model),
        "dtype": str(dtype).replace("torch.", ""),
        "threads": torch.get_num_threads(),
        "n": repeats,
    }


def roofline(decode: dict, bandwidth_gbs: float) -> dict:
    """The roofline time per token and measured/roofline."""
    if bandwidth_gbs <= 0:
        raise ValueError(f"bandwidth must be > 0 GB/s, got {bandwidth_gbs}")
    roofline_s = decode["model_bytes"] / (bandwidth_gbs * 1e9)
    return {"roofline_tpot_s": roofline_s, "ratio": decode["tpot_s"] / roofline_s}


# Operators whose self time is matrix-multiply work (everything else on the decode path is
# elementwise, normalisation, attention bookkeeping or dispatch).
MATMUL_OPS = ("aten::mm", "aten::addmm", "aten::bmm", "aten::matmul", "aten::linear")


def decode_profile(model_path: str, max_new_tokens: int = 32, top: int = 10) -> dict:
    """``torch.profiler`` over one batch-1 greedy chat generation (after a warm-up): operator
    calls per generated token, the share of CPU self time in matrix multiplies, and the ``top``
    operators by self time. Many small operators per token, each a few microseconds of dispatch,
    are what separates eager decoding of a 576-wide model from its memory roofline."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    from evaluate.backends.transformers import ChatGenerator

    generator = ChatGenerator.load(model_path, max_new_tokens=max_new_tokens)
    messages = [{"role": "user", "content": LONG_PROMPT}]
    generator.generate(messages)  # warm-up
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        result = generator.generate(messages)
    events = [e for e in prof.key_averages() if e.key.startswith("aten::")]
    total_us = sum(e.self_cpu_time_total for e in events)
    matmul_us = sum(e.self_cpu_time_total for e in events if e.key in MATMUL_OPS)
    calls = sum(e.count for e in events)
    ranked = sorted(events, key=lambda e: e.self_cpu_time_total, reverse=True)[:top]
    return {
        "output_tokens": result.output_tokens,
        "aten_calls_per_token": calls / result.output_tokens,
        "aten_self_s": total_us / 1e6,
        "matmul_share": matmul_us / total_us if total_us else 0.0,
        "top_ops": [
            {
                "op": e.key,
                "calls": e.count,
                "self_ms": e.self_cpu_time_total / 1e3,
                "share": e.self_cpu_time_total / total_us if total_us else 0.0,
            }
            for e in ranked
        ],
        "threads": torch.get_num_threads(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
    }


def linear_layers_floor(model_path: str, repeats: int = 20) -> dict:
    """A bare-library reproduction of batch-1 decode's matrix work: ``torch.nn.functional.linear``
    on one token (1 x in) for every weight shape of the model's linear layers (counted as often
    as the model has them), timed alone, no transformers code. Their sum is the time per token
    that plain PyTorch needs for the weights; the rest of a measured TPOT is everything else
    (attention, norms, rotary, sampling, dispatch). ``achieved_gbs`` is the weight bytes read per
    second by those calls: compared with the copy bandwidth it says whether the BLAS path (MKL
    on x86; its AMD code path) streams weights at memory speed."""
    from collections import Counter

    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32)
    shapes = Counter(
        tuple(m.weight.shape) for m in model.modules() if isinstance(m, torch.nn.Linear)
    )
    del model
    rows, total_s, total_bytes = [], 0.0, 0
    with torch.inference_mode():
        for (out_f, in_f), count in sorted(shapes.items()):
            weight, x = torch.randn(out_f, in_f), torch.randn(1, in_f)
            torch.nn.functional.linear(x, weight)  # warm-up
            best = min(
                _timed(lambda w=weight, v=x: torch.nn.functional.linear(v, w))
                for _ in range(repeats)
            )
            nbytes = weight.numel() * 4
            rows.append(
                {
                    "shape": f"{out_f}x{in_f}",
                    "count": count,
                    "best_us": best * 1e6,
                    "gbs": nbytes / best / 1e9,
                }
            )
            total_s += best * count
            total_bytes += nbytes * count
    return {
        "linear_s_per_token": total_s,
        "weight_bytes": total_bytes,
        "achieved_gbs": total_bytes / total_s / 1e9,
        "shapes": rows,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "threads": torch.get_num_threads(),
    }


def attention_decode_threads(
    heads: int = 9, head_dim: int = 64, kv_tokens: int = 256, repeats: int = 30
) -> dict:
    """A bare-library reproduction (torch only) of one decode step's attention: a single query
    over ``kv_tokens`` cached keys (SmolLM2-135M: 9 heads of 64), median microseconds of
    ``F.scaled_dot_product_attention`` at 1 thread and at torch's threads, beside the same
    product written out (matmul, softmax, matmul). On a machine whose cores are busy with other
    work, a kernel that splits this tiny problem across threads waits for a descheduled thread
    at every call; the 1-thread figure shows what the work itself costs."""
    import torch
    import torch.nn.functional as F

    generator = torch.Generator().manual_seed(0)
    q = torch.randn(1, heads, 1, head_dim, generator=generator)
    k = torch.randn(1, heads, kv_tokens, head_dim, generator=generator)
    v = torch.randn(1, heads, kv_tokens, head_dim, generator=generator)
    scale = head_dim**-0.5

    def written_out():
        return torch.softmax((q @ k.transpose(-1, -2)) * scale, dim=-1) @ v

    def median_us(call) -> float:
        call()
        return statistics.median(_timed(call) for _ in range(repeats)) * 1e6

    threads = torch.get_num_threads()
    out: dict[str, float | int] = {"threads": threads, "kv_tokens": kv_tokens}
    with torch.inference_mode():
        for n in sorted({1, threads}):
            torch.set_num_threads(n)
            try:
                out[f"sdpa_us_{n}_threads"] = median_us(
                    lambda: F.scaled_dot_product_attention(q, k, v)
                )
                out[f"written_out_us_{n}_threads"] = median_us(written_out)
            finally:
                torch.set_num_threads(threads)
        diff = (F.scaled_dot_product_attention(q, k, v) - written_out()).abs().max()
    out["max_abs_diff"] = float(diff)
    return out
