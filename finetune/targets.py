"""Which layers LoRA adapts: named presets per architecture, or an explicit list.

``finetune.target_modules`` is either a preset name (``llama``), a one-element list holding a
preset name (``[llama-all]``), or a list of module-name suffixes (``[q_proj, v_proj]``). Kept
free of torch so config validation can resolve names instantly.
"""

from __future__ import annotations

from typing import Any

from rag.core.errors import UserError


class TargetModulesError(UserError, ValueError):
    """finetune.target_modules names layers the model does not have."""


ATTENTION = ["q_proj", "k_proj", "v_proj", "o_proj"]
LLAMA_MLP = ["gate_proj", "up_proj", "down_proj"]
# peft's shorthand: every nn.Linear (and Conv1D) of the model except the output head.
ALL_LINEAR = "all-linear"

# Module names follow the transformers implementations (modeling_llama, modeling_qwen2,
# modeling_gemma/gemma3, modeling_gpt2). Architecture presets adapt the attention
# projections, the choice of the LoRA paper (Hu et al. 2021, section 7.1); ``*-all`` and
# ``all-linear`` also adapt the MLP (QLoRA, Dettmers et al. 2023, found that all layers help).
PRESETS: dict[str, list[str] | str] = {
    "llama": ATTENTION,
    "llama-all": ATTENTION + LLAMA_MLP,
    "qwen2": ATTENTION,
    "qwen2-all": ATTENTION + LLAMA_MLP,
    "gemma": ATTENTION,
    "gemma-all": ATTENTION + LLAMA_MLP,
    # GPT-2 fuses q/k/v into c_attn; c_proj names both the attention output and the MLP output.
    "gpt2": ["c_attn", "c_proj"],
    ALL_LINEAR: ALL_LINEAR,
}


def preset_name(value: Any) -> str | None:
    """The preset ``value`` names (a string or a one-element list), else None."""
    if isinstance(value, str):
        return value
    items = list(value) if isinstance(value, list | tuple) else None
    if items is not None and len(items) == 1 and items[0] in PRESETS:
        return items[0]
    return None


def target_modules_problem(value: Any) -> str | None:
    """Why ``value`` is not a usable ``finetune.target_modules``, or None if it is."""
    name = preset_name(value)
    if name is not None:
        if name in PRESETS:
            return None
        return f"a preset ({', '.join(PRESETS)}) or a list of module names"
    items = list(value) if isinstance(value, list | tuple) else None
    if not items or not all(isinstance(m, str) and m for m in items):
        return f"a preset ({', '.join(PRESETS)}) or a non-empty list of module names"
    return None


def resolve_target_modules(value: Any) -> list[str] | str:
    """The module list (or peft's ``"all-linear"``) that ``value`` stands for."""
    problem = target_modules_problem(value)
    if problem is not None:
        raise ValueError(f"finetune.target_modules must be {problem}, got {value!r}")
    name = preset_name(value)
    if name is not None:
        preset = PRESETS[name]
        return preset if isinstance(preset, str) else list(preset)
    return [str(m) for m in value]
