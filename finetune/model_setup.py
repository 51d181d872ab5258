"""The model to train: LoRA on full-precision or 4-bit (QLoRA) weights, or every weight (full).

Full fine-tuning is meant for small models: AdamW keeps about 16 bytes per parameter (fp32
weight, gradient and two moments), about 2.2 GB for a 135M model.
"""

from __future__ import annotations

import logging

import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM
from transformers.pytorch_utils import Conv1D

from finetune.settings import LoraSettings
from finetune.targets import ALL_LINEAR, TargetModulesError, resolve_target_modules

logger = logging.getLogger(__name__)


def check_target_modules(model: torch.nn.Module, targets: list[str]) -> None:
    """Fail early, listing real module names, if a LoRA target matches nothing in the model."""
    names = [name for name, _ in model.named_modules() if name]
    missing = [t for t in targets if not any(n == t or n.endswith("." + t) for n in names)]
    if missing:
        layers = (torch.nn.Linear, torch.nn.Embedding, Conv1D)
        leaves = sorted(
            {n.rsplit(".", 1)[-1] for n, m in model.named_modules() if isinstance(m, layers)}
        )
        raise TargetModulesError(
            f"finetune.target_modules {missing} not found in the model; "
            f"available layer names include: {', '.join(leaves[:12])} "
            "(or use a preset such as all-linear)"
        )


def load_trainable_model(model_path: str, settings: LoraSettings) -> torch.nn.Module:
    """The base model with LoRA layers (only they train), or the plain model for ``full``."""
    if settings.quantization == "4bit":
        model = _load_4bit(model_path)
    else:
        model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32)
    if settings.method == "full":
        for parameter in model.parameters():
            parameter.requires_grad_(True)
        return model
    targets = resolve_target_modules(settings.target_modules)
    if targets != ALL_LINEAR:
        check_target_modules(model, targets)
    lora_config = LoraConfig(
        r=settings.rank,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=targets,
        bias="none",
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, lora_config)


def _load_4bit(model_path: str) -> torch.nn.Module:
    """NF4 weights with double quantisation, the QLoRA recipe (Dettmers et al. 2023, 2305.14314)."""
    from accelerate import PartialState
    from peft import prepare_model_for_kbit_training
    from transformers import BitsAndBytesConfig

    compute = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    quantization = BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=compute,
    )
    model = AutoModelForCausalLM.from_pretrained(
        model_path,
        dtype=compute,
        quantization_config=quantization,
        device_map={"": PartialState().local_process_index},  # one full copy per process (DDP)
    )
    return prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)


def parameter_counts(model: torch.nn.Module) -> tuple[int, int]:
    """``(trainable, total)``; peft counts 4-bit packed weights at their unpacked size."""
    if hasattr(model, "get_nb_trainable_parameters"):
        trainable, total = model.get_nb_trainable_parameters()
        return int(trainable), int(total)
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return int(trainable), int(total)
