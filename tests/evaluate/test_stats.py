"""Bootstrap intervals, paired differences, McNemar's exact test and the arm comparison, checked
against hand-computed values and scipy."""

from __future__ import annotations

import math

import numpy as np
import pytest

from evaluate.scoring.stats import (
    binomial_two_sided_p,
    bootstrap_ci,
    compare_arms,
    holm_adjust,
    mcnemar_exact,
    paired_difference,
    summarise_with_ci,
)


def test_mcnemar_hand_computed():
    # b=0, c=5: P[X <= 0] = 1/32 for X ~ Bin(5, 1/2), two-sided p = 2/32.
    result = mcnemar_exact([False] * 5 + [True] * 3, [True] * 5 + [True] * 3)
    assert (result.b, result.c) == (0, 5)
    assert result.p_value == pytest.approx(2 / 32)
    # b=9, c=1: P[X <= 1] = (1 + 10) / 1024 for X ~ Bin(10, 1/2).
    a = [True] * 9 + [False] + [True, False]
    b = [False] * 9 + [True] + [True, False]
    result = mcnemar_exact(a, b)
    assert (result.b, result.c) == (9, 1)
    assert result.p_value == pytest.approx(22 / 1024)


def test_mcnemar_without_discordant_pairs_or_balanced_is_one():
    assert mcnemar_exact([True, False], [True, False]).p_value == 1.0
    assert binomial_two_sided_p(0, 0) == 1.0
    assert binomial_two_sided_p(3, 3) == 1.0


def _exact_two_sided(b: int, c: int) -> float:
    """McNemar's exact p by the textbook formula, in integers: min(1, 2 * P[X <= min(b, c)]),
    X ~ Binomial(b + c, 1/2) (Fagerland, Lydersen and Laake 2013)."""
    n = b + c
    return min(1.0, 2 * sum(math.comb(n, k) for k in range(min(b, c) + 1)) / 2**n)


def test_mcnemar_matches_the_exact_binomial_formula():
    for b in range(0, 26, 3):
        for c in range(0, 26, 4):
            if b + c == 0:
                continue
            expected = _exact_two_sided(b, c)
            assert binomial_two_sided_p(b, c) == pytest.approx(expected, rel=1e-9), (b, c)


def test_mcnemar_large_counts_do_not_overflow():
    expected = _exact_two_sided(400, 600)
    assert binomial_two_sided_p(400, 600) == pytest.approx(expected, rel=1e-6)
    assert 0 < binomial_two_sided_p(400, 600) < 1e-9


def test_mcnemar_rejects_unpaired_input():
    with pytest.raises(ValueError, match="same questions"):
        mcnemar_exact([True], [True, False])


def test_bootstrap_of_two_points_spans_both():
    # Resampled means of [0, 1] are 0, 0.5, 1 with probabilities 1/4, 1/2, 1/4:
    # the 2.5th and 97.5th percentiles are 0 and 1.
    assert bootstrap_ci([0.0, 1.0], resamples=2000, seed=1) == (0.0, 1.0)


def test_bootstrap_constant_and_empty():
    assert bootstrap_ci([0.7] * 10) == pytest.approx((0.7, 0.7))
    low, high = bootstrap_ci([])
    assert math.isnan(low) and math.isnan(high)
    with pytest.raises(ValueError, match="NaN"):
        bootstrap_ci([0.1, float("nan")])


def test_bootstrap_matches_normal_approximation_for_a_proportion():
    # 400 questions, half right: standard error sqrt(0.25 / 400) = 0.025, 95% CI ~ 0.5 +- 0.049.
    scores = [1.0, 0.0] * 200
    low, high = bootstrap_ci(scores, resamples=4000, seed=3)
    assert low == pytest.approx(0.5 - 1.96 * 0.025, abs=0.006)
    assert high == pytest.approx(0.5 + 1.96 * 0.025, abs=0.006)


def test_bootstrap_agrees_with_scipy_percentile_bootstrap():
    stats = pytest.importorskip("scipy.stats")
    data = np.random.default_rng(7).exponential(size=150)
    ours = bootstrap_ci(data, resamples=10000, seed=0)
    theirs = stats.bootstrap(
        (data,),
        np.mean,
        confidence_level=0.95,
        n_resamples=10000,
        method="percentile",
        rng=np.random.default_rng(1),
    ).confidence_interval
    assert ours[0] == pytest.approx(theirs.low, abs=0.02)
    assert ours[1] == pytest.approx(theirs.high, abs=0.02)


def test_bootstrap_is_seeded():
    scores = np.random.default_rng(0).random(50)
    assert bootstrap_ci(scores, seed=5) == bootstrap_ci(scores, seed=5)
    assert bootstrap_ci(scores, seed=5) != bootstrap_ci(scores, seed=6)


def test_summarise_with_ci():
    summary = summarise_with_ci([0.0, 1.0, 1.0, 1.0], seed=0)
    assert set(summary) == {"mean", "ci95_low", "ci95_high"}
    assert summary["mean"] == 0.75
    assert summary["ci95_low"] < 0.75 < summary["ci95_high"] <= 1.0


