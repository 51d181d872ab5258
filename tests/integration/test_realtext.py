"""The realtext preset through the real entry point with the default models (SmolLM2-135M,
MiniLM): the Python language reference, questions with verbatim short answers."""

from __future__ import annotations

import json

import pytest

from tests.helpers.ragtune_cli import ragtune

pytestmark = [pytest.mark.slow, pytest.mark.integration]

# The first QUESTIONS of the preset's seeded question order; each RAG answer reads about 650
# prompt tokens, so this stays a few minutes on 2 free cores.
QUESTIONS = 8


@pytest.fixture(scope="module")
def results(tmp_path_factory, real_model_cache) -> dict:
    cwd = tmp_path_factory.mktemp("realtext")
    proc = ragtune(
        cwd,
        "experiment=realtext",
        "eval.arms=[closed_book,rag]",
        f"qa.max_eval_questions={QUESTIONS}",
        "eval.throughput_batch_size=0",
        "eval.progress=false",
        "tracking=none",
        "hydra.run.dir=outputs/realtext",
        cache=real_model_cache,
        timeout=3600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((cwd / "outputs/realtext/results.json").read_text())


def test_shipped_set_runs_and_retrieval_finds_the_source_document(results):
    corpus = results["stages"]["corpus"]
    assert corpus["documents"] == 82
    assert corpus["qa_file"]["unknown_doc_ids"] == 0  # doc ids are file stems; all resolve
    assert corpus["qa_file"]["answers_not_found"] == 0
    assert {p["qa_id"] for p in results["predictions"]} == {
        p["qa_id"] for p in results["predictions"] if p["arm"] == "rag"
    }
    assert len([p for p in results["predictions"] if p["arm"] == "rag"]) == QUESTIONS
    # Measured with the default retriever: the source document is in the top 3 for 84 of the 89
    # questions (0.944) and for 7 of these 8.
    assert results["arms"]["rag"]["accuracy"]["recall_at_k"] >= 0.8


@pytest.mark.xfail(
    strict=True,
    reason="target of issue 22, not met with the default prompt: the 135M reader rephrases the "
    "retrieved passage instead of copying the answer. Measured on these 8 questions: rag "
    "contains 1/8 (95% CI 0-0.375), closed_book 0/8, recall@3 0.875",
)
def test_rag_is_at_least_20_points_above_closed_book(results):
    arms = results["arms"]
    closed_book, rag = arms["closed_book"]["accuracy"], arms["rag"]["accuracy"]
    assert rag["contains"] - closed_book["contains"] >= 0.20, (closed_book, rag)
