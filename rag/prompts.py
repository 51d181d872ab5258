"""Chat prompts shared by every arm and by fine-tuning.

The fine-tuned model is trained on exactly the closed-book prompt it is evaluated with, and the
RAG prompt differs from it only by the context block, so arms differ in knowledge, not wording.
"""

from __future__ import annotations

from collections.abc import Sequence

# Short on purpose: it is part of every training example, so each token of it costs training
# time, and the small default model follows a terse instruction as well as a long one.
SYSTEM_PROMPT = "Answer with a few words only, no full sentence."


def closed_book_messages(question: str) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": question},
    ]


def rag_messages(question: str, passages: Sequence[str]) -> list[dict[str, str]]:
    """Messages with retrieved passages (best first) placed before the question."""
    context = "\n\n".join(f"[{i + 1}] {text.strip()}" for i, text in enumerate(passages))
    user = f"Context:\n{context}\n\nUsing the context, answer briefly.\nQuestion: {question}"
    return [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": user},
    ]
