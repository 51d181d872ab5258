"""Document-level retrieval metrics, computed by hand."""

from __future__ import annotations

import math

import pytest

from evaluate.scoring.retrieval import (
    document_ranking,
    ndcg_at_k,
    reciprocal_rank,
    retrieval_scores,
)

# chunks of docs, best first: d3 appears twice (ranks 1 and 3), so documents rank d3, d1, d2, d4
RETRIEVED = ["d3", "d1", "d3", "d2", "d4"]


def test_chunks_of_one_document_count_once_at_their_best_rank():
    assert document_ranking(RETRIEVED) == ["d3", "d1", "d2", "d4"]


def test_hand_computed_scores():
    scores = retrieval_scores(RETRIEVED, ["d1", "d4", "d9"], k=3)
    # top-3 documents d3, d1, d2: one of the three supporting documents
    assert scores["recall_at_k"] == pytest.approx(1 / 3)
    assert scores["hit_rate_at_k"] == 1.0
    assert scores["mrr"] == pytest.approx(1 / 2)  # d1 is the 2nd document
    # DCG@3 = 1/log2(3); IDCG@3 = 1 + 1/log2(3) + 1/log2(4) (three relevant documents)
    ideal = 1 + 1 / math.log2(3) + 0.5
    assert scores["ndcg_at_k"] == pytest.approx((1 / math.log2(3)) / ideal)
    # at k = 4, d4 is the 4th document: DCG adds 1/log2(5); IDCG is unchanged (3 relevant)
    assert ndcg_at_k(RETRIEVED, ["d1", "d4", "d9"], 4) == pytest.approx(
        (1 / math.log2(3) + 1 / math.log2(5)) / ideal
    )


def test_perfect_missed_and_undefined():
    perfect = retrieval_scores(["a", "b", "a"], ["a", "b"], k=2)
    assert perfect == {"recall_at_k": 1.0, "hit_rate_at_k": 1.0, "mrr": 1.0, "ndcg_at_k": 1.0}
    # only one relevant document: IDCG = 1, so a relevant 2nd place scores 1/log2(3)
    assert ndcg_at_k(["x", "a"], ["a"], 5) == pytest.approx(1 / math.log2(3))
    missed = retrieval_scores(["x", "y"], ["a"], k=2)
    assert missed == {"recall_at_k": 0.0, "hit_rate_at_k": 0.0, "mrr": 0.0, "ndcg_at_k": 0.0}
    assert reciprocal_rank(["x", "x", "y", "a"], ["a"]) == pytest.approx(1 / 3)
    undefined = retrieval_scores(["x"], [], k=1)
    assert all(math.isnan(v) for v in undefined.values())
    with pytest.raises(ValueError, match="k must be >= 1"):
        retrieval_scores(["x"], ["x"], k=0)
