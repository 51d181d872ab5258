"""Where RAG loses its points: to retrieval or to the reader.

With the oracle-context arm (the gold passage in the prompt) beside RAG, the gap of RAG to a
perfect score splits in two on the same questions and metric:

- lost to retrieval = oracle - rag: the right passage was not (or not well) retrieved;
- lost to the reader = 1 - oracle: the passage was there and the generator still missed.

The larger part names what to change first.
"""

from __future__ import annotations

from typing import Any

ADVICE = {
    "retrieval": (
        "try the retriever first: a larger retriever.top_k, retriever.mode=hybrid, a "
        "re-ranker (retriever.reranker.model), smaller chunks (retriever.chunk_size) or "
        "another embedder (retriever.embedder.model)"
    ),
    "reader": (
        "try the reader first: the prompt (a shorter-answer instruction, few-shot examples), "
        "generator.max_new_tokens, or a larger generator (generator.model)"
    ),
}


def decompose(arms: dict[str, Any], metric: str = "contains") -> dict[str, Any] | None:
    """The split of RAG's gap to a perfect score, from ``results.json`` arm summaries;
    None unless both ``rag`` and ``oracle_context`` ran."""
    if "rag" not in arms or "oracle_context" not in arms:
        return None
    rag = float(arms["rag"]["accuracy"][metric])
    oracle = float(arms["oracle_context"]["accuracy"][metric])
    retrieval_points = 100.0 * (oracle - rag)
    reader_points = 100.0 * (1.0 - oracle)
    weaker = "retrieval" if retrieval_points > reader_points else "reader"
    sentence = (
        f"On {metric}, RAG scores {100 * rag:.1f}% and the same reader with the gold passage "
        f"{100 * oracle:.1f}%: {retrieval_points:.1f} points are lost to retrieval and "
        f"{reader_points:.1f} to the reader, so the {weaker} is the weaker part; "
        f"{ADVICE[weaker]}."
    )
    if retrieval_points < 0:
        sentence += (
            " (RAG beats the gold passage here: other retrieved chunks helped more than the "
            "single best chunk of the gold document.)"
        )
    return {
        "metric": metric,
        "rag": rag,
        "oracle_context": oracle,
        "lost_to_retrieval_points": retrieval_points,
        "lost_to_reader_points": reader_points,
        "weaker": weaker,
        "sentence": sentence,
    }
