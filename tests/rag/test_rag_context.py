"""Prompt building: token budget, chunk-id citations, truncation and ordering."""

from __future__ import annotations

import logging

import pytest

from rag.core.prompts import SYSTEM_PROMPT, closed_book_messages, context_block, rag_messages
from rag.core.types import Chunk
from rag.retrieval.context import (
    RetrievalDepthError,
    build_context,
    check_top_k,
    count_tokens,
    order_by_rank,
)
from rag.retrieval.retriever import Retrieval


class WordTokenizer:
    """One token per whitespace-separated word, so budgets can be counted by hand."""

    def __init__(self):
        self.words: list[str] = []

    def encode(self, text, add_special_tokens=False):
        ids = []
        for word in text.split():
            if word not in self.words:
                self.words.append(word)
            ids.append(self.words.index(word))
        return ids

    def decode(self, ids):
        return " ".join(self.words[i] for i in ids)

    def __call__(self, texts, add_special_tokens=False):  # batches, as Hugging Face's
        return {"input_ids": [self.encode(text) for text in texts]}


def chunk(chunk_id: str, text: str) -> Chunk:
    return Chunk(chunk_id, chunk_id.split("#")[0], text, 0, len(text))


# "[a#0] one two three" is 4 tokens, "[b#0] four five" 3, "[c#0] six seven eight nine" 5
RANKED = [
    chunk("a#0", "one two three"),
    chunk("b#0", "four five"),
    chunk("c#0", "six seven eight nine"),
]
RETRIEVAL = Retrieval(RANKED, [0.9, 0.8, 0.7])


def user_text(context) -> str:
    return context.messages[1]["content"]


def test_everything_fits_and_chunks_are_cited_by_id():
    context = build_context("Q?", RETRIEVAL, WordTokenizer(), budget_tokens=12)
    assert context.chunk_ids == ["a#0", "b#0", "c#0"] and context.context_tokens == 12
    assert "[a#0] one two three\n\n[b#0] four five\n\n[c#0] six seven eight nine" in user_text(
        context
    )
    assert context.messages[0] == {"role": "system", "content": SYSTEM_PROMPT}
    assert user_text(context).endswith("Question: Q?")
    assert context.dropped_chunk_ids == [] and context.truncated_chunk_id is None
    assert context.build_s > 0


def test_lowest_ranked_chunks_are_dropped_first_and_never_cut():
    tokenizer = WordTokenizer()
    context = build_context("Q?", RETRIEVAL, tokenizer, budget_tokens=11)
    assert context.chunk_ids == ["a#0", "b#0"] and context.context_tokens == 7
    assert context.dropped_chunk_ids == ["c#0"] and "six" not in user_text(context)
    context = build_context("Q?", RETRIEVAL, tokenizer, budget_tokens=6)
    assert context.chunk_ids == ["a#0"] and context.context_tokens == 4
    assert context.dropped_chunk_ids == ["b#0", "c#0"]
    # b alone would fit in 6, but a higher-ranked chunk is never dropped for a lower one
    assert "[a#0] one two three\n\nUsing the context" in user_text(context)


def test_a_single_chunk_over_budget_is_truncated_and_reported(caplog):
    with caplog.at_level(logging.WARNING, logger="rag.retrieval.context"):
        context = build_context("Q?", RETRIEVAL, WordTokenizer(), budget_tokens=3)
    assert context.chunk_ids == ["a#0"] and context.truncated_chunk_id == "a#0"
    assert "[a#0] one …\n\n" in user_text(context) and context.context_tokens == 3
    assert "chunk a#0 alone exceeds the context budget of 3 tokens" in caplog.text
    empty = build_context("Q?", RETRIEVAL, WordTokenizer(), budget_tokens=1)  # label won't fit
    assert empty.chunk_ids == [] and empty.truncated_chunk_id is None


def test_best_at_ends_puts_the_weakest_in_the_middle():
    assert order_by_rank([1, 2, 3, 4, 5, 6], "best_at_ends") == [1, 3, 5, 6, 4, 2]
    assert order_by_rank([1, 2, 3, 4, 5], "best_at_ends") == [1, 3, 5, 4, 2]
    assert order_by_rank([1], "best_at_ends") == [1]
    context = build_context("Q?", RETRIEVAL, WordTokenizer(), 12, ordering="best_at_ends")
    assert context.chunk_ids == ["a#0", "c#0", "b#0"]
    # the budget selects by rank first (a and b fit in 7 tokens), then the ordering applies
    assert build_context("Q?", RETRIEVAL, WordTokenizer(), 7, "best_at_ends").chunk_ids == [
        "a#0",
        "b#0",
    ]


