"""The cascade arm through the entry point: added after its edge and cloud arms, it reuses their
journaled answers (nothing is generated again), its sweep's end points are those arms, and the
sweep reaches MLflow and the report's plot."""

from __future__ import annotations

import json

import pytest

from evaluate.records.results import flat_prediction
from tests.helpers.ragtune_cli import ragtune

pytestmark = pytest.mark.integration

COMMON = [
    "experiment=smoke",
    "qa.max_eval_questions=4",
    "eval.throughput_batch_size=0",
    "eval.semantic_similarity=false",
]


def test_cascade_reuses_the_journaled_answers_of_its_arms(tmp_path, monkeypatch):
    first = ragtune(
        tmp_path, *COMMON, "tracking=none", "eval.arms=[finetune,finetune_rag]", "hydra.run.dir=one"
    )
    assert first.returncode == 0, first.stderr[-3000:]
    second = ragtune(
        tmp_path,
        *COMMON,
        "eval.arms=[finetune,finetune_rag,cascade]",
        "eval.cascade.threshold=-1e9",  # below every log-prob: nothing escalates
        "hydra.run.dir=two",
        f"tracking.uri=sqlite:///{tmp_path / 'mlflow.db'}",
    )
    assert second.returncode == 0, second.stderr[-3000:]
    log = (tmp_path / "two/ragtune.log").read_text()
    assert "arm finetune: reused 4 of 4 answers" in log
    assert "arm finetune_rag: reused 4 of 4 answers" in log
    before = json.loads((tmp_path / "one/results.json").read_text())
    after = json.loads((tmp_path / "two/results.json").read_text())
    old = {(p["arm"], p["qa_id"]): p for p in before["predictions"]}
    cascade = [p for p in after["predictions"] if p["arm"] == "cascade"]
    assert len(cascade) == 4 and all(p["reused"] for p in cascade)
    for p in cascade:
        edge, cloud = old[("finetune", p["qa_id"])], old[("finetune_rag", p["qa_id"])]
        record = p["cascade"]
        assert record["edge_reused"] and record["cloud_reused"]
        # the very answers and timings of the first run, not new generations
        assert record["edge_answer"] == edge["prediction"]
        assert record["cloud_answer"] == cloud["prediction"]
        assert record["confidence"] == edge["logprob_mean"] < 0
        assert record["edge_s"] == pytest.approx(edge["request_s"])
        assert record["cloud_s"] == pytest.approx(cloud["request_s"])
        assert not record["escalated"] and p["prediction"] == edge["prediction"]
        row = flat_prediction(p)  # the predictions table carries the decision per question
        assert row["cascade.escalated"] is False and row["cascade.confidence"] < 0
    summary = after["arms"]["cascade"]["cascade"]
    sweep = summary["sweep"]
    assert (sweep[0]["point"], sweep[-1]["point"]) == ("edge_only", "cloud_only")
    arms = after["arms"]
    assert sweep[0]["accuracy"] == arms["finetune"]["accuracy"]["contains"]
    assert sweep[-1]["accuracy"] == arms["finetune_rag"]["accuracy"]["contains"]
    assert summary["escalation_rate"] == 0.0
    # the default sweep has one point per distinct confidence between the end points
    distinct = {p["cascade"]["confidence"] for p in cascade}
    assert len(sweep) == len(distinct) + 2
    # one-time cost: the cascade depends on the index and the adapter of its parts
    assert set(arms["cascade"]["cost"]["one_time"]) == {"index", "train"}

    # MLflow: the sweep as metrics, the decisions in the predictions table; the report's plot
    from mlflow.tracking import MlflowClient

    from evaluate.report import main as report_main

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    runs = client.search_runs([client.get_experiment_by_name("smoke").experiment_id])
    (run,) = [r for r in runs if r.data.tags.get("kind") == "job"]  # arms are nested runs
    metrics = run.data.metrics
    last = f"cascade/sweep/{len(sweep) - 1:02d}"
    assert metrics["cascade/sweep/00/accuracy"] == sweep[0]["accuracy"]
    assert metrics[f"{last}/escalation_rate"] == 1.0
    assert metrics[f"{last}/usd_per_1k_queries"] == pytest.approx(
        sweep[-1]["per_1k_queries"]["total"]["usd"]
    )
    monkeypatch.chdir(tmp_path)  # artifact locations are relative to the store's folder
    table = client.download_artifacts(run.info.run_id, "predictions.json", str(tmp_path))
    assert "cascade.escalated" in json.loads(open(table).read())["columns"]
    out = tmp_path / "report"
    assert report_main(["--experiment", "smoke", "--tracking-uri", uri, "--out", str(out)]) == 0
    assert (out / "cascade_sweep.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "cascade_sweep.png" in (out / "report.md").read_text()
