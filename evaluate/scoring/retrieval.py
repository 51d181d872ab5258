"""Retrieval quality against the supporting documents of each question.

Metrics are document-level: the retrieved chunks are mapped to their documents and repeated
documents are dropped, keeping each at its best (first) rank, so two chunks of one document
count once. Relevance is binary (a document supports the answer or not). With the de-duplicated
ranking d_1, d_2, ... and the supporting set S:

- ``recall_at_k``: |S ∩ {d_1..d_k}| / |S|, the fraction of supporting documents retrieved;
- ``hit_rate_at_k``: 1 if any supporting document is in d_1..d_k (what ``evaluate.scoring.metrics.
  recall_at_k`` calls recall);
- ``mrr``: 1 / rank of the first supporting document (0 if none), reciprocal rank as in the
  TREC Question Answering track (Voorhees 1999), averaged over questions;
- ``ndcg_at_k``: DCG@k / IDCG@k with DCG@k = sum over i <= k of rel_i / log2(i + 1)
  (Jarvelin and Kekalainen 2002) and IDCG@k the DCG of min(|S|, k) relevant documents on top.

A question without supporting documents has undefined metrics (NaN) and is left out of means.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

METRICS = ("recall_at_k", "hit_rate_at_k", "mrr", "ndcg_at_k")


def document_ranking(retrieved_doc_ids: Sequence[str]) -> list[str]:
    """Documents in order of their best-ranked chunk, each once."""
    return list(dict.fromkeys(retrieved_doc_ids))


def recall_at_k(retrieved_doc_ids: Sequence[str], supporting: Sequence[str], k: int) -> float:
    relevant = set(supporting)
    if not relevant:
        return math.nan
    return len(relevant & set(document_ranking(retrieved_doc_ids)[:k])) / len(relevant)


def hit_rate_at_k(retrieved_doc_ids: Sequence[str], supporting: Sequence[str], k: int) -> float:
    relevant = set(supporting)
    if not relevant:
        return math.nan
    return float(bool(relevant & set(document_ranking(retrieved_doc_ids)[:k])))


def reciprocal_rank(retrieved_doc_ids: Sequence[str], supporting: Sequence[str]) -> float:
    relevant = set(supporting)
    if not relevant:
        return math.nan
    for rank, doc_id in enumerate(document_ranking(retrieved_doc_ids), start=1):
        if doc_id in relevant:
            return 1.0 / rank
    return 0.0


def ndcg_at_k(retrieved_doc_ids: Sequence[str], supporting: Sequence[str], k: int) -> float:
    relevant = set(supporting)
    if not relevant:
        return math.nan
    ranking = document_ranking(retrieved_doc_ids)[:k]
    dcg = sum(1.0 / math.log2(i + 1) for i, d in enumerate(ranking, start=1) if d in relevant)
    ideal = sum(1.0 / math.log2(i + 1) for i in range(1, min(len(relevant), k) + 1))
    return dcg / ideal


def retrieval_scores(
    retrieved_doc_ids: Sequence[str], supporting: Sequence[str], k: int
) -> dict[str, float]:
    """All metrics of one question; ``k`` is the number of documents looked at (``top_k``)."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    return {
        "recall_at_k": recall_at_k(retrieved_doc_ids, supporting, k),
        "hit_rate_at_k": hit_rate_at_k(retrieved_doc_ids, supporting, k),
        "mrr": reciprocal_rank(retrieved_doc_ids, supporting),
        "ndcg_at_k": ndcg_at_k(retrieved_doc_ids, supporting, k),
    }