def test_paired_difference_resamples_questions_jointly():
    # Per-question scores vary a lot, but arm a is always exactly 0.25 above arm b. Joint
    # resampling sees a constant difference (zero-width CI); resampling each arm on its own
    # would give a CI about +-0.08 wide.
    b = np.random.default_rng(2).random(200) * 0.5
    a = b + 0.25
    result = paired_difference(a, b, seed=0)
    assert result.mean_difference == pytest.approx(0.25)
    assert result.ci95_low == pytest.approx(0.25)
    assert result.ci95_high == pytest.approx(0.25)
    assert result.questions == 200
    with pytest.raises(ValueError, match="same questions"):
        paired_difference([1.0, 0.0], [1.0])


def test_holm_adjustment_hand_computed():
    # Sorted: 0.01*3 = 0.03; 0.03*2 = 0.06; 0.04*1 = 0.04 -> raised to 0.06 (monotone).
    assert holm_adjust([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    # 0.5*2 = 1.0; 0.9*1 = 0.9 -> raised to 1.0.
    assert holm_adjust([0.5, 0.9]) == pytest.approx([1.0, 1.0])


def _arms():
    # 40 questions. closed_book right on 5 (0-4); rag right on 0-29; finetune right on 0-3, 30-34.
    n = 40
    closed = [i < 5 for i in range(n)]
    rag = [i < 30 for i in range(n)]
    finetune = [i < 4 or 30 <= i < 35 for i in range(n)]
    correct = {"closed_book": closed, "rag": rag, "finetune": finetune}
    scores = {arm: [float(x) for x in flags] for arm, flags in correct.items()}
    return scores, correct


def test_compare_arms_counts_p_values_and_verdicts():
    scores, correct = _arms()
    result = compare_arms(scores, correct, alpha=0.05, seed=0, correction="none")
    assert list(result) == ["closed_book_vs_rag", "closed_book_vs_finetune", "rag_vs_finetune"]

    cb_rag = result["closed_book_vs_rag"]
    # b: closed right & rag wrong = 0; c: closed wrong & rag right = 25 (questions 5-29).
    assert (cb_rag["mcnemar_b"], cb_rag["mcnemar_c"]) == (0, 25)
    assert cb_rag["p_value"] == pytest.approx(2 / 2**25)
    assert cb_rag["mean_difference"] == pytest.approx(5 / 40 - 30 / 40)
    assert cb_rag["ci95_low"] <= cb_rag["mean_difference"] <= cb_rag["ci95_high"] < 0
    assert cb_rag["significant"] is True
    assert cb_rag["verdict"] == "rag is better than closed_book (p<0.001)"

    cb_ft = result["closed_book_vs_finetune"]
    # b: question 4 only; c: questions 30-34 -> p = 2 * (1 + 6) / 64.
    assert (cb_ft["mcnemar_b"], cb_ft["mcnemar_c"]) == (1, 5)
    assert cb_ft["p_value"] == pytest.approx(14 / 64)
    assert cb_ft["significant"] is False
    assert cb_ft["verdict"] == "no significant difference (p=0.22)"


def test_compare_arms_holm_correction_changes_significance():
    # Arms a and c answer identically; b differs from both on 10 questions (9 vs 1), so
    # a-vs-b and b-vs-c have raw p = 22/1024 = 0.021 (significant at 0.05) and a-vs-c has p = 1.
    a = [True] * 9 + [False] + [True] * 2
    b = [False] * 9 + [True] + [True] * 2
    correct = {"a": a, "b": b, "c": list(a)}
    scores = {k: [float(x) for x in v] for k, v in correct.items()}
    raw = compare_arms(scores, correct, correction="none")
    holm = compare_arms(scores, correct)
    assert raw["a_vs_b"]["p_value"] == pytest.approx(22 / 1024)
    assert raw["a_vs_b"]["significant"] and raw["b_vs_c"]["significant"]
    assert raw["b_vs_c"]["verdict"] == "c is better than b (p=0.021)"
    assert raw["a_vs_c"]["p_value"] == 1.0
    # Holm: sorted p = [22/1024, 22/1024, 1] -> [3 * 22/1024, 2 * 22/1024 -> max, 1].
    assert holm["a_vs_b"]["p_value_adjusted"] == pytest.approx(3 * 22 / 1024)
    assert holm["a_vs_b"]["significant"] is False
    assert holm["a_vs_b"]["verdict"] == "no significant difference (p=0.064)"
    assert raw["a_vs_b"]["verdict"] == "a is better than b (p=0.021)"


def test_compare_arms_rejects_inconsistent_input():
    scores, correct = _arms()
    with pytest.raises(ValueError, match="finetune"):
        compare_arms(scores, {k: v for k, v in correct.items() if k != "finetune"})
    with pytest.raises(ValueError, match="correction"):
        compare_arms(scores, correct, correction="bonferoni")
    short = dict(scores, rag=scores["rag"][:-1])
    with pytest.raises(ValueError, match="same questions"):
        compare_arms(short, correct)
