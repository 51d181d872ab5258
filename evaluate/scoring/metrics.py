"""Answer-quality, retrieval and latency statistics.

Answer normalisation follows the SQuAD evaluation script (Rajpurkar et al. 2016): lower-case,
strip punctuation and the articles a/an/the, collapse white space. Each metric takes the best
score over the gold aliases.

ROUGE-L is the F-measure of the longest common subsequence of normalised tokens (Lin 2004) with
beta = 1, the ``fmeasure`` of Google's ``rouge-score`` package; tokens are SQuAD-normalised as
above, so articles and punctuation are dropped where rouge-score would keep articles.

Semantic similarity is the cosine of embeddings the caller computes with the configured embedder
(this module never loads a model).
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Sequence

import numpy as np

from costing.measurement import mean, percentile

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = str.maketrans("", "", string.punctuation)


def normalize_answer(text: str) -> str:
    text = text.lower().translate(_PUNCT)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(prediction: str, golds: Sequence[str]) -> float:
    pred = normalize_answer(prediction)
    return float(any(pred == normalize_answer(g) for g in golds))


def _f1(prediction: str, gold: str) -> float:
    pred_tokens, gold_tokens = normalize_answer(prediction).split(), normalize_answer(gold).split()
    if not pred_tokens or not gold_tokens:
        return float(pred_tokens == gold_tokens)
    common = sum((Counter(pred_tokens) & Counter(gold_tokens)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred_tokens), common / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def token_f1(prediction: str, golds: Sequence[str]) -> float:
    return max(_f1(prediction, g) for g in golds)


def contains_answer(prediction: str, golds: Sequence[str]) -> float:
    """1 if a normalised gold answer occurs in the normalised prediction on word boundaries."""
    pred = f" {normalize_answer(prediction)} "
    return float(any(f" {normalize_answer(g)} " in pred for g in golds if normalize_answer(g)))


def _lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    """Longest common subsequence length, dynamic programming over one row (O(len a * len b))."""
    if len(b) > len(a):
        a, b = b, a
    row = [0] * (len(b) + 1)
    for token in a:
        diagonal = 0  # row[j - 1] of the previous row
        for j, other in enumerate(b, start=1):
            above = row[j]
            row[j] = diagonal + 1 if token == other else max(row[j], row[j - 1])
            diagonal = above
    return row[-1]


def _rouge_l(prediction: str, gold: str) -> float:
    pred_tokens, gold_tokens = normalize_answer(prediction).split(), normalize_answer(gold).split()
    if not pred_tokens or not gold_tokens:
        return float(pred_tokens == gold_tokens)
    lcs = _lcs_length(pred_tokens, gold_tokens)
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(pred_tokens), lcs / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def rouge_l(prediction: str, golds: Sequence[str]) -> float:
    """ROUGE-L F-measure (beta = 1) over normalised tokens, best over the gold aliases."""
    return max(_rouge_l(prediction, g) for g in golds)


# Rows of an L2-normalised matrix have norm 1; an embedder may return an all-zero row for an
# empty text (nothing to hash), whose cosine with anything is taken as 0.
_UNIT_NORM_TOLERANCE = 1e-3


def _check_normalised(vectors: np.ndarray, name: str) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float64)
    if vectors.ndim not in (1, 2):
        raise ValueError(f"{name} must be a vector or a matrix, got shape {vectors.shape}")
    norms = np.linalg.norm(vectors, axis=-1)
    ok = (np.abs(norms - 1.0) <= _UNIT_NORM_TOLERANCE) | (norms <= _UNIT_NORM_TOLERANCE)
    if not np.all(ok):
        raise ValueError(
            f"{name} must be L2-normalised (norms {np.round(norms[~ok][:3], 4).tolist()} found); "
            "embed with an embedder that normalises (every rag.retrieval.embedder one does)"
        )
    return vectors


def cosine_similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarity of L2-normalised vectors: ``a @ b.T`` clipped to [-1, 1].

    Shapes: (d,) x (d,) -> scalar; (n, d) x (d,) -> (n,); (d,) x (m, d) -> (m,);
    (n, d) x (m, d) -> (n, m). Raises ValueError on rows that are not unit (or zero) norm.
    """
    a, b = _check_normalised(a, "a"), _check_normalised(b, "b")
    if a.shape[-1] != b.shape[-1]:
        raise ValueError(f"dimension mismatch: {a.shape} vs {b.shape}")
    return np.clip(a @ b.T, -1.0, 1.0)


def semantic_similarity(prediction: np.ndarray, golds: np.ndarray) -> float:
    """Best cosine between a prediction embedding (d,) and the gold alias embeddings (m, d)."""
    golds = np.atleast_2d(golds)
    if golds.shape[0] == 0:
        raise ValueError("semantic_similarity needs at least one gold embedding")
    return float(np.max(cosine_similarity(np.asarray(prediction).reshape(-1), golds)))


def latency_summary(values: Sequence[float], name: str) -> dict[str, float]:
    return {
        f"{name}_p50_s": percentile(values, 50),
        f"{name}_p95_s": percentile(values, 95),
        f"{name}_p99_s": percentile(values, 99),
        f"{name}_mean_s": mean(values),
    }
