"""The RAG prompt from retrieved chunks: a token budget, chunk-id citations and an ordering.

- Budget: the context block (the ``[chunk-id] text`` paragraphs) must fit ``budget_tokens``
  tokens of the generator's tokenizer. The lowest-ranked chunks are dropped first; a chunk is
  never cut, except when the best chunk alone exceeds the budget: then it is truncated to fit,
  ends with " …", and the result names it (``truncated_chunk_id``) and a warning is logged.
- Citations: every passage is labelled with its chunk id, e.g. ``[person-003#0] text``.
- Depth: ``check_top_k`` stops a run before the index is built when ``top_k`` exceeds the
  corpus's chunks, or when even the ``top_k`` shortest chunks cannot fit the generator's context
  window (every question would fail); with a budget it only warns that chunks will be dropped.
- Ordering: ``best_first`` (rank order) or ``best_at_ends``, which puts the best chunks at the
  start and the end and the weakest in the middle, because models use information in the middle
  of a long context least (Liu et al. 2023, "Lost in the Middle: How Language Models Use Long
  Contexts", TACL 2024, arXiv 2307.03172). Chunks are selected by rank before they are ordered.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from rag.core.errors import UserError
from rag.core.prompts import DEFAULT_STYLE, PromptStyle, context_block, rag_messages
from rag.core.types import Chunk

logger = logging.getLogger(__name__)

ORDERINGS = ("best_first", "best_at_ends")
TRUNCATION_MARK = " …"


@dataclass
class Context:
    messages: list[dict[str, str]]
    chunk_ids: list[str]  # the chunks in the prompt, in prompt order
    build_s: float  # selecting, counting tokens and formatting
    context_tokens: int  # tokens of the context block (-1 without a tokenizer)
    dropped_chunk_ids: list[str] = field(default_factory=list)  # over budget, in rank order
    truncated_chunk_id: str | None = None


class RetrievalDepthError(UserError, ValueError):
    """``retriever.top_k`` cannot be honoured by this corpus and generator."""


def check_top_k(
    top_k: int,
    chunks: Sequence[Chunk],
    chunking: str,
    tokenizer=None,
    window_tokens: int | None = None,
    max_new_tokens: int = 0,
    budget_tokens: int | None = None,
) -> None:
    """Raise ``RetrievalDepthError`` if ``top_k`` exceeds the chunks, or if without a budget the
    context of the ``top_k`` shortest chunks plus ``max_new_tokens`` exceeds ``window_tokens``
    (so every question's prompt would: it holds that context and more). With ``budget_tokens``
    set, chunks over it are dropped by design: that is a warning. ``chunking`` names the chunk
    settings for the message; ``tokenizer`` is the generator's (Hugging Face)."""
    if top_k > len(chunks):
        raise RetrievalDepthError(
            f"retriever.top_k={top_k} exceeds the {len(chunks)} chunks of the corpus "
            f"({chunking}); set retriever.top_k to at most {len(chunks)}, or lower "
            "retriever.chunk_size for more, smaller chunks"
        )
    limit = budget_tokens if budget_tokens is not None else window_tokens
    if tokenizer is None or limit is None:
        return
    counts = chunk_token_counts(tokenizer, [c.text for c in chunks])
    shortest = [chunks[i] for i in sorted(range(len(chunks)), key=counts.__getitem__)[:top_k]]

    def tokens(n: int) -> int:
        chosen = shortest[:n]
        return count_tokens(
            tokenizer, context_block([c.text for c in chosen], [c.chunk_id for c in chosen])
        )

    if budget_tokens is not None:
        used = tokens(top_k)
        if used > budget_tokens:
            logger.warning(
                "retriever.top_k=%d: even the %d shortest chunks take %d context tokens, over "
                "retriever.context_budget_tokens=%d; every question keeps fewer chunks (the "
                "lowest-ranked are dropped)",
                top_k,
                top_k,
                used,
                budget_tokens,
            )
        return
    room = window_tokens - max_new_tokens
    used = tokens(top_k)
    if used <= room:
        return
    low, high = 0, top_k  # the most of the shortest chunks that fit: tokens(low) <= room
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if tokens(middle) <= room else (low, middle)
    advice = (
        f"set retriever.top_k to at most {low}"
        if low
        else "lower retriever.chunk_size (not even one chunk fits)"
    )
    raise RetrievalDepthError(
        f"retriever.top_k={top_k}: even the {top_k} shortest chunks make a context of {used} "
        f"tokens, which with generator.max_new_tokens={max_new_tokens} exceeds the generator's "
        f"context window of {window_tokens} tokens, so every question would fail; {advice}, or "
        f"set retriever.context_budget_tokens (below {room}) to keep the best chunks that fit"
    )


def chunk_token_counts(tokenizer, texts: Sequence[str], batch: int = 1024) -> list[int]:
    """Tokens of each text with a Hugging Face tokenizer (no special tokens), in batches."""
    counts: list[int] = []
    for start in range(0, len(texts), batch):
        encoded = tokenizer(list(texts[start : start + batch]), add_special_tokens=False)
        counts += [len(ids) for ids in encoded["input_ids"]]
    return counts


def order_by_rank(items: Sequence[Any], ordering: str) -> list[Any]:
    """Items given best first, arranged for the prompt. ``best_at_ends`` of ranks 1..6 gives
    1, 3, 5, 6, 4, 2: the best first, the second best last, the weakest in the middle."""
    if ordering not in ORDERINGS:
        raise ValueError(f"retriever.ordering={ordering!r} must be one of {', '.join(ORDERINGS)}")
    if ordering == "best_first":
        return list(items)
    return list(items[0::2]) + list(items[1::2])[::-1]


def token_ids(tokenizer, text: str) -> list[int]:
    """Ids from a Hugging Face tokenizer or a ``tokenizers.Tokenizer`` (no special tokens)."""
    encoded = tokenizer.encode(text, add_special_tokens=False)
    return list(getattr(encoded, "ids", encoded))


def count_tokens(tokenizer, text: str) -> int:
    return len(token_ids(tokenizer, text))


def build_context(
    question: str,
    retrieval,
    tokenizer=None,
    budget_tokens: int | None = None,
    ordering: str = "best_first",
    style: PromptStyle = DEFAULT_STYLE,
) -> Context:
    """Messages for ``question`` with the chunks of ``retrieval`` (a ``Retrieval`` or a list of
    chunks, best first) that fit ``budget_tokens`` (None: no limit)."""
    started = time.perf_counter()
    ranked: list[Chunk] = list(getattr(retrieval, "chunks", retrieval))
    order_by_rank([], ordering)  # validates the name
    if budget_tokens is not None:
        if tokenizer is None:
            raise ValueError(
                "retriever.context_budget_tokens is set but no tokenizer was given to count "
                "tokens; pass the generator's tokenizer or set the budget to null"
            )
        if budget_tokens < 1:
            raise ValueError(f"retriever.context_budget_tokens must be >= 1, got {budget_tokens}")

    def block(chunks: Sequence[Chunk], last_text: str | None = None) -> str:
        texts = [c.text for c in chunks]
        if last_text is not None:
            texts[-1] = last_text
        return context_block(texts, [c.chunk_id for c in chunks])

    kept = len(ranked)
    truncated_text = truncated_id = None
    if budget_tokens is not None:
        while kept and count_tokens(tokenizer, block(order_by_rank(ranked[:kept], ordering))) > (
            budget_tokens
        ):
            kept -= 1
        if kept == 0 and ranked:
            truncated_text = _truncate(ranked[0], tokenizer, budget_tokens, block)
            if truncated_text is not None:
                kept, truncated_id = 1, ranked[0].chunk_id
                logger.warning(
                    "chunk %s alone exceeds the context budget of %d tokens: truncated",
                    truncated_id,
                    budget_tokens,
                )
    chosen = order_by_rank(ranked[:kept], ordering)
    texts = [truncated_text if c.chunk_id == truncated_id else c.text for c in chosen]
    labels = [c.chunk_id for c in chosen]
    messages = rag_messages(question, texts, labels, style)
    tokens = count_tokens(tokenizer, context_block(texts, labels)) if tokenizer else -1
    return Context(
        messages=messages,
        chunk_ids=labels,
        build_s=time.perf_counter() - started,
        context_tokens=tokens,
        dropped_chunk_ids=[c.chunk_id for c in ranked[kept:]],
        truncated_chunk_id=truncated_id,
    )


def _truncate(chunk: Chunk, tokenizer, budget_tokens: int, block) -> str | None:
    """The longest token prefix of the chunk whose labelled block fits, or None if not even
    the label fits."""
    ids = token_ids(tokenizer, chunk.text)

    def text_of(n: int) -> str:
        return tokenizer.decode(ids[:n]).strip() + TRUNCATION_MARK

    def fits(n: int) -> bool:
        return count_tokens(tokenizer, block([chunk], text_of(n))) <= budget_tokens

    low, high = 0, len(ids)  # invariant: fits(low); the whole chunk did not fit
    if not fits(0):
        logger.warning("the context budget of %d tokens cannot hold even a label", budget_tokens)
        return None
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if fits(middle) else (low, middle)
    return text_of(low)
