"""Answer-quality, retrieval and latency statistics.

Answer normalisation follows the SQuAD evaluation script (Rajpurkar et al. 2016): lower-case,
strip punctuation and the articles a/an/the, collapse white space. Each metric takes the best
score over the gold aliases.
"""

from __future__ import annotations

import math
import re
import string
from collections import Counter
from collections.abc import Sequence

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


def recall_at_k(retrieved_doc_ids: Sequence[str], supporting_doc_ids: Sequence[str]) -> float:
    """1 if any supporting document is among the retrieved ones (hit rate at k)."""
    return float(bool(set(retrieved_doc_ids) & set(supporting_doc_ids)))


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolation percentile (numpy's default method), q in [0, 100]."""
    if not values:
        return math.nan
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100.0
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else math.nan


def latency_summary(values: Sequence[float], name: str) -> dict[str, float]:
    return {
        f"{name}_p50_s": percentile(values, 50),
        f"{name}_p95_s": percentile(values, 95),
        f"{name}_mean_s": mean(values),
    }
