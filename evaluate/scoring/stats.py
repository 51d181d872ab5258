"""Uncertainty and significance for per-question scores.

- Confidence intervals: percentile bootstrap of the mean (Efron and Tibshirani 1993, ch. 13),
  resampling questions with replacement from a seeded ``numpy.random.Generator``.
- Paired comparison of two arms on the same questions: bootstrap of the mean difference, the
  question indices resampled jointly for both arms so their pairing is kept.
- McNemar's exact test on per-question correctness (McNemar 1947; the exact binomial form of
  Fagerland, Lydersen and Laake 2013): with b = questions only arm A got right and c = questions
  only arm B got right, p = min(1, 2 * P[X <= min(b, c)]) for X ~ Binomial(b + c, 1/2).
- ``compare_arms`` tests every pair of arms. Six pairs for four arms inflate the chance of a false
  positive, so by default the p-values are adjusted with Holm's step-down method (Holm 1979),
  which controls the family-wise error rate at ``alpha``; ``correction="none"`` turns it off.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from itertools import combinations

import numpy as np
from scipy.stats import binomtest, norm

DEFAULT_RESAMPLES = 2000
# Resamples drawn per block, so memory stays near _BLOCK_CELLS floats whatever the question count.
_BLOCK_CELLS = 2_000_000


def _as_scores(scores: Sequence[float], name: str = "scores") -> np.ndarray:
    array = np.asarray(scores, dtype=np.float64).reshape(-1)
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} contain NaN or infinite values; score every question first")
    return array


def _bootstrap_means(values: np.ndarray, resamples: int, seed: int) -> np.ndarray:
    if resamples < 1:
        raise ValueError(f"resamples must be >= 1, got {resamples}")
    rng = np.random.default_rng(seed)
    n = values.size
    block = max(1, _BLOCK_CELLS // n)
    means = np.empty(resamples)
    for start in range(0, resamples, block):
        stop = min(resamples, start + block)
        indices = rng.integers(0, n, size=(stop - start, n))
        means[start:stop] = values[indices].mean(axis=1)
    return means


def bootstrap_ci(
    scores: Sequence[float],
    resamples: int = DEFAULT_RESAMPLES,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile-bootstrap confidence interval (low, high) of the mean; (nan, nan) if empty."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    values = _as_scores(scores)
    if values.size == 0:
        return math.nan, math.nan
    means = _bootstrap_means(values, resamples, seed)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(low), float(high)


def summarise_with_ci(
    scores: Sequence[float], seed: int = 0, resamples: int = DEFAULT_RESAMPLES
) -> dict[str, float]:
    """Mean and its 95% percentile-bootstrap interval: ``{"mean", "ci95_low", "ci95_high"}``."""
    values = _as_scores(scores)
    low, high = bootstrap_ci(values, resamples=resamples, confidence=0.95, seed=seed)
    return {
        "mean": float(values.mean()) if values.size else math.nan,
        "ci95_low": low,
        "ci95_high": high,
    }


@dataclass(frozen=True)
class PairedDifference:
    mean_difference: float  # mean(a - b) over the shared questions
    ci95_low: float
    ci95_high: float
    questions: int


def paired_difference(
    scores_a: Sequence[float],
    scores_b: Sequence[float],
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> PairedDifference:
    """Mean of a - b per question with a 95% bootstrap CI, resampling questions jointly."""
    a, b = _as_scores(scores_a, "scores_a"), _as_scores(scores_b, "scores_b")
    if a.size != b.size:
        raise ValueError(f"paired scores need the same questions: {a.size} vs {b.size} scores")
    # Resampling question indices for both arms at once equals resampling the differences.
    differences = a - b
    low, high = bootstrap_ci(differences, resamples=resamples, seed=seed)
    mean_difference = float(differences.mean()) if differences.size else math.nan
    return PairedDifference(mean_difference, low, high, int(a.size))


@dataclass(frozen=True)
class McNemarResult:
    b: int  # questions arm A got right and arm B got wrong
    c: int  # questions arm A got wrong and arm B got right
    p_value: float


def binomial_two_sided_p(b: int, c: int) -> float:
    """Exact two-sided p of b successes out of b + c under Binomial(b + c, 1/2)."""
    if b + c == 0:
        return 1.0
    # scipy's exact test; for p = 1/2 its two-sided p is min(1, 2 * P[X <= min(b, c)])
    return float(binomtest(b, b + c, 0.5, alternative="two-sided").pvalue)


def mcnemar_exact(correct_a: Sequence[bool], correct_b: Sequence[bool]) -> McNemarResult:
    """McNemar's exact test on paired per-question correctness of two arms."""
    if len(correct_a) != len(correct_b):
        raise ValueError(
            f"paired correctness needs the same questions: {len(correct_a)} vs {len(correct_b)}"
        )
    b = sum(1 for x, y in zip(correct_a, correct_b, strict=True) if x and not y)
    c = sum(1 for x, y in zip(correct_a, correct_b, strict=True) if y and not x)
    return McNemarResult(b, c, binomial_two_sided_p(b, c))


