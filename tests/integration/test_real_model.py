"""End to end with the real SmolLM2-135M-Instruct and MiniLM on a handful of questions."""

from __future__ import annotations

import json

import pytest

from tests.helpers.ragtune_cli import ragtune

pytestmark = [pytest.mark.slow, pytest.mark.integration]


def test_real_models_end_to_end(tmp_path, real_model_cache):
    proc = ragtune(
        tmp_path,
        "qa.max_eval_questions=8",
        "finetune.max_steps=6",
        "eval.progress=false",
        "tracking=none",
        "hydra.run.dir=outputs/real",
        cache=real_model_cache,
        timeout=1200,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((tmp_path / "outputs/real/results.json").read_text())
    arms = results["arms"]
    assert results["stages"]["model"]["name"] == "smollm2-135m-instruct"
    assert results["stages"]["index"]["dimension"] == 384  # MiniLM, not the hashing embedder
    # The facts are invented: the base model cannot know them, retrieval supplies them.
    assert arms["rag"]["accuracy"]["recall_at_k"] >= 0.75
    assert arms["rag"]["accuracy"]["contains"] >= 0.25
    assert arms["closed_book"]["accuracy"]["contains"] < arms["rag"]["accuracy"]["contains"]
    # RAG prompts carry the retrieved context: several times the closed-book prompt length.
    assert (
        arms["rag"]["tokens"]["input_tokens_mean"]
        > 3 * arms["closed_book"]["tokens"]["input_tokens_mean"]
    )
    for arm in arms.values():  # structure only: absolute times depend on the machine's load
        latency = arm["latency"]
        assert 0 < latency["ttft_p50_s"] <= latency["e2e_p50_s"]  # per request TTFT <= e2e
        assert latency["ttft_p50_s"] <= latency["ttft_p95_s"] <= latency["ttft_p99_s"]
        assert latency["tpot_p50_s"] > 0


def test_converted_generator_equals_transformers_own_gguf_load(real_model_cache):
    """The cached conversion (GGUF parsed once, rag/core/models.py) holds the same weights and
    tokenizer as transformers' own load of the packaged GGUF file, done here the plain way."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rag.core.models import GENERATOR_ALIASES, _package_dir, resolve_generator

    folder = resolve_generator("smollm2-135m-instruct", real_model_cache)
    packaged = GENERATOR_ALIASES["smollm2-135m-instruct"]
    gguf_dir = _package_dir(packaged.package, packaged.distribution)
    direct = AutoModelForCausalLM.from_pretrained(
        gguf_dir, gguf_file=packaged.filename, dtype=torch.float32
    ).state_dict()
    converted = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).state_dict()
    assert direct.keys() == converted.keys()
    assert all(torch.equal(direct[k], converted[k]) for k in direct)
    text = "The Merrow bridge was finished in 1872; who paid for it?"
    direct_tok = AutoTokenizer.from_pretrained(gguf_dir, gguf_file=packaged.filename)
    assert AutoTokenizer.from_pretrained(folder)(text).input_ids == direct_tok(text).input_ids


def test_decoder_gives_transformers_greedy_tokens_on_the_real_model(real_model_cache):
    """The default model's batch-1 answers come from evaluate/backends/llama_decoder.py: the
    same tokens as transformers' greedy ``generate`` on closed-book and retrieval prompts."""
    from evaluate.backends.transformers import ChatGenerator, eos_token_ids
    from rag.core.models import resolve_generator
    from rag.core.prompts import closed_book_messages, rag_messages
    from tests.helpers.greedy import reference_greedy_ids

    folder = resolve_generator("smollm2-135m-instruct", real_model_cache)
    generator = ChatGenerator.load(folder, max_new_tokens=24)
    assert generator.decoder is not None, generator.decoder_unused_because
    context = [
        "Velmora Quist was born in Harrowgate in 1961 and trained as a hydrologist.",
        "Quist founded Kestrel Works in 1994; the company makes tide gauges in Munderby.",
        "Orlen Tass, a look-alike name, is a baker in Fennick.",
    ]
    chats = [
        closed_book_messages("Where was Velmora Quist born?"),
        closed_book_messages("Name three rivers of Europe."),
        rag_messages("What does Kestrel Works make?", context),
        rag_messages("In which year was Velmora Quist born?", context),
    ]
    for messages in chats:
        inputs = generator._encode(messages)
        ids, _ = generator.decoder.generate(inputs["input_ids"], 24, eos_token_ids(generator))
        assert ids == reference_greedy_ids(folder, messages, 24)
