"""The training loss projects onto the vocabulary only where a label is scored, and equals the
model's own full-vocabulary loss (transformers' ForCausalLMLoss), gradients included."""

from __future__ import annotations

from dataclasses import replace

import torch

from finetune.data import IGNORE_INDEX
from finetune.model_setup import load_trainable_model
from finetune.settings import LoraSettings
from finetune.trainer_parts import RightPadCollator
from finetune.training import SeededTrainer, training_arguments

PAD = 0


def _model(tiny_model_dir: str) -> torch.nn.Module:
    torch.manual_seed(0)
    model = load_trainable_model(tiny_model_dir, replace(LoraSettings(), dropout=0.0))
    for name, parameter in model.named_parameters():
        if "lora_B" in name:  # peft starts B at zero; non-zero B makes every LoRA gradient live
            torch.nn.init.normal_(parameter, std=0.1)
    return model


def _batch() -> dict[str, torch.Tensor]:
    # Two question-answer examples: prompts unscored (IGNORE_INDEX), answers of 3 and 2 tokens.
    features = [
        {"input_ids": [5, 6, 7, 8, 9, 10, 11], "labels": [IGNORE_INDEX] * 4 + [9, 10, 11]},
        {"input_ids": [12, 13, 14, 15, 16], "labels": [IGNORE_INDEX] * 3 + [15, 16]},
    ]
    return RightPadCollator(PAD)(features)


def _loss_and_grads(model, compute):
    model.zero_grad()
    loss, logits = compute()
    loss.backward()
    grads = [p.grad.clone() for p in model.parameters() if p.requires_grad]
    return loss.detach(), logits, grads


def test_loss_from_labelled_positions_equals_the_full_vocabulary_loss(tiny_model_dir, tmp_path):
    model = _model(tiny_model_dir)
    trainer = SeededTrainer(
        model=model,
        args=training_arguments(LoraSettings(), tmp_path, progress=False, has_eval=False),
        data_collator=RightPadCollator(PAD),
        sampler_seed=0,
    )
    assert trainer.labelled_logits_only
    batch = _batch()
    items = torch.tensor(5)  # 3 + 2 answer tokens scored

    def ours():
        loss, outputs = trainer.compute_loss(
            model, dict(batch), return_outputs=True, num_items_in_batch=items
        )
        return loss, outputs.logits

    def library():
        outputs = model(**batch, num_items_in_batch=items)
        return outputs.loss, outputs.logits

    our_loss, our_logits, our_grads = _loss_and_grads(model, ours)
    full_loss, full_logits, full_grads = _loss_and_grads(model, library)

    vocab = model.config.vocab_size
    assert our_logits.shape == (5, vocab)  # one row per scored answer token, counted above
    assert full_logits.shape == (2, 7, vocab)  # every position of the padded batch
    assert torch.allclose(our_loss, full_loss, rtol=1e-6, atol=1e-7)
    for ours_g, full_g in zip(our_grads, full_grads, strict=True):
        assert torch.allclose(ours_g, full_g, rtol=1e-5, atol=1e-8)
