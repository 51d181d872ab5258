"""Serving roofline with KV cache and batch: time per decode step, throughput, and the knee.

One decode step of a batch of B sequences, each holding L context tokens, reads every weight once
and every sequence's KV cache once, and does 2N FLOPs per sequence:

    step_s(B, L) = max((weight bytes + B * KV bytes(L)) / (bandwidth * MBU),
                       B * 2N / (peak FLOP/s * MFU))

(the roofline of Williams et al. 2009 applied per step, as in Pope et al. 2022,
"Efficiently Scaling Transformer Inference", arXiv:2211.05102, section 2, and the MBU/MFU
definitions of Databricks' "LLM Inference Performance Engineering: Best Practices", 2023).
Each step gives every sequence one token, so the time per output token a user sees is step_s and
the throughput is B / step_s. Prefill is compute-bound: B * T_in * 2N / (peak * MFU).

KV bytes per context token = 2 (K and V) * layers * KV heads * head dim * bytes per value
(vLLM paper, Kwon et al. 2023, arXiv:2309.06180, section 3: 800 KB per token for OPT-13B).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from costing import formulas
from costing.catalog import Hardware
from costing.rows import CostingConfigError

TERA = 1e12
# PaLM reports 46.2% MFU for training (Chowdhery et al. 2022, arXiv:2204.02311, table 3); 0.4 is
# the round figure this package has always used for compute-bound work.
DEFAULT_MFU = 0.4
# 1.0 = the memory roofline itself (an upper bound on speed). Serving stacks reach less: the
# published TensorRT-LLM throughputs in tests/costing/test_costing_serving.py need 0.8.
DEFAULT_MBU = 1.0
# Bytes per value of the dtypes a config.json names in "torch_dtype" / "dtype".
DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2, "float8": 1, "int8": 1}


@dataclass
class ModelShape:
    """What the roofline needs about a model; KV fields 0 means "weights only"."""

    n_params: float
    bytes_per_param: float = 2.0  # bf16 / fp16 weights
    n_layers: int = 0
    n_kv_heads: int = 0
    head_dim: int = 0
    kv_bytes_per_value: float = 2.0  # fp16 / bf16 KV cache
    kv_bytes_per_token_given: float | None = None  # known directly (wins over the shape)

    def __post_init__(self) -> None:
        formulas.check_number("n_params", self.n_params, strict=True)
        formulas.check_number("bytes_per_param", self.bytes_per_param, strict=True)
        for name in ("n_layers", "n_kv_heads", "head_dim"):
            formulas.check_count(name, getattr(self, name))
        formulas.check_number("kv_bytes_per_value", self.kv_bytes_per_value, strict=True)
        if self.kv_bytes_per_token_given is not None:
            formulas.check_number("kv_bytes_per_token", self.kv_bytes_per_token_given)

    @property
    def weight_bytes(self) -> float:
        return self.n_params * self.bytes_per_param

    @property
    def kv_bytes_per_token(self) -> float:
        """K and V of one context token over all layers."""
        if self.kv_bytes_per_token_given is not None:
            return self.kv_bytes_per_token_given
        return 2.0 * self.n_layers * self.n_kv_heads * self.head_dim * self.kv_bytes_per_value

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "kv_bytes_per_token": self.kv_bytes_per_token}


def shape_from_config(
    path: str | Path, n_params: float | None = None, bytes_per_param: float | None = None
) -> ModelShape:
    """Layers, KV heads and head dim from a Hugging Face ``config.json``.

    ``num_key_value_heads`` (grouped-query attention) defaults to ``num_attention_heads``;
    ``head_dim`` defaults to hidden size / heads. The KV dtype is the config's dtype.
    """
    file = Path(path)
    try:
        config = json.loads(file.read_text(encoding="utf-8"))
    except OSError as err:
        raise CostingConfigError(f"{file}: cannot read the model config ({err.strerror})") from err
    except json.JSONDecodeError as err:
        raise CostingConfigError(f"{file}: not valid JSON ({err.msg}, line {err.lineno})") from err
    config = config.get("text_config", config) if isinstance(config, dict) else config
    if not isinstance(config, dict):
        raise CostingConfigError(f"{file}: expected a JSON object")

    def field(*names: str) -> Any:
        for name in names:
            if config.get(name) is not None:
                return config[name]
        return None

    layers = field("num_hidden_layers", "n_layer", "num_layers")
    heads = field("num_attention_heads", "n_head")
    hidden = field("hidden_size", "n_embd", "d_model")
    if not all(isinstance(v, int) and v > 0 for v in (layers, heads, hidden)):
        raise CostingConfigError(
            f"{file}: needs num_hidden_layers, num_attention_heads and hidden_size "
            f"(got {layers!r}, {heads!r}, {hidden!r})"
        )
    kv_heads = field("num_key_value_heads", "multi_query_group_num") or heads
    head_dim = field("head_dim") or hidden // heads
    dtype = str(field("torch_dtype", "dtype") or "float16")
    value_bytes = DTYPE_BYTES.get(dtype.replace("torch.", ""), 2)
    if n_params is None:
        raise CostingConfigError(f"{file}: give the parameter count (--params) with the config")
    return ModelShape(
        n_params=n_params,
        bytes_per_param=bytes_per_param if bytes_per_param is not None else value_bytes,
        n_layers=int(layers),
        n_kv_heads=int(kv_heads),
        head_dim=int(head_dim),
        kv_bytes_per_value=value_bytes,
    )


@dataclass
class Roofline:
    """One replica: ``devices`` devices of ``hardware`` (tensor parallel), achieved shares."""

    hardware: Hardware
    devices: int
    mfu: float  # achieved share of peak FLOP/s
    mbu: float  # achieved share of peak memory bandwidth

    def __post_init__(self) -> None:
        formulas.check_count("devices", self.devices, minimum=1)
        for name in ("mfu", "mbu"):
            share = formulas.check_number(name, getattr(self, name), strict=True)
            if share > 1:
                raise ValueError(f"{name} must be in (0, 1], got {share!r}")
        hw = self.hardware
        if hw.peak_tflops is None or hw.bandwidth_tb_s is None:
            raise CostingConfigError(
                f"hardware {hw.name!r} has no peak_tflops or bandwidth_tb_s in the catalog; "
                "override the row to model serving on it"
            )

    @property
    def flops_per_s(self) -> float:
        return self.devices * self.hardware.peak_tflops * TERA * self.mfu

    @property
    def bytes_per_s(self) -> float:
        return self.devices * self.hardware.bandwidth_tb_s * TERA * self.mbu

    @property
    def memory_bytes(self) -> float | None:
        gb = self.hardware.memory_gb
        return None if gb is None else self.devices * gb * 1e9


def step_times(
    model: ModelShape, roof: Roofline, batch: int, context: float
) -> tuple[float, float]:
    """(memory-bound, compute-bound) seconds of one decode step; the step takes the larger."""
    formulas.check_count("batch_size", batch, minimum=1)
    formulas.check_number("context_tokens", context)
    moved = model.weight_bytes + batch * model.kv_bytes_per_token * context
    work = batch * formulas.forward_flops(model.n_params, 1)
    return moved / roof.bytes_per_s, work / roof.flops_per_s


def decode_step_seconds(model: ModelShape, roof: Roofline, batch: int, context: float) -> float:
    return max(step_times(model, roof, batch, context))


def prefill_seconds(model: ModelShape, roof: Roofline, batch: int, prompt_tokens: float) -> float:
    """Compute-bound prefill of ``batch`` prompts: B * T_in * 2N / (peak * MFU)."""
    return batch * formulas.forward_flops(model.n_params, prompt_tokens) / roof.flops_per_s


def knee_batch(model: ModelShape, roof: Roofline, context: float) -> float | None:
    """Batch size where decode turns compute-bound, or None when it never does (KV-bound)."""
    per_seq_compute = formulas.forward_flops(model.n_params, 1) / roof.flops_per_s
    per_seq_memory = model.kv_bytes_per_token * context / roof.bytes_per_s
    if per_seq_compute <= per_seq_memory:
        return None
    return (model.weight_bytes / roof.bytes_per_s) / (per_seq_compute - per_seq_memory)


def fits(model: ModelShape, roof: Roofline, batch: int, context: float) -> bool | None:
    """Whether weights and the batch's KV cache fit in the replica's memory (None: unknown)."""
    memory = roof.memory_bytes
    if memory is None:
        return None
    return model.weight_bytes + batch * model.kv_bytes_per_token * context <= memory


def batch_row(
    model: ModelShape,
    roof: Roofline,
    batch: int,
    context: float,
    tokens_per_s_per_device: float | None = None,
) -> dict[str, Any]:
    """Time per output token and tokens/s per device at one batch size and context."""
    memory_s, compute_s = step_times(model, roof, batch, context)
    if tokens_per_s_per_device is not None:  # a published or measured throughput wins
        rate = formulas.check_number(
            "tokens_per_s_per_device", tokens_per_s_per_device, strict=True
        )
        step_s, bound = batch / (rate * roof.devices), "given"
    else:
        step_s = max(memory_s, compute_s)
        bound = "compute" if compute_s > memory_s else "memory"
    return {
        "batch_size": batch,
        "context_tokens": context,
        "s_per_output_token": step_s,
        "tokens_per_s": batch / step_s,
        "tokens_per_s_per_device": batch / step_s / roof.devices,
        "memory_bound_s": memory_s,
        "compute_bound_s": compute_s,
        "bound": bound,
        "fits_in_memory": fits(model, roof, batch, context),
    }


def batch_table(
    model: ModelShape,
    roof: Roofline,
    batches: list[int],
    context: float,
    tokens_per_s_per_device: float | None = None,
) -> dict[str, Any]:
    """Rows over batch sizes; the first row at or past the knee is marked ``knee: true``."""
    knee = knee_batch(model, roof, context)
    rows = [batch_row(model, roof, b, context, tokens_per_s_per_device) for b in sorted(batches)]
    marked = False
    for row in rows:
        row["knee"] = bool(knee is not None and not marked and row["batch_size"] >= knee)
        marked = marked or row["knee"]
    return {"knee_batch_size": knee, "rows": rows}


def static_batch(
    model: ModelShape,
    roof: Roofline,
    batch: int,
    prompt_tokens: int,
    output_tokens: int,
    tokens_per_s_per_device: float | None = None,
) -> dict[str, Any]:
    """A batch of equal requests served together, as serving benchmarks time it: prefill gives
    the first token, then ``output_tokens - 1`` decode steps with a growing KV cache."""
    formulas.check_count("prompt_tokens", prompt_tokens)
    formulas.check_count("output_tokens", output_tokens, minimum=1)
    prefill_s = prefill_seconds(model, roof, batch, prompt_tokens)
    if tokens_per_s_per_device is not None:
        decode_s = (output_tokens - 1) * batch_row(
            model, roof, batch, prompt_tokens, tokens_per_s_per_device
        )["s_per_output_token"]
    else:
        decode_s = math.fsum(
            decode_step_seconds(model, roof, batch, prompt_tokens + t)
            for t in range(1, output_tokens)
        )
    total_s = prefill_s + decode_s
    peak_context = prompt_tokens + output_tokens
    return {
        "batch_size": batch,
        "prompt_tokens": prompt_tokens,
        "output_tokens": output_tokens,
        "prefill_s": prefill_s,
        "decode_s": decode_s,
        "request_s": total_s,  # every request of the batch finishes at the end
        "s_per_output_token": decode_s / (output_tokens - 1) if output_tokens > 1 else 0.0,
        "output_tokens_per_s": batch * output_tokens / total_s,
        "output_tokens_per_s_per_device": batch * output_tokens / total_s / roof.devices,
        "fits_in_memory": fits(model, roof, batch, peak_context),
    }


def largest_batch_within(
    model: ModelShape,
    roof: Roofline,
    prompt_tokens: int,
    output_tokens: int,
    latency_target_s: float,
    max_batch: int = 4096,
    tokens_per_s_per_device: float | None = None,
) -> dict[str, Any] | None:
    """The largest batch (powers of two and the values between, by bisection) whose requests
    finish within ``latency_target_s`` and fit in memory; None if even batch 1 does not."""
    target = formulas.check_number("latency_target_s", latency_target_s, strict=True)

    def ok(b: int) -> dict[str, Any] | None:
        run = static_batch(model, roof, b, prompt_tokens, output_tokens, tokens_per_s_per_device)
        return run if run["request_s"] <= target and run["fits_in_memory"] is not False else None

    best = ok(1)
    if best is None:
        return None
    low, high = 1, 2
    while high <= max_batch and ok(high):
        low, high = high, high * 2
    high = min(high, max_batch + 1)
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (mid, high) if ok(mid) else (low, mid)
    return ok(low)
