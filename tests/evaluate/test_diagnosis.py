"""Reader-versus-retriever diagnosis: the oracle-context arm, the decomposition of RAG's gap,
the power of each comparison and the agreement of interval and verdict."""

from __future__ import annotations

import json

import pytest

from evaluate.scoring.diagnosis import decompose
from evaluate.scoring.stats import PairedDifference, _agreement, minimum_detectable_difference
from rag.core.types import Chunk, QAPair
from rag.retrieval.embedder import HashingEmbedder
from rag.retrieval.oracle import OracleRetriever
from tests.helpers.ragtune_cli import ragtune


def test_decomposition_splits_the_gap_to_perfect():
    arms = {
        "rag": {"accuracy": {"contains": 0.40}},
        "oracle_context": {"accuracy": {"contains": 0.70}},
    }
    d = decompose(arms)
    # by hand: retrieval loses 70 - 40 = 30 points, the reader 100 - 70 = 30 ... tie -> reader
    assert d["lost_to_retrieval_points"] == pytest.approx(30.0)
    assert d["lost_to_reader_points"] == pytest.approx(30.0)
    arms["oracle_context"]["accuracy"]["contains"] = 0.90
    d = decompose(arms)
    assert d["lost_to_retrieval_points"] == pytest.approx(50.0) and d["weaker"] == "retrieval"
    assert "50.0 points are lost to retrieval" in d["sentence"] and "top_k" in d["sentence"]
    assert decompose({"rag": arms["rag"]}) is None


def test_minimum_detectable_difference_matches_connors_formula():
    # Connor 1987 by hand: psi = 0.2, d = 0.1, alpha = 0.05, power = 0.8:
    # n = (1.95996 * sqrt(0.2) + 0.84162 * sqrt(0.19))^2 / 0.01 = 154.6 questions
    assert minimum_detectable_difference(155, 0.2, 0.05) == pytest.approx(0.1, abs=0.002)
    # four times the questions: about half the detectable difference
    assert minimum_detectable_difference(4 * 155, 0.2, 0.05) < 0.06
    assert minimum_detectable_difference(40, 0.0, 0.05) is None  # no discordant pair


def test_interval_and_verdict_disagreement_is_explained():
    excludes_zero = PairedDifference(-0.1, -0.2, -0.03, 40)
    note = _agreement(excludes_zero, significant=False, correction="holm", pairs=6)
    assert "not adjusted" in note and "6 pairs" in note
    assert _agreement(excludes_zero, significant=True, correction="holm", pairs=6) == "agree"


def test_oracle_returns_the_best_chunk_of_each_gold_document():
    chunks = [
        Chunk("a#0", "a", "Orlen Vask was born in Tarrowby in 1957.", 0, 40),
        Chunk("a#1", "a", "He later moved to the coast and kept bees.", 41, 83),
        Chunk("b#0", "b", "Velmora Quist was born in Skelwick.", 0, 35),
    ]
    questions = [
        QAPair("q1", "Where was Orlen Vask born?", ["Tarrowby"], ["a"]),
        QAPair("q2", "Who kept bees?", ["Orlen"], []),
    ]
    oracle = OracleRetriever(chunks, HashingEmbedder(), questions, top_k=3)
    hit = oracle.retrieve("Where was Orlen Vask born?")
    assert hit.chunk_ids == ["a#0"]  # b is not gold; a#1 is the weaker chunk of a
    assert oracle.retrieve("Who kept bees?").chunks == []  # no gold document: no context
    assert oracle.without_gold == 1


def test_diagnose_preset_runs_the_oracle_arm_through_the_entry_point(tmp_path):
    proc = ragtune(
        tmp_path,
        "experiment=smoke",
        "eval.arms=[closed_book,rag,oracle_context]",
        "tracking=none",
        f"hydra.run.dir={tmp_path / 'run'}",
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    oracle = [p for p in results["predictions"] if p["arm"] == "oracle_context"]
    assert oracle and all(p["retrieved_doc_ids"] for p in oracle)
    d = results["diagnosis"]
    rag = results["arms"]["rag"]["accuracy"]["contains"]
    ceiling = results["arms"]["oracle_context"]["accuracy"]["contains"]
    assert d["lost_to_retrieval_points"] == pytest.approx(100 * (ceiling - rag))
    assert d["lost_to_reader_points"] == pytest.approx(100 * (1 - ceiling))
    capped = sum(p["output_tokens"] >= 8 for p in oracle if p["error"] is None)  # smoke: 8 tokens
    assert results["arms"]["oracle_context"]["answers_at_token_cap"] == capped
    pair = results["comparisons"]["pairs"]["rag_vs_oracle_context"]
    assert "minimum_detectable_difference" in pair and pair["agreement"]
