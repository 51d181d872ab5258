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
