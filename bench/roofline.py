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


# Operators whose self time is matrix-multiply work in a profiled step (everything else is
# elementwise, normalisation, attention bookkeeping or dispatch).
MATMUL_OPS = ("aten::mm", "aten::addmm", "aten::bmm", "aten::matmul", "aten::linear")


def aten_events(prof) -> tuple[list, float]:
    """A ``torch.profiler`` run's ATen operators, largest self time first, and their total
    self time in microseconds."""
    events = sorted(
        (e for e in prof.key_averages() if e.key.startswith("aten::")),
        key=lambda e: e.self_cpu_time_total,
        reverse=True,
    )
    return events, sum(e.self_cpu_time_total for e in events)


def decode_split(model_path: str, max_new_tokens: int = 64, repeats: int = 5) -> dict:
    """Where a batch-1 decode step of the generator's decoder goes
    (``evaluate.backends.llama_decoder``): the step's median time from the token clock, and the
    step's matrix products alone (the decoder's own weight arrays, a 1-row product each, in
    numpy's BLAS as the decoder calls them). The products against the roofline say how close
    the BLAS alone comes to memory speed; the rest (norms, rotary, attention, the cache,
    Python) is what the step adds. ``decoder: False`` with the reason for models it does not
    take."""
    import numpy as np

    from evaluate.backends.transformers import ChatGenerator

    generator = ChatGenerator.load(model_path, max_new_tokens=max_new_tokens)
    decoder = generator.decoder
    if decoder is None:
        return {"decoder": False, "reason": generator.decoder_unused_because}
    ids = generator._encode([{"role": "user", "content": LONG_PROMPT}])["input_ids"]

    def step_s() -> float:
        times: list[float] = []
        decoder.generate(
            ids, max_new_tokens, set(), on_token=lambda: times.append(time.perf_counter())
        )
        return (times[-1] - times[0]) / (len(times) - 1)

    arrays = [a for layer in decoder.layers for a in layer[2:]] + [decoder.head]
    vectors = {a.shape[1]: np.ones(a.shape[1], dtype=np.float32) for a in arrays}

    def products() -> None:
        for a in arrays:
            a @ vectors[a.shape[1]]

    step_s()  # warm-up
    products()
    steps, passes = [], []
    for _ in range(repeats):  # interleaved, so that both see the same neighbours
        steps.append(step_s())
        passes.extend(_timed(products) for _ in range(3))
    product_s = statistics.median(passes)
    step = statistics.median(steps)
    weight_bytes = int(sum(a.nbytes for a in arrays))
    return {
        "decoder": True,
        "step_s": step,
        "products_s": product_s,
        "rest_s": step - product_s,
        "weight_bytes": weight_bytes,
        "products_gbs": weight_bytes / product_s / 1e9,
        "tokens": max_new_tokens,
        "numpy_blas": _numpy_blas_name(),
    }


def linear_layout(model_path: str, rows: tuple[int, ...] = (1, 8), repeats: int = 5) -> dict:
    """A bare-library reproduction of decoding's matrix work, the reason the decoder multiplies
    in numpy's BLAS and ``model.generate``'s path holds the weights column-major
    (``evaluate.backends.transformers.column_major_linear_weights``): for every
    linear layer of the model (its shapes, as many as it has, each a separate random tensor, so
    that a pass reads them from memory as decoding does), ``torch.nn.functional.linear`` on
    ``rows`` tokens with the weights row-major (``[out, in]`` contiguous, as checkpoints load)
    and column-major, and numpy's ``W @ x`` (numpy's own BLAS, OpenBLAS in its wheels) on the
    same row-major arrays at one row. No transformers code. Best seconds per pass and the
    weight bytes read per second: against the copy bandwidth they say whether a BLAS path
    streams the weights at memory speed."""
    import torch
    from transformers import AutoModelForCausalLM

    from evaluate.backends.transformers import column_major

    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32)
    shapes = [tuple(m.weight.shape) for m in model.modules() if isinstance(m, torch.nn.Linear)]
    del model
    generator = torch.Generator().manual_seed(0)
    row_major = [torch.randn(out_f, in_f, generator=generator) for out_f, in_f in shapes]
    column_major = [column_major(w) for w in row_major]
    weight_bytes = sum(w.numel() * 4 for w in row_major)
    inputs = {n: {i: torch.randn(n, i, generator=generator) for _, i in shapes} for n in rows}

    def best_s(call) -> float:
        call()  # warm-up
        return min(_timed(call) for _ in range(repeats))

    def linear_pass(weights, n):
        return lambda: [torch.nn.functional.linear(inputs[n][w.shape[1]], w) for w in weights]

    out: dict = {"layers": len(shapes), "weight_bytes": weight_bytes, "rows": {}}
    with torch.inference_mode():
        for n in rows:
            out["rows"][n] = {
                "row_major_s": best_s(linear_pass(row_major, n)),
                "column_major_s": best_s(linear_pass(column_major, n)),
            }
        arrays = [w.numpy() for w in row_major]
        vectors = {i: v.numpy()[0] for i, v in inputs[1].items()} if 1 in rows else {}
        if vectors:
            out["rows"][1]["numpy_s"] = best_s(lambda: [a @ vectors[a.shape[1]] for a in arrays])
        # the layouts compute the same products (summation order aside)
        n = rows[0]
        x = inputs[n][shapes[0][1]]
        diff = torch.nn.functional.linear(x, row_major[0]) - torch.nn.functional.linear(
            x, column_major[0]
        )
    for timings in out["rows"].values():
        for key in list(timings):
            timings[key.removesuffix("_s") + "_gbs"] = weight_bytes / timings[key] / 1e9
    out["max_abs_diff"] = float(diff.abs().max())
    out["numpy_blas"] = _numpy_blas_name()
    out["cpu_capability"] = torch.backends.cpu.get_cpu_capability()
    out["threads"] = torch.get_num_threads()
    return out


def _numpy_blas_name() -> str:
    """The BLAS numpy was built with (e.g. ``scipy-openblas``), or ``unknown``."""
    try:
        config = np.show_config(mode="dicts")
        return str(config["Build Dependencies"]["blas"]["name"])
    except Exception:  # older numpy without mode="dicts", or another layout
        return "unknown"


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
