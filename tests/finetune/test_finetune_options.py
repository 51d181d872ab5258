"""Fine-tuning options: target-module presets, settings checks, packing, scheduler and weight
decay reaching the Trainer, full fine-tuning, the FLOPs estimate, QLoRA and max-length errors."""

from __future__ import annotations

import importlib.util
from dataclasses import replace

import pytest
import torch
import transformers
from transformers.trainer_utils import SchedulerType

from costing.formulas import forward_flops, lora_training_flops
from finetune.data import IGNORE_INDEX, build_examples, pack_examples
from finetune.lora import (
    LR_SCHEDULERS,
    LoraSettings,
    adapter_cache_key,
    load_merged_model,
    train_lora,
    validate_settings,
)
from finetune.model_setup import load_trainable_model, parameter_counts
from finetune.targets import PRESETS, resolve_target_modules
from finetune.training import training_arguments
from rag.core.types import Document, QAPair

HIDDEN, INTERMEDIATE, LAYERS = 32, 64, 2  # the tiny model (rag/core/tiny.py)
QLORA_USABLE = torch.cuda.is_available() and importlib.util.find_spec("bitsandbytes") is not None


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    return transformers.AutoTokenizer.from_pretrained(tiny_model_dir)


@pytest.fixture(scope="module")
def base_params(tiny_model_dir) -> int:
    model = transformers.AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    return sum(p.numel() for p in model.parameters())


def qa_pairs(n: int) -> list[QAPair]:
    return [
        QAPair(f"q{i}", f"Where was person {i} born?", [f"Town {i}"], ["d0"], split="train")
        for i in range(n)
    ]


DOCS = [
    Document("d0", "Person 0", "Person 0 was born in Town 0 in 1950. " * 6),
    Document("d1", "Person 1", "Person 1 was born in Town 1 in 1960."),
]


def test_presets_resolve_by_name_or_list_and_unknown_names_list_the_presets():
    assert resolve_target_modules("llama") == ["q_proj", "k_proj", "v_proj", "o_proj"]
    all_llama = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    assert resolve_target_modules(["llama-all"]) == all_llama
    assert resolve_target_modules("qwen2") == resolve_target_modules("gemma")
    assert resolve_target_modules("gpt2") == ["c_attn", "c_proj"]
    assert resolve_target_modules("all-linear") == "all-linear"  # peft's own shorthand
    assert resolve_target_modules(["q_proj", "v_proj"]) == ["q_proj", "v_proj"]
    with pytest.raises(ValueError, match=r"finetune.target_modules must be a preset \(llama, "):
        resolve_target_modules("bert")
    validate_settings(LoraSettings(target_modules="llama-all"))
    with pytest.raises(ValueError, match="finetune.target_modules.*'bert'"):
        validate_settings(LoraSettings(target_modules="bert"))
    # A preset and the list it stands for train the same adapter: one cache entry.
    explicit = LoraSettings(target_modules=resolve_target_modules("llama"))
    assert adapter_cache_key("m", "e", LoraSettings(target_modules="llama")) == adapter_cache_key(
        "m", "e", explicit
    )
    assert set(PRESETS) >= {"llama", "llama-all", "all-linear", "qwen2", "gpt2", "gemma"}


def test_presets_adapt_the_hand_counted_parameters(tiny_model_dir):
    def trainable(target_modules, rank=4):
        settings = LoraSettings(rank=rank, target_modules=target_modules)
        return parameter_counts(load_trainable_model(tiny_model_dir, settings))[0]

    # LoRA on a d_in x d_out layer adds A (r x d_in) and B (d_out x r): r * (d_in + d_out).
    attention = 4 * 4 * (HIDDEN + HIDDEN)
    mlp = 2 * 4 * (HIDDEN + INTERMEDIATE) + 4 * (INTERMEDIATE + HIDDEN)
    assert trainable("llama") == LAYERS * attention
    assert trainable("llama-all") == LAYERS * (attention + mlp)
    assert trainable("all-linear") == LAYERS * (attention + mlp)  # lm_head is left out
    with pytest.raises(ValueError, match=r"\['c_attn', 'c_proj'\] not found.*q_proj"):
        trainable("gpt2")


