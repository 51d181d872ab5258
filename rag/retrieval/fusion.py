"""Reciprocal rank fusion of several rankings (Cormack, Clarke and Buettcher 2009, "Reciprocal
Rank Fusion outperforms Condorcet and individual Rank Learning Methods", SIGIR '09).

    score(d) = sum over rankings r of  weight_r / (k + rank_r(d)),   rank starting at 1,

with k = 60, the value of the paper. Only ranks are used, so BM25 scores and cosine similarities
need no calibration against each other. A document absent from a ranking gets nothing from it.
"""

from __future__ import annotations

from collections.abc import Sequence

RRF_K = 60  # Cormack et al. 2009, section 3: k = 60 "was fixed during a pilot investigation"


def reciprocal_rank_fusion(
    rankings: Sequence[Sequence[int]],
    k: float = RRF_K,
    weights: Sequence[float] | None = None,
) -> list[tuple[int, float]]:
    """``(item, fused score)`` best first. Ties go to the item with the better best rank, then
    to the earlier ranking that holds it, so the order is deterministic."""
    if k < 0:
        raise ValueError(f"retriever.rrf_k must be >= 0, got {k}")
    weights = [1.0] * len(rankings) if weights is None else list(weights)
    if len(weights) != len(rankings):
        raise ValueError(f"{len(weights)} weights for {len(rankings)} rankings")
    scores: dict[int, float] = {}
    best: dict[int, tuple[int, int]] = {}
    for source, (ranking, weight) in enumerate(zip(rankings, weights, strict=True)):
        unique = list(dict.fromkeys(ranking))  # a repeated item counts once, at its best rank
        for rank, item in enumerate(unique, start=1):
            scores[item] = scores.get(item, 0.0) + weight / (k + rank)
            best[item] = min(best.get(item, (rank, source)), (rank, source))
    return sorted(scores.items(), key=lambda pair: (-pair[1], best[pair[0]]))
