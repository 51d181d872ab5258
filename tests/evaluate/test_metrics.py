"""Answer scoring and percentile statistics against hand-computed values."""

from __future__ import annotations

import math

import pytest

from evaluate.scoring.metrics import (
    contains_answer,
    exact_match,
    latency_summary,
    normalize_answer,
    percentile,
    token_f1,
)


def test_normalisation_strips_case_punctuation_and_articles():
    assert normalize_answer("  The Velmora  Instruments, Ltd.") == "velmora instruments ltd"


def test_exact_match_uses_every_alias():
    assert (
        exact_match("velmora instruments", ["Velmora Instruments Ltd", "Velmora Instruments"]) == 1
    )
    assert exact_match("Velmora", ["Velmora Instruments"]) == 0


def test_token_f1_partial_overlap():
    # prediction 3 tokens, gold 2 tokens, 2 in common: P=2/3, R=1 -> F1=0.8
    assert token_f1("born in Tarrowby", ["in Tarrowby"]) == pytest.approx(0.8)
    assert token_f1("nothing shared", ["Tarrowby"]) == 0.0


def test_contains_answer_respects_word_boundaries():
    assert contains_answer("She was born in 1957.", ["1957"]) == 1
    assert contains_answer("19570", ["1957"]) == 0
    assert contains_answer("Tarrowbyshire", ["Tarrowby"]) == 0


def test_hit_rate_at_k():
    from evaluate.scoring.retrieval import retrieval_scores

    assert retrieval_scores(["d2", "d1"], ["d1"], 2)["hit_rate_at_k"] == 1
    assert retrieval_scores(["d2", "d3"], ["d1"], 2)["hit_rate_at_k"] == 0


def test_percentile_matches_linear_interpolation():
    values = [1.0, 2.0, 3.0, 4.0, 10.0]
    assert percentile(values, 50) == 3.0
    assert percentile(values, 95) == pytest.approx(4.0 + 0.8 * 6.0)  # position 3.8
    assert math.isnan(percentile([], 50))
    summary = latency_summary([0.1, 0.3], "ttft")
    assert summary == {
        "ttft_p50_s": pytest.approx(0.2),
        "ttft_p95_s": pytest.approx(0.29),
        "ttft_p99_s": pytest.approx(0.298),
        "ttft_mean_s": pytest.approx(0.2),
    }
