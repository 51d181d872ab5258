"""ROUGE-L, embedding cosine similarity and the p99 latency key against hand-computed values."""

from __future__ import annotations

import itertools
import random

import numpy as np
import pytest

from evaluate.scoring.metrics import (
    _lcs_length,
    cosine_similarity,
    latency_summary,
    rouge_l,
    semantic_similarity,
    token_f1,
)
from rag.retrieval.embedder import HashingEmbedder


def test_rouge_l_hand_computed():
    # Normalised: "cat sat on mat" (4 tokens) vs "cat on mat" (3): LCS 3, P = 3/4, R = 1.
    assert rouge_l("The cat sat on the mat.", ["the cat on a mat"]) == pytest.approx(6 / 7)
    assert rouge_l("Tarrowby", ["Tarrowby"]) == 1.0
    assert rouge_l("nothing shared", ["Tarrowby"]) == 0.0


def test_rouge_l_respects_order_unlike_token_f1():
    # Same bag of words, reversed order: token F1 is 1, the LCS is one token (P = R = 1/2).
    assert token_f1("quist velmora", ["Velmora Quist"]) == 1.0
    assert rouge_l("quist velmora", ["Velmora Quist"]) == pytest.approx(0.5)


def test_rouge_l_takes_the_best_alias_and_handles_empty_text():
    assert rouge_l("born in Munderby", ["Tarrowby", "Munderby"]) == pytest.approx(0.5)
    assert rouge_l("", ["Munderby"]) == 0.0
    assert rouge_l("the", ["a"]) == 1.0  # both normalise to nothing, like token_f1


def _lcs_reference(a, b):
    """Full-table LCS (textbook recurrence), to check the one-row version."""
    table = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i, j in itertools.product(range(1, len(a) + 1), range(1, len(b) + 1)):
        if a[i - 1] == b[j - 1]:
            table[i][j] = table[i - 1][j - 1] + 1
        else:
            table[i][j] = max(table[i - 1][j], table[i][j - 1])
    return table[-1][-1]


def test_lcs_matches_the_textbook_recurrence_on_random_sequences():
    rng = random.Random(0)
    for _ in range(300):
        a = rng.choices("abcd", k=rng.randint(0, 9))
        b = rng.choices("abcd", k=rng.randint(0, 9))
        assert _lcs_length(a, b) == _lcs_reference(a, b), (a, b)


def test_cosine_similarity_shapes_and_values():
    a = np.array([1.0, 0.0])
    b = np.array([[0.6, 0.8], [0.0, 1.0], [-1.0, 0.0]])
    assert cosine_similarity(a, a) == pytest.approx(1.0)
    assert cosine_similarity(a, b) == pytest.approx([0.6, 0.0, -1.0])
    assert cosine_similarity(b, b).shape == (3, 3)
    assert np.diag(cosine_similarity(b, b)) == pytest.approx([1.0, 1.0, 1.0])
    assert cosine_similarity(b, a).shape == (3,)


def test_cosine_similarity_rejects_unnormalised_input_and_allows_zero_rows():
    with pytest.raises(ValueError, match="L2-normalised"):
        cosine_similarity(np.array([3.0, 4.0]), np.array([1.0, 0.0]))
    with pytest.raises(ValueError, match="dimension"):
        cosine_similarity(np.array([1.0, 0.0]), np.array([1.0, 0.0, 0.0]))
    assert cosine_similarity(np.zeros(2), np.array([1.0, 0.0])) == 0.0


def test_semantic_similarity_with_the_hashing_embedder():
    embedder = HashingEmbedder(dimension=256)
    vectors = embedder.embed(["born in Munderby", "Tarrowby", "born in Munderby", ""])
    prediction, golds = vectors[0], vectors[1:3]
    assert semantic_similarity(prediction, golds) == pytest.approx(1.0, abs=1e-6)
    assert semantic_similarity(prediction, vectors[1]) < 0.5
    expected = float(np.dot(vectors[0], vectors[1]))
    assert semantic_similarity(prediction, vectors[1:2]) == pytest.approx(expected)
    assert semantic_similarity(vectors[3], vectors[:1]) == 0.0  # empty text embeds to zeros


def test_latency_summary_has_p99_next_to_the_existing_keys():
    summary = latency_summary([0.1, 0.3], "ttft")
    assert summary["ttft_p99_s"] == pytest.approx(0.1 + 0.99 * 0.2)
    assert {"ttft_p50_s", "ttft_p95_s", "ttft_mean_s"} <= set(summary)
    values = list(np.random.default_rng(0).exponential(size=101))
    assert latency_summary(values, "e2e")["e2e_p99_s"] == pytest.approx(np.percentile(values, 99))