def test_settings_errors_name_the_key_and_the_fix():
    cases = {
        "method": LoraSettings(method="qlora"),
        "quantization": LoraSettings(quantization="8bit"),
        "lr_scheduler": LoraSettings(lr_scheduler="cosinus"),
        "weight_decay": LoraSettings(weight_decay=-0.1),
        "eval_fraction": LoraSettings(eval_fraction=1.0),
        "eval_steps": LoraSettings(eval_fraction=0.1, eval_steps=0),
        "checkpoint_steps": LoraSettings(checkpoint_steps=-1),
        "rank": LoraSettings(rank=0),
    }
    for key, settings in cases.items():
        with pytest.raises(ValueError, match=rf"^finetune\.{key} must be"):
            validate_settings(settings)
    with pytest.raises(ValueError, match="finetune.quantization.*set finetune.method=lora"):
        validate_settings(LoraSettings(quantization="4bit", method="full"))
    with pytest.raises(ValueError, match="early_stopping_patience.*finetune.eval_fraction > 0"):
        validate_settings(LoraSettings(early_stopping_patience=2))
    validate_settings(LoraSettings(quantization="4bit"))  # a valid config on any machine
    # Every scheduler we accept is one transformers knows.
    assert set(LR_SCHEDULERS) <= {s.value for s in SchedulerType}


def test_scheduler_weight_decay_eval_and_checkpoints_reach_the_trainer_arguments(tmp_path):
    settings = LoraSettings(
        lr_scheduler="cosine_with_restarts", weight_decay=0.1, eval_fraction=0.2, eval_steps=7,
        checkpoint_steps=5, batch_size=3, grad_accum=2, warmup_ratio=0.25,
    )  # fmt: skip
    args = training_arguments(settings, tmp_path, progress=False, has_eval=True)
    assert args.lr_scheduler_type == SchedulerType.COSINE_WITH_RESTARTS
    assert args.weight_decay == 0.1 and args.warmup_steps == 0.25
    assert args.eval_strategy == "steps" and args.eval_steps == 7
    assert args.save_strategy == "steps" and args.save_steps == 5
    assert args.report_to == [] or args.report_to == "none"
    assert args.per_device_train_batch_size == 3 and args.gradient_accumulation_steps == 2
    plain = training_arguments(
        LoraSettings(checkpoint_steps=0), tmp_path, progress=False, has_eval=False
    )
    assert plain.eval_strategy == "no" and plain.save_strategy == "no"
    default = training_arguments(LoraSettings(), tmp_path, progress=False, has_eval=False)
    assert default.save_strategy == "steps" and default.save_steps == 25  # resumable by default


