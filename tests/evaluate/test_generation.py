"""Timed greedy generation on the tiny model: token counts and the latency identity."""

from __future__ import annotations

import pytest

from evaluate.backends.transformers import ChatGenerator
from rag.core.prompts import closed_book_messages, rag_messages


@pytest.fixture(scope="module")
def generator(tiny_model_dir):
    return ChatGenerator.load(tiny_model_dir, max_new_tokens=6)


def test_latency_identity_and_token_counts(generator):
    gen = generator.generate(closed_book_messages("Where was Velmora Quist born?"))
    assert 1 <= gen.output_tokens <= 6
    assert gen.input_tokens == generator.prompt_tokens(
        closed_book_messages("Where was Velmora Quist born?")
    )
    assert 0 < gen.ttft_s <= gen.e2e_s
    assert gen.e2e_s == pytest.approx(gen.ttft_s + gen.tpot_s * (gen.output_tokens - 1))


def test_greedy_generation_is_deterministic(generator):
    messages = rag_messages("Where was Orlen born?", ["Orlen was born in Munderby."])
    assert generator.generate(messages).text == generator.generate(messages).text


def test_rag_prompt_is_longer_than_closed_book(generator):
    question = "Where was Orlen born?"
    closed = generator.prompt_tokens(closed_book_messages(question))
    with_context = generator.prompt_tokens(rag_messages(question, ["Orlen was born in X."]))
    assert with_context > closed


def test_linear_weights_column_major_keep_the_models_outputs(tiny_model_dir):
    """Batch-1 decoding through ``model.generate`` reads the linear weights column-major
    (evaluate/backends/transformers.py says why); the layout must not change what the model
    computes, nor untie shared weights."""
    import torch
    from transformers import AutoModelForCausalLM

    from evaluate.backends.transformers import column_major_linear_weights

    reference = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    tied = model.lm_head.weight is model.get_input_embeddings().weight

    assert column_major_linear_weights(model) == len({id(m.weight) for m in linears})
    assert column_major_linear_weights(model) == 0  # already done: nothing to change
    for module in linears:
        out_features, _ = module.weight.shape
        assert module.weight.stride() == (1, out_features)
    assert (model.lm_head.weight is model.get_input_embeddings().weight) == tied

    ids = torch.randint(
        0, model.config.vocab_size, (3, 17), generator=torch.Generator().manual_seed(0)
    )
    with torch.inference_mode():
        torch.testing.assert_close(model(ids).logits, reference(ids).logits, rtol=1e-5, atol=1e-5)
        one = ids[:1, :5]
        greedy = dict(max_new_tokens=8, min_new_tokens=8, do_sample=False, pad_token_id=0)
        assert model.generate(one, **greedy).tolist() == reference.generate(one, **greedy).tolist()
