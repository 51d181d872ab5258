"""Checks that need the machine or the model's config, run before any weight is loaded.

``validate_settings`` checks values alone (instant, at config time); these look at the
environment (CUDA, bitsandbytes) and the model's config file, and take about a second.
"""

from __future__ import annotations

import importlib.util


def check_quantization(quantization: str) -> None:
    """QLoRA (4-bit base weights) needs bitsandbytes and a CUDA GPU; say which is missing."""
    if quantization == "none":
        return
    import torch

    missing = []
    if not torch.cuda.is_available():
        missing.append("a CUDA GPU (none is visible to torch here)")
    if importlib.util.find_spec("bitsandbytes") is None:
        missing.append("the bitsandbytes package (pip install bitsandbytes)")
    if missing:
        raise RuntimeError(
            f"finetune.quantization={quantization!r} (QLoRA) needs {' and '.join(missing)}; "
            "set finetune.quantization=none to train LoRA on full-precision weights"
        )


def model_max_positions(model_path: str) -> int | None:
    """The longest sequence the model's position embeddings support, if its config says."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(model_path)
    # GPT-2 style configs name it n_positions; transformers maps it to max_position_embeddings.
    limit = getattr(config, "max_position_embeddings", None)
    return int(limit) if isinstance(limit, int) and limit > 0 else None


def check_max_length(model_path: str, max_length: int) -> None:
    limit = model_max_positions(model_path)
    if limit is not None and max_length > limit:
        raise ValueError(
            f"finetune.max_length={max_length} is longer than {model_path} supports "
            f"(max_position_embeddings={limit}); set finetune.max_length to at most {limit}"
        )