def test_packing_fills_max_length_blocks_and_leaves_qa_examples_alone(tokenizer):
    examples = build_examples(DOCS, qa_pairs(2), tokenizer, mode="mixed", max_length=64)
    docs = [e for e in examples if e.kind == "doc"]
    qas = [e for e in examples if e.kind == "qa"]
    packed = pack_examples(examples, 16)
    blocks = [e for e in packed if e.kind == "doc"]
    stream = [t for e in docs for t in e.input_ids]
    assert [len(b.input_ids) for b in blocks[:-1]] == [16] * (len(blocks) - 1)
    assert 2 <= len(blocks[-1].input_ids) <= 16
    assert len(blocks) == -(-len(stream) // 16)
    assert [t for b in blocks for t in b.input_ids] == stream  # order and tokens kept
    assert all(b.labels == b.input_ids for b in blocks)  # every document token labelled
    # Documents are joined at their end-of-sequence token, the next one follows directly.
    eos_at = stream.index(tokenizer.eos_token_id)
    assert eos_at % 16 != 15  # here the boundary falls inside a block, not at its end
    block = blocks[eos_at // 16].input_ids
    assert block[eos_at % 16 + 1] == tokenizer(DOCS[1].text).input_ids[0]
    assert packed[len(blocks) :] == qas  # QA examples unchanged, prompt still masked
    assert all(IGNORE_INDEX in e.labels for e in packed[len(blocks) :])


def test_packed_lora_run_measures_tokens_and_flops_by_the_documented_rule(
    tiny_model_dir, tokenizer, base_params, tmp_path
):
    examples = build_examples(DOCS, [], tokenizer, mode="cpt", max_length=64)
    settings = LoraSettings(
        mode="cpt", max_length=16, packing=True, batch_size=64, max_steps=2, rank=4,
        target_modules="llama", warmup_ratio=0.0,
    )  # fmt: skip
    with pytest.raises(ValueError, match="more than finetune.max_length=16"):
        train_lora(tiny_model_dir, examples, settings, tmp_path, progress=False)
    # Short documents leave short windows: packing joins them.
    short = [Document(f"s{i}", f"S{i}", f"Person {i} was born in Town {i}.") for i in (2, 3)]
    examples = build_examples(DOCS + short, [], tokenizer, mode="cpt", max_length=16)
    result = train_lora(tiny_model_dir, examples, settings, tmp_path, progress=False)
    stream = sum(len(e.input_ids) for e in examples)
    tail = stream % 16 if stream % 16 >= 2 else 0  # a 1-token tail has nothing to predict
    assert result.train_sequences == stream // 16 + (tail > 0) < len(examples)
    kept = stream // 16 * 16 + tail
    assert result.tokens == 2 * kept  # one batch holds every block: each step sees them all
    n_trainable = LAYERS * 4 * 4 * (HIDDEN + HIDDEN)
    assert result.trainable_params == n_trainable
    assert result.total_params == base_params + n_trainable
    # Forward 2·N·D + activation gradients 2·N·D + weight gradients 2·N_trainable·D.
    expected = (4 * result.total_params + 2 * n_trainable) * result.tokens
    assert (
        result.flops_estimate
        == expected
        == lora_training_flops(result.total_params, n_trainable, result.tokens)
    )
    assert lora_training_flops(10, 10, 7) == 6 * 10 * 7  # full fine-tuning: Kaplan's 6·N·D
    assert lora_training_flops(10, 2, 7) + forward_flops(10, 3) == (4 * 10 + 2 * 2) * 7 + 2 * 10 * 3
    assert result.method == "lora" and result.world_size == 1 and result.peak_cuda_mb == 0.0
    assert result.resumed_from_step == 0 and result.wall_s > 0


def test_full_fine_tuning_trains_every_weight_and_saves_a_whole_model(
    tiny_model_dir, tokenizer, base_params, tmp_path
):
    examples = build_examples([], qa_pairs(2), tokenizer, mode="qa_sft")
    settings = LoraSettings(
        mode="qa_sft", method="full", max_steps=2, batch_size=2, learning_rate=1e-2,
        warmup_ratio=0.0,
    )  # fmt: skip
    result = train_lora(tiny_model_dir, examples, settings, tmp_path, progress=False)
    assert result.method == "full"
    assert result.trainable_params == result.total_params == base_params
    assert result.flops_estimate == 6 * base_params * result.tokens
    files = {p.name for p in (tmp_path / "adapters" / result.adapter_dir).iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "train_result.json"} <= files
    assert "adapter_config.json" not in files and "training_args.bin" not in files

    base = dict(
        transformers.AutoModelForCausalLM.from_pretrained(tiny_model_dir).named_parameters()
    )
    merged = load_merged_model(tiny_model_dir, result.adapter_dir, merge=True)
    unmerged = load_merged_model(tiny_model_dir, result.adapter_dir, merge=False)
    assert type(merged) is type(unmerged) and not unmerged.training
    assert not any("lora" in name for name, _ in unmerged.named_modules())
    for name, tuned in merged.named_parameters():
        assert not torch.equal(tuned, base[name]), f"{name} did not train"
        torch.testing.assert_close(tuned, dict(unmerged.named_parameters())[name])


def test_lora_unmerged_matches_merged(tiny_model_dir, tokenizer, tmp_path):
    examples = build_examples([], qa_pairs(2), tokenizer, mode="qa_sft")
    settings = LoraSettings(mode="qa_sft", max_steps=2, batch_size=2, learning_rate=1e-2)
    result = train_lora(tiny_model_dir, examples, settings, tmp_path, progress=False)
    merged = load_merged_model(tiny_model_dir, result.adapter_dir, merge=True)
    unmerged = load_merged_model(tiny_model_dir, result.adapter_dir, merge=False)
    assert any("lora" in name for name, _ in unmerged.named_modules())
    ids = torch.tensor([examples[0].input_ids])
    with torch.no_grad():
        torch.testing.assert_close(merged(ids).logits, unmerged(ids).logits, rtol=1e-4, atol=1e-5)


@pytest.mark.skipif(QLORA_USABLE, reason="CUDA and bitsandbytes are available here")
def test_qlora_without_cuda_or_bitsandbytes_is_a_clear_error(tiny_model_dir, tokenizer, tmp_path):
    examples = build_examples([], qa_pairs(1), tokenizer, mode="qa_sft")
    settings = LoraSettings(mode="qa_sft", quantization="4bit", max_steps=1)
    with pytest.raises(RuntimeError, match=r"finetune.quantization='4bit' \(QLoRA\) needs ") as err:
        train_lora(tiny_model_dir, examples, settings, tmp_path, progress=False)
    assert "set finetune.quantization=none" in str(err.value)
    if importlib.util.find_spec("bitsandbytes") is None:
        assert "pip install bitsandbytes" in str(err.value)
    assert not (tmp_path / "adapters").exists()


@pytest.mark.skipif(not QLORA_USABLE, reason="QLoRA needs a CUDA GPU and bitsandbytes")
def test_qlora_trains_an_adapter_on_a_4bit_base(tiny_model_dir, tokenizer, tmp_path):
    examples = build_examples([], qa_pairs(2), tokenizer, mode="qa_sft")
    settings = LoraSettings(mode="qa_sft", quantization="4bit", max_steps=2, batch_size=2)
    result = train_lora(tiny_model_dir, examples, settings, tmp_path, progress=False)
    assert result.steps == 2 and 0 < result.trainable_params < result.total_params
    assert result.peak_cuda_mb > 0
    assert load_merged_model(tiny_model_dir, result.adapter_dir) is not None


def test_too_long_max_length_and_empty_or_all_held_out_data_are_clear_errors(
    tiny_model_dir, tokenizer, tmp_path
):
    examples = build_examples([], qa_pairs(1), tokenizer, mode="qa_sft")
    with pytest.raises(
        ValueError, match=r"finetune.max_length=4096 .*max_position_embeddings=2048"
    ):
        train_lora(tiny_model_dir, examples, LoraSettings(max_length=4096), tmp_path, False)
    with pytest.raises(ValueError, match=r"no training examples .*finetune.mode='qa_sft'"):
        train_lora(tiny_model_dir, [], LoraSettings(mode="qa_sft"), tmp_path, False)
    held_out_all = replace(LoraSettings(), eval_fraction=0.5)
    with pytest.raises(ValueError, match="finetune.eval_fraction=0.5 holds out 1 of 1"):
        train_lora(tiny_model_dir, examples, held_out_all, tmp_path, False)
    assert not any(p.name[0] != "." for p in (tmp_path / "adapters").glob("*"))