def holm_adjust(p_values: Sequence[float]) -> list[float]:
    """Holm step-down adjusted p-values, in the input order."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def _agreement(difference, significant: bool, correction: str, pairs: int) -> str:
    """Whether the interval and the verdict agree, and why they may not: they are different
    procedures (a bootstrap interval of the mean difference, unadjusted; McNemar's test on the
    discordant questions, adjusted for the number of pairs)."""
    excludes_zero = difference.ci95_low > 0 or difference.ci95_high < 0
    if excludes_zero == significant:
        return "agree"
    adjusted = f"Holm-adjusted over {pairs} pairs" if correction == "holm" else "unadjusted"
    if excludes_zero:
        return (
            "the 95% interval excludes 0 but the test does not reject: the interval is not "
            f"adjusted for multiple comparisons, the McNemar test is ({adjusted}); read the "
            "difference as suggestive, not established"
        )
    return (
        "the test rejects but the 95% interval includes 0: McNemar's exact test uses only the "
        "questions where the arms disagree, the bootstrap interval uses every question"
    )


def format_p(p: float) -> str:
    return "p<0.001" if p < 0.001 else f"p={p:.2g}"


def verdict(arm_a: str, arm_b: str, result: McNemarResult, p: float, alpha: float) -> str:
    if p >= alpha:  # b == c gives p = 1, so a direction always exists below
        return f"no significant difference ({format_p(p)})"
    better, worse = (arm_a, arm_b) if result.b > result.c else (arm_b, arm_a)
    return f"{better} is better than {worse} ({format_p(p)})"


def minimum_detectable_difference(
    questions: int, discordant_share: float, alpha: float, power: float = 0.8
) -> float | None:
    """The smallest paired difference in accuracy McNemar's test detects with ``power`` at
    level ``alpha`` (two-sided) on ``questions`` questions whose share of discordant pairs
    (one arm right, the other wrong) is ``discordant_share``.

    Connor (1987), "Sample size for testing differences in proportions for the paired-sample
    design", Biometrics 43:207-211: n = (z_{1-a/2} sqrt(psi) + z_{power} sqrt(psi - d^2))^2 / d^2,
    solved here for d by bisection (n falls as d grows; d cannot exceed sqrt(psi) nor psi).
    None when no pair is discordant (psi = 0): the data cannot say how large a difference
    would be seen.
    """
    if questions < 1 or not 0 < alpha < 1 or not 0 < power < 1:
        raise ValueError("questions >= 1, alpha and power in (0, 1) are required")
    psi = float(discordant_share)
    if psi <= 0:
        return None
    z_alpha, z_power = norm.ppf(1 - alpha / 2), norm.ppf(power)

    def needed(d: float) -> float:
        return (z_alpha * math.sqrt(psi) + z_power * math.sqrt(max(psi - d * d, 0.0))) ** 2 / d**2

    low, high = 1e-9, min(psi, math.sqrt(psi))
    if needed(high) > questions:
        return None  # even the largest possible difference needs more questions
    for _ in range(100):
        mid = (low + high) / 2
        low, high = (mid, high) if needed(mid) > questions else (low, mid)
    return high


def compare_arms(
    per_question: Mapping[str, Sequence[float]],
    correct: Mapping[str, Sequence[bool]],
    alpha: float = 0.05,
    seed: int = 0,
    resamples: int = DEFAULT_RESAMPLES,
    correction: str = "holm",
) -> dict[str, dict]:
    """Compare every pair of arms answered on the same questions in the same order.

    Keys are ``"<a>_vs_<b>"`` for the pairs of ``per_question`` in its order. Each value holds
    the paired mean difference a - b of ``per_question`` scores with its 95% CI, McNemar's b, c
    and p on ``correct``, ``p_value_adjusted`` (Holm, or equal to p with ``correction="none"``),
    ``significant`` (adjusted p < alpha) and a one-line ``verdict``. The direction of the verdict
    comes from correctness (b vs c), the test that decides significance.
    """
    if correction not in ("holm", "none"):
        raise ValueError(f"correction must be 'holm' or 'none', got {correction!r}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    missing = sorted(set(per_question) ^ set(correct))
    if missing:
        raise ValueError(f"arms {missing} have scores or correctness but not both")
    pairs = list(combinations(per_question, 2))
    tests = [mcnemar_exact(correct[a], correct[b]) for a, b in pairs]
    raw = [t.p_value for t in tests]
    adjusted = holm_adjust(raw) if correction == "holm" else raw
    # Holm's first step tests the smallest p at alpha / m: the detectable difference is sized for
    # that most stringent level, so "no significant difference" is read against it.
    level = alpha / len(pairs) if correction == "holm" and pairs else alpha
    comparison: dict[str, dict] = {}
    for (a, b), test, p_adjusted in zip(pairs, tests, adjusted, strict=True):
        difference = paired_difference(per_question[a], per_question[b], resamples, seed)
        if difference.questions != len(correct[a]):
            raise ValueError(f"arm {a}: {difference.questions} scores but {len(correct[a])} flags")
        comparison[f"{a}_vs_{b}"] = {
            "arm_a": a,
            "arm_b": b,
            **asdict(difference),
            "mcnemar_b": test.b,
            "mcnemar_c": test.c,
            "p_value": test.p_value,
            "p_value_adjusted": p_adjusted,
            "correction": correction,
            "significant": bool(p_adjusted < alpha),
            "verdict": verdict(a, b, test, p_adjusted, alpha),
            "minimum_detectable_difference": minimum_detectable_difference(
                difference.questions, (test.b + test.c) / max(difference.questions, 1), level
            ),
            "agreement": _agreement(difference, p_adjusted < alpha, correction, len(pairs)),
        }
    return comparison
