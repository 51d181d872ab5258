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


def context_block(passages: Sequence[str], labels: Sequence[str] | None = None) -> str:
    """Passages as ``[label] text`` paragraphs; labels default to 1, 2, 3 ..."""
    if labels is None:
        labels = [str(i + 1) for i in range(len(passages))]
    if len(labels) != len(passages):
        raise ValueError(f"{len(labels)} labels for {len(passages)} passages")
    return "\n\n".join(
        f"[{label}] {text.strip()}" for label, text in zip(labels, passages, strict=True)
    )


def rag_messages(
    question: str, passages: Sequence[str], labels: Sequence[str] | None = None
) -> list[dict[str, str]]:
    """Messages with retrieved passages placed before the question, each cited by its label
    (a chunk id such as ``person-003#0`` when given, else its position)."""
    context = context_block(passages, labels)
    user = f"Context:\n{context}\n\nUsing the context, answer briefly.\nQuestion: {question}"
    return [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": user},
    ]
