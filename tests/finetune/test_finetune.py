"""Fine-tune arm: training examples, LoRA training through the Trainer, cache, merged model."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import transformers

from finetune.data import IGNORE_INDEX, build_examples, examples_fingerprint
from finetune.lora import (
    LoraSettings,
    adapter_cache_key,
    load_merged_model,
    train_lora,
    validate_settings,
)
from rag.core.cache import model_fingerprint
from rag.core.models import resolve_generator
from rag.core.prompts import closed_book_messages
from rag.core.types import Document, QAPair

ALL_LINEAR = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> str:
    return resolve_generator("tiny-random-llama", tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="session")
def tokenizer(tiny_model):
    return transformers.AutoTokenizer.from_pretrained(tiny_model)


def qa_pairs(n: int = 3) -> list[QAPair]:
    return [
        QAPair(
            f"q{i}", f"Where was person {i} born?", [f"Town {i}", "alias"], ["d0"], split="train"
        )
        for i in range(n)
    ]


DOCS = [
    Document("d0", "Person 0", "Person 0 was born in Town 0 in 1950. " * 12),
    Document("d1", "Person 1", "Person 1 was born in Town 1."),
]


@pytest.fixture(scope="module")
def trained(tiny_model, tokenizer, tmp_path_factory):
    """One adapter trained ~30 steps at a high learning rate on a few repeated QA examples."""
    examples = build_examples([], qa_pairs(), tokenizer, mode="qa_sft")
    settings = LoraSettings(
        mode="qa_sft", learning_rate=1e-2, max_steps=30, batch_size=3, dropout=0.0,
        target_modules=ALL_LINEAR, warmup_ratio=0.0,
    )  # fmt: skip
    cache_root = tmp_path_factory.mktemp("cache")
    result = train_lora(tiny_model, examples, settings, cache_root, progress=False)
    return examples, settings, cache_root, result


def test_qa_labels_cover_exactly_the_answer_and_end_of_turn(tokenizer):
    [example] = build_examples([], qa_pairs(1), tokenizer, mode="qa_sft")
    assert example.kind == "qa"
    labelled = [tok for tok in example.labels if tok != IGNORE_INDEX]
    assert tokenizer.decode(labelled) == "Town 0<|im_end|>"
    prompt = tokenizer.apply_chat_template(
        closed_book_messages("Where was person 0 born?"),
        add_generation_prompt=True, tokenize=True, return_dict=False,
    )  # fmt: skip
    assert example.input_ids[: len(prompt)] == list(prompt)
    assert example.labels[: len(prompt)] == [IGNORE_INDEX] * len(prompt)
    first = example.labels.index(labelled[0])
    assert first == len(prompt)  # the answer starts right after the generation prompt
    assert (
        example.labels[first : first + len(labelled)]
        == example.input_ids[first : first + len(labelled)]
    )


def test_cpt_windows_respect_max_length_and_end_with_eos(tokenizer):
    examples = build_examples(DOCS, [], tokenizer, mode="cpt", max_length=32)
    assert all(e.kind == "doc" and 2 <= len(e.input_ids) <= 32 for e in examples)
    assert all(e.labels == e.input_ids for e in examples)
    ids_doc0 = tokenizer(DOCS[0].text).input_ids + [tokenizer.eos_token_id]
    n_windows_doc0 = -(-len(ids_doc0) // 32)
    assert n_windows_doc0 > 1
    assert [t for e in examples[:n_windows_doc0] for t in e.input_ids] == ids_doc0
    assert examples[-1].input_ids[-1] == tokenizer.eos_token_id
    assert len(examples) == n_windows_doc0 + 1


def test_mixed_is_cpt_plus_qa(tokenizer):
    cpt = build_examples(DOCS, qa_pairs(), tokenizer, mode="cpt", max_length=32)
    qa = build_examples(DOCS, qa_pairs(), tokenizer, mode="qa_sft", max_length=256)
    mixed = build_examples(DOCS, qa_pairs(), tokenizer, mode="mixed", max_length=256)
    mixed_cpt_part = build_examples(DOCS, [], tokenizer, mode="cpt", max_length=256)
    assert len(cpt) > len(DOCS) and {e.kind for e in cpt} == {"doc"}
    assert len(qa) == 3 and {e.kind for e in qa} == {"qa"}
    assert len(mixed) == len(mixed_cpt_part) + len(qa)
    assert [e.input_ids for e in mixed] == [e.input_ids for e in mixed_cpt_part + qa]
    assert examples_fingerprint(mixed) != examples_fingerprint(qa)
    assert examples_fingerprint(qa) == examples_fingerprint(
        build_examples(DOCS, qa_pairs(), tokenizer, mode="qa_sft")
    )


def test_unknown_mode_and_empty_input_are_rejected(tokenizer):
    with pytest.raises(ValueError, match="finetune.mode.*'sft'"):
        build_examples(DOCS, qa_pairs(), tokenizer, mode="sft")
    with pytest.raises(ValueError, match="no training example"):
        build_examples([], [], tokenizer, mode="mixed")
    # the default mode on documents without training questions says how to train on them
    from finetune.data import NoTrainingDataError
    from rag.core.errors import UserError

    with pytest.raises(NoTrainingDataError, match="use finetune.mode=cpt or mixed") as raised:
        build_examples(DOCS, [], tokenizer)
    assert isinstance(raised.value, UserError)


def test_training_reduces_the_loss(trained):
    examples, settings, _, result = trained
    assert not result.reused and result.steps == 30 and len(result.loss_curve) == 30
    first_loss, final_loss = result.loss_curve[0][1], result.final_loss
    # The tiny random model's logits are bounded by its small tied embedding, so about
    # 0.5 nats is the reachable drop from ln(vocab); the untrained loss stays near 6.0.
    assert final_loss < first_loss - 0.3
    assert result.examples == 3 and result.epochs == pytest.approx(30.0)
    assert result.tokens == 30 * sum(len(e.input_ids) for e in examples)
    assert 0 < result.trainable_params < result.total_params
    assert result.peak_rss_mb > 50 and result.tokens_per_s > 0 and result.samples_per_s > 0
    saved = json.loads((Path(result.adapter_dir) / "train_result.json").read_text())
    assert saved["final_loss"] == pytest.approx(final_loss)
    assert (Path(result.adapter_dir) / "adapter_config.json").is_file()


def test_identical_inputs_reuse_the_adapter_and_a_changed_setting_does_not(
    trained, tiny_model, monkeypatch
):
    examples, settings, cache_root, first = trained

    def no_training(*args, **kwargs):
        raise AssertionError("a cached adapter must not be retrained")

    monkeypatch.setattr(transformers.Trainer, "train", no_training)
    again = train_lora(tiny_model, examples, replace(settings), cache_root, progress=False)
    assert again.reused and again.adapter_dir == first.adapter_dir
    assert again.loss_curve == first.loss_curve
    fingerprints = (model_fingerprint(tiny_model), examples_fingerprint(examples))
    key = adapter_cache_key(*fingerprints, settings)
    assert Path(first.adapter_dir).name == key
    assert adapter_cache_key(*fingerprints, replace(settings, rank=4)) != key
    with pytest.raises(AssertionError, match="must not be retrained"):
        train_lora(tiny_model, examples, replace(settings, rank=4), cache_root, progress=False)


def test_merged_model_differs_from_base_and_has_no_peft_wrappers(trained, tiny_model):
    examples, _, _, result = trained
    merged = load_merged_model(tiny_model, result.adapter_dir)
    base = transformers.AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32)
    assert not any("lora" in name for name, _ in merged.named_modules())
    assert type(merged) is type(base) and not merged.training
    assert next(merged.parameters()).dtype == torch.float32
    input_ids = torch.tensor([examples[0].input_ids])
    with torch.no_grad():
        delta = (merged(input_ids).logits - base.eval()(input_ids).logits).abs().max().item()
    assert delta > 1e-3


def test_bad_target_module_and_rank_zero_are_clear_errors(tiny_model, tokenizer, tmp_path):
    examples = build_examples([], qa_pairs(1), tokenizer, mode="qa_sft")
    bad_target = LoraSettings(target_modules=["query_key_value"], max_steps=1)
    with pytest.raises(ValueError, match=r"query_key_value.*q_proj"):
        train_lora(tiny_model, examples, bad_target, tmp_path, progress=False)
    with pytest.raises(ValueError, match="finetune.rank must be >= 1, got 0"):
        validate_settings(LoraSettings(rank=0))
    with pytest.raises(ValueError, match="finetune.rank"):
        train_lora(tiny_model, examples, LoraSettings(rank=0), tmp_path, progress=False)
    assert not (tmp_path / "adapters").exists() or not any((tmp_path / "adapters").iterdir())