def test_real_tokenizer_counts_and_no_budget():
    from rag.core.tiny import build_tiny_tokenizer

    tokenizer = build_tiny_tokenizer()
    passages = [
        chunk(f"person-00{i}#0", f"Person {i} was born in town {i} in 19{50 + i}.")
        for i in range(4)
    ]
    unlimited = build_context("Where?", passages, tokenizer)
    full = unlimited.context_tokens
    assert unlimited.chunk_ids == [c.chunk_id for c in passages]
    block = context_block([c.text for c in passages], [c.chunk_id for c in passages])
    assert full == count_tokens(tokenizer, block) and block in user_text(unlimited)
    tight = build_context("Where?", passages, tokenizer, budget_tokens=full - 1)
    assert tight.chunk_ids == [c.chunk_id for c in passages[:3]] and tight.context_tokens < full
    assert build_context("Where?", passages, None).context_tokens == -1


def test_bad_settings_and_unchanged_shared_prompts():
    with pytest.raises(ValueError, match="context_budget_tokens is set but no tokenizer"):
        build_context("Q?", RETRIEVAL, None, budget_tokens=10)
    with pytest.raises(ValueError, match="retriever.ordering='middle'"):
        build_context("Q?", RETRIEVAL, WordTokenizer(), ordering="middle")
    with pytest.raises(ValueError, match="context_budget_tokens must be >= 1"):
        build_context("Q?", RETRIEVAL, WordTokenizer(), budget_tokens=0)
    # the fine-tuning prompt and the position-numbered RAG prompt are unchanged
    assert closed_book_messages("Q?") == [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": "Q?"},
    ]
    assert "[1] x\n\n[2] y\n\n" in rag_messages("Q?", ["x", "y"])[1]["content"]


CHUNKING = "retriever.chunk_strategy=words, retriever.chunk_size=4"


def test_top_k_above_the_chunk_count_is_an_error_naming_top_k():
    with pytest.raises(RetrievalDepthError) as err:
        check_top_k(4, RANKED, CHUNKING)
    message = str(err.value)
    assert message.startswith("retriever.top_k=4 exceeds the 3 chunks of the corpus (")
    assert CHUNKING in message and "set retriever.top_k to at most 3" in message
    check_top_k(3, RANKED, CHUNKING)  # every chunk: allowed


def test_top_k_whose_shortest_chunks_overflow_the_window_is_an_error():
    # shortest first: b (2 words), a (3), c (4); with their labels 3, 4 and 5 tokens
    with pytest.raises(RetrievalDepthError) as err:
        check_top_k(3, RANKED, CHUNKING, WordTokenizer(), window_tokens=14, max_new_tokens=4)
    message = str(err.value)
    assert "retriever.top_k=3: even the 3 shortest chunks make a context of 12 tokens" in message
    assert "generator.max_new_tokens=4 exceeds the generator's context window of 14" in message
    assert "set retriever.top_k to at most 2" in message  # 3 + 4 = 7 <= 14 - 4
    assert "retriever.context_budget_tokens (below 10)" in message and "\n" not in message
    check_top_k(3, RANKED, CHUNKING, WordTokenizer(), window_tokens=16, max_new_tokens=4)
    with pytest.raises(RetrievalDepthError, match="not even one chunk fits"):
        check_top_k(1, RANKED, CHUNKING, WordTokenizer(), window_tokens=5, max_new_tokens=4)


def test_with_a_budget_chunks_are_dropped_by_design_so_only_a_warning(caplog):
    with caplog.at_level(logging.WARNING, logger="rag.retrieval.context"):
        check_top_k(3, RANKED, CHUNKING, WordTokenizer(), None, 4, budget_tokens=10)
    assert (
        "retriever.top_k=3: even the 3 shortest chunks take 12 context tokens, over "
        "retriever.context_budget_tokens=10" in caplog.text
    )
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="rag.retrieval.context"):
        check_top_k(3, RANKED, CHUNKING, WordTokenizer(), None, 4, budget_tokens=12)
    assert caplog.text == ""
