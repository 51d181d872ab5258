"""Each paper preset runs end to end through the entry point on tiny settings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers.ragtune_cli import ragtune

pytestmark = pytest.mark.integration

TINY = [
    "corpus=tiny",
    "generator=tiny",
    "retriever/embedder=hashing",
    "qa.max_eval_questions=4",
    "finetune.max_steps=2",
    "finetune.batch_size=4",
    "finetune.max_length=128",
    "eval.progress=false",
    "eval.throughput_batch_size=0",
    "tracking=none",
    "hydra.run.dir=out",
]


def run_preset(tmp_path: Path, preset: str, *extra: str) -> dict:
    proc = ragtune(tmp_path, f"experiment={preset}", *TINY, *extra)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((tmp_path / "out/results.json").read_text())


def test_dong_xie_preset_reports_the_hybrid_edge_cloud_scenario(tmp_path):
    results = run_preset(tmp_path, "dong_xie2024")
    report = results["costing"]
    hybrid = report["hybrid"]
    assert hybrid["cloud_device"] == "h100-sxm" and hybrid["edge_device"] == "as measured"
    edge, cloud, both = hybrid["edge_only"], hybrid["cloud_only"], hybrid["hybrid"]
    # every query is answered on the edge; a share s = 0.2 is re-answered in the cloud
    assert both["usd_per_query"] == pytest.approx(
        edge["usd_per_query"] + 0.2 * cloud["usd_per_query"]
    )
    assert cloud["latency_s"] > 0.1  # a cloud answer includes the 0.1 s network round trip
    assert both["final_answer_latency_s"] == pytest.approx(
        edge["latency_s"] + 0.2 * cloud["latency_s"]
    )
    assert both["accuracy"] == pytest.approx(0.8 * edge["accuracy"] + 0.2 * cloud["accuracy"])
    assert edge["accuracy"] == pytest.approx(results["arms"]["finetune"]["accuracy"]["contains"])
    assert set(report["projections"]["rag"]) == {"cpu-2core", "l4", "a100-80gb", "h100-sxm"}
    assert results["arms"]["rag"]["cost"]["traffic"]["queries_per_day"] == 10000
    # the measured cascade: edge tier projected onto a CPU row, cloud tier onto an H100
    cascade = results["arms"]["cascade"]["cascade"]
    assert cascade["projection"]["cloud_device"] == "h100-sxm"
    assert cascade["projection"]["edge_device"] == "cpu-2core"
    cloud_only = cascade["sweep"][-1]
    assert cloud_only["point"] == "cloud_only" and cloud_only["escalation_rate"] == 1.0
    edge_row = report["projections"]["finetune"]["cpu-2core"]["per_query"]["cost"]
    cloud_row = report["projections"]["finetune_rag"]["h100-sxm"]["per_query"]["cost"]
    assert cloud_only["projected"]["usd_per_1k_queries"] == pytest.approx(
        1000 * (edge_row["usd"] + cloud_row["usd"])
    )
    escalated = [p["cascade"]["escalated"] for p in results["predictions"] if p["arm"] == "cascade"]
    assert cascade["escalation_rate"] == sum(escalated) / len(escalated)


def test_ovadia_preset_fine_tunes_on_documents_only(tmp_path):
    results = run_preset(tmp_path, "ovadia2023")
    assert results["config"]["finetune"]["mode"] == "cpt"
    # continued pre-training: the training set holds documents, no question was trained on
    finetune = results["stages"]["finetune"]
    assert finetune["examples"] >= results["stages"]["corpus"]["documents"]
    assert list(results["arms"]) == ["closed_book", "rag", "finetune", "finetune_rag"]


def test_balaguer_preset_trains_on_questions_generated_from_the_documents(tmp_path):
    results = run_preset(tmp_path, "balaguer2024")
    corpus = results["stages"]["corpus"]
    assert corpus["synthesis"]["method"] == "cloze" and corpus["synthesis"]["accepted"] > 0
    assert results["config"]["finetune"]["mode"] == "qa_sft"
    assert corpus["train_questions"] > 0 and corpus["leakage"]["overlap_count"] == 0
    for p in results["predictions"]:  # the asked questions are generated ones
        assert ":cloze-" in p["qa_id"]
