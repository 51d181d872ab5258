"""Batch-1 greedy decoding outside ``model.generate`` (evaluate/backends/llama_decoder.py): the
same tokens as transformers' own greedy ``generate``, the same model afterwards, and
``model.generate`` wherever the decoder does not apply."""

from __future__ import annotations

import pytest

from evaluate.backends.transformers import ChatGenerator, eos_token_ids
from rag.core.prompts import closed_book_messages, rag_messages
from tests.helpers.greedy import reference_greedy_ids

QUESTIONS = [
    closed_book_messages("Where was Velmora Quist born?"),
    closed_book_messages("Which company did Orlen Tass found, and when?"),
    rag_messages("Where was Orlen born?", ["Orlen was born in Munderby.", "Munderby is a town."]),
    rag_messages("What does Kestrel Works make?", ["Kestrel Works makes tide gauges."] * 3),
]


def _gqa_llama(tmp_path):
    """A tiny random Llama with grouped-query attention (4 query heads sharing 2 key/value
    heads, as SmolLM2's 9 share 3) and untied output weights, built in-process."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from rag.core.tiny import build_tiny_tokenizer

    tokenizer = build_tiny_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=96,
        num_hidden_layers=3,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        rope_theta=100000.0,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    torch.manual_seed(3)
    model = LlamaForCausalLM(config)
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    return str(tmp_path)


@pytest.fixture(scope="module")
def gqa_dir(tmp_path_factory):
    return _gqa_llama(tmp_path_factory.mktemp("gqa-llama"))


@pytest.mark.parametrize("which", ["tiny", "gqa"])
def test_decoder_gives_transformers_greedy_tokens(which, tiny_model_dir, gqa_dir):
    import torch

    model_dir = tiny_model_dir if which == "tiny" else gqa_dir
    generator = ChatGenerator.load(model_dir, max_new_tokens=12)
    assert generator.decoder is not None, generator.decoder_unused_because
    for messages in QUESTIONS:
        inputs = generator._encode(messages)
        ids, logits = generator.decoder.generate(inputs["input_ids"], 12, eos_token_ids(generator))
        assert ids == reference_greedy_ids(model_dir, messages, 12)
        assert len(logits) == len(ids) and all(
            step.shape == (1, generator.model.config.vocab_size) for step in logits
        )
        # each step's logits are the model's own for the prefix so far (a full forward pass)
        prefix = torch.cat([inputs["input_ids"], torch.tensor([ids[:-1]])], dim=1)
        with torch.inference_mode():
            full = generator.model(prefix).logits[0, inputs["input_ids"].shape[1] - 1 :]
        torch.testing.assert_close(torch.cat(logits), full, rtol=1e-4, atol=1e-4)


def test_decoder_answers_equal_model_generate_answers(tiny_model_dir):
    """Through ``ChatGenerator.generate``: text, token counts and log-probs of both paths, and
    the latency identity of the decoder's clock."""
    generator = ChatGenerator.load(tiny_model_dir, max_new_tokens=10)
    decoder = generator.decoder
    for messages in QUESTIONS:
        fast = generator.generate(messages)
        generator.decoder = None
        try:
            slow = generator.generate(messages)
        finally:
            generator.decoder = decoder
        assert (fast.text, fast.input_tokens, fast.output_tokens) == (
            slow.text,
            slow.input_tokens,
            slow.output_tokens,
        )
        assert fast.token_logprobs == pytest.approx(slow.token_logprobs, abs=1e-4)
        assert 0 < fast.ttft_s <= fast.e2e_s
        assert fast.e2e_s == pytest.approx(fast.ttft_s + fast.tpot_s * (fast.output_tokens - 1))


def test_decoder_stops_at_the_end_of_sequence_token(tiny_model_dir):
    """The EOS token ends the answer and is counted, as ``generate``'s streamer counts it."""
    generator = ChatGenerator.load(tiny_model_dir, max_new_tokens=12)
    inputs = generator._encode(QUESTIONS[0])
    free, _ = generator.decoder.generate(inputs["input_ids"], 12, {-1})
    eos = free[3]  # pretend the fourth token is the end-of-sequence token
    stopped, logits = generator.decoder.generate(inputs["input_ids"], 12, {eos})
    assert stopped == free[: free.index(eos) + 1]
    assert len(logits) == len(stopped)


def test_fusing_keeps_the_model_and_shares_its_memory(tiny_model_dir):
    """The decoder re-stores q/k/v and gate/up as rows of one matrix each: the model's outputs
    stay bit for bit what a fresh load computes, and no weight is held twice."""
    import torch
    from transformers import AutoModelForCausalLM

    reference = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    generator = ChatGenerator.load(tiny_model_dir, max_new_tokens=4)
    attention = generator.model.model.layers[0].self_attn
    q, k, v = (attention.q_proj.weight, attention.k_proj.weight, attention.v_proj.weight)
    assert k.data_ptr() == q.data_ptr() + q.numel() * q.element_size()
    assert v.data_ptr() == k.data_ptr() + k.numel() * k.element_size()
    fused = generator.decoder.layers[0][2]  # the numpy view the products read
    assert fused.ctypes.data == q.data_ptr()
    ids = torch.randint(0, reference.config.vocab_size, (2, 9), generator=torch.Generator())
    with torch.inference_mode():
        assert torch.equal(generator.model(ids).logits, reference(ids).logits)


def test_model_generate_where_the_decoder_does_not_apply(tiny_model_dir):
    import torch

    stops = ChatGenerator.load(tiny_model_dir, max_new_tokens=4, stop=["\n"])
    assert stops.decoder is None and stops.decoder_unused_because == "stop strings"
    sampling = ChatGenerator.load(tiny_model_dir, max_new_tokens=4, temperature=0.7)
    assert sampling.decoder is None
    # the model.generate path reads its weights column-major (transformers.py says why)
    for module in stops.model.modules():
        if isinstance(module, torch.nn.Linear):
            assert module.weight.stride() == (1, module.weight.shape[0])
    assert stops.generate(QUESTIONS[0]).output_tokens >= 1


def test_unsupported_reasons(tiny_model_dir):
    import torch
    from transformers import AutoModelForCausalLM, GPT2Config, GPT2LMHeadModel

    from evaluate.backends.llama_decoder import unsupported_reason

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    assert unsupported_reason(model) is None
    model.generation_config.repetition_penalty = 1.3
    assert "repetition_penalty" in unsupported_reason(model)
    model.generation_config.repetition_penalty = 1.0
    model.config.rope_parameters = {"rope_type": "dynamic", "rope_theta": 10000.0, "factor": 2.0}
    assert "dynamic" in unsupported_reason(model)
    gpt2 = GPT2LMHeadModel(GPT2Config(n_layer=1, n_head=2, n_embd=8, vocab_size=16))
    assert unsupported_reason(gpt2).startswith("GPT2LMHeadModel is not")
    half = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.bfloat16)
    assert "bfloat16" in unsupported_reason(half)
