"""The real entry point on experiment=smoke: files, MLflow records, caching, failure handling."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.helpers.ragtune_cli import ragtune

pytestmark = pytest.mark.integration

ARMS = ["closed_book", "rag", "finetune", "finetune_rag"]


def run_cli(cwd: Path, cache: Path, *overrides: str) -> subprocess.CompletedProcess:
    return ragtune(cwd, "experiment=smoke", *overrides, cache=cache)


def results_files(cwd: Path) -> list[Path]:
    return sorted((cwd / "outputs" / "smoke").glob("*/results.json"))


@pytest.fixture(scope="module")
def smoke_runs(tmp_path_factory):
    """Two identical smoke runs in one folder (the second must reuse the caches)."""
    cwd = tmp_path_factory.mktemp("smoke-run")
    cache = tmp_path_factory.mktemp("smoke-cache")
    first = run_cli(cwd, cache, "hydra.run.dir=outputs/smoke/first")
    assert first.returncode == 0, first.stderr[-3000:]
    second = run_cli(cwd, cache, "hydra.run.dir=outputs/smoke/second")
    assert second.returncode == 0, second.stderr[-3000:]
    return cwd, cache, first, second


def test_results_json_has_every_arm_and_figure(smoke_runs):
    cwd, *_ = smoke_runs
    results = json.loads((cwd / "outputs/smoke/first/results.json").read_text())
    assert list(results["arms"]) == ARMS
    n_questions = results["stages"]["corpus"]["eval_questions"]
    assert n_questions == 6
    for arm in ARMS:
        figures = results["arms"][arm]
        assert figures["accuracy"]["questions"] == n_questions
        assert 0.0 <= figures["accuracy"]["exact_match"] <= 1.0
        assert figures["latency"]["ttft_p50_s"] > 0
        assert figures["latency"]["ttft_p95_s"] >= figures["latency"]["ttft_p50_s"]
        assert figures["cost"]["per_query"]["total"]["usd"] > 0
        assert ("recall_at_k" in figures["accuracy"]) == (arm in ("rag", "finetune_rag"))
    # one-time costs: index for RAG arms, training for fine-tuned arms, both for the combination
    cost = {arm: results["arms"][arm]["cost"]["one_time"] for arm in ARMS}
    assert set(cost["closed_book"]) == set()
    assert set(cost["rag"]) == {"index"}
    assert set(cost["finetune"]) == {"train"}
    assert set(cost["finetune_rag"]) == {"index", "train"}
    predictions = results["predictions"]
    assert len(predictions) == 4 * n_questions
    # every arm answered the identical question list
    by_arm = {arm: [p["qa_id"] for p in predictions if p["arm"] == arm] for arm in ARMS}
    assert all(ids == by_arm["closed_book"] for ids in by_arm.values())
    for p in predictions:
        assert p["e2e_s"] == pytest.approx(p["ttft_s"] + p["tpot_s"] * (p["output_tokens"] - 1))
        assert p["request_s"] >= p["e2e_s"]
    # 6 questions <= eval.latency_questions (20): every one timed batch-1, none answered again
    # in batches (eval.compare_batched is off by default)
    for arm in ARMS:
        assert results["arms"][arm]["latency_questions"] == n_questions
        assert results["arms"][arm]["batched_vs_batch1"] == {"compared": 0, "differ": 0}
    assert results["stages"]["finetune"]["steps"] == 4
    assert results["stages"]["finetune"]["merged"] is True
    for arm in ARMS:
        interval = results["arms"][arm]["accuracy_ci"]["exact_match"]
        assert interval["ci95_low"] <= interval["mean"] <= interval["ci95_high"]
        assert results["arms"][arm]["throughput"]["tokens_per_s"] > 0
        assert "ttft_p99_s" in results["arms"][arm]["latency"]
    pairs = results["comparisons"]["pairs"]
    assert len(pairs) == 6  # every pair of the four arms
    assert all(0.0 <= p["p_value"] <= 1.0 and p["verdict"] for p in pairs.values())
    assert results["arms"]["finetune"]["cost"]["one_time_total"]["seconds"] == pytest.approx(
        results["stages"]["finetune"]["wall_s"]
    )
    assert set(results["costing"]["projections"]["rag"]) == {"a100-80gb", "h100-sxm"}


def test_identical_rerun_reuses_index_and_adapter(smoke_runs):
    cwd, _, first, second = smoke_runs
    r1 = json.loads((cwd / "outputs/smoke/first/results.json").read_text())
    r2 = json.loads((cwd / "outputs/smoke/second/results.json").read_text())
    assert not r1["stages"]["index"]["reused"] and r2["stages"]["index"]["reused"]
    assert not r1["stages"]["finetune"]["reused"] and r2["stages"]["finetune"]["reused"]
    assert r1["stages"]["finetune"]["adapter_dir"] == r2["stages"]["finetune"]["adapter_dir"]
    log = second.stdout + second.stderr
    assert "reusing cached index" in log and "reusing cached adapter" in log
    # the answering stage's parts are timed: both models loaded in the first run; the second
    # found every answer and throughput in the journal and loaded none
    parts1, parts2 = r1["stages"]["answering_s"], r2["stages"]["answering_s"]
    assert {"base_model_load", "tuned_model_load"} <= set(parts1)
    assert not {"base_model_load", "tuned_model_load"} & set(parts2)
    for arm in ARMS:
        assert parts1[f"{arm}/answers"] > 0 and parts1[f"{arm}/throughput"] > 0
    assert sum(parts1.values()) < r1["duration_s"]
    # same inputs, greedy decoding: the same answers
    answers = [(p["arm"], p["qa_id"], p["prediction"]) for p in r1["predictions"]]
    assert answers == [(p["arm"], p["qa_id"], p["prediction"]) for p in r2["predictions"]]


def test_mlflow_has_a_job_run_with_one_nested_run_per_arm(smoke_runs, monkeypatch):
    from mlflow.tracking import MlflowClient

    cwd, *_ = smoke_runs
    monkeypatch.chdir(cwd)  # artifact locations are relative to the store's folder
    results = json.loads((cwd / "outputs/smoke/first/results.json").read_text())
    client = MlflowClient(tracking_uri=f"sqlite:///{cwd / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("smoke")
    runs = client.search_runs([experiment.experiment_id])
    jobs = [r for r in runs if r.data.tags["kind"] == "job"]
    assert len(jobs) == 2 and all(r.info.status == "FINISHED" for r in runs)
    run = client.get_run(results["mlflow_run_id"])
    arms = {
        r.data.tags["arm"]: r
        for r in runs
        if r.data.tags.get("mlflow.parentRunId") == run.info.run_id
    }
    assert sorted(arms) == sorted(ARMS) and all(r.data.tags["kind"] == "arm" for r in arms.values())
    names = {arm: set(r.data.metrics) for arm, r in arms.items()}
    for arm, r in arms.items():
        metrics = r.data.metrics
        print(f"{arm}: {len(metrics)} metrics")  # the count per arm run, shown with -s
        assert len(metrics) <= 60
        assert metrics["accuracy/exact_match"] == pytest.approx(
            results["arms"][arm]["accuracy"]["exact_match"]
        )
        assert metrics["latency/ttft_p50_s"] == pytest.approx(
            results["arms"][arm]["latency"]["ttft_p50_s"]
        )
        assert metrics["cost/usd_per_1k_queries"] == pytest.approx(
            results["arms"][arm]["cost"]["per_1k_queries"]["usd"]
        )
        assert metrics["co2/operational_kg_per_1k_queries"] == pytest.approx(
            results["arms"][arm]["cost"]["per_1k_queries"]["co2_operational_kg"]
        )
        assert "qoe/score" in metrics
        assert metrics["eval/batched_differ"] == results["arms"][arm]["batched_vs_batch1"]["differ"]

    # every arm has the same names; arms that retrieve add the retrieval figures
    # (and carbon totals with embodied carbon are logged only where known: here only the zero
    # one-time total of closed_book, which has no one-time work)
    def shared(metric_names):
        return {m for m in metric_names if "retrieval" not in m and m != "co2/one_time_kg"}

    assert all(shared(n) == shared(names["closed_book"]) for n in names.values())
    assert "retrieval/recall_at_k" in names["rag"] and "latency/retrieval_p50_s" in names["rag"]
    assert "compare/closed_book_vs_rag/p_value" in run.data.metrics
    assert not any(k.startswith(("rag/", "cost/", "latency/")) for k in run.data.metrics)
    assert run.data.tags["compare/closed_book_vs_rag/verdict"]
    assert arms["finetune"].data.metrics["cost/one_time_usd"] > 0  # training
    description = run.data.tags["mlflow.note.content"]
    assert "| arm | contains (95% CI)" in description and "Most accurate" in description
    assert run.data.params["retriever.top_k"] == "3"
    assert run.data.params["generator.model"] == "tiny-random-llama"
    history = client.get_metric_history(run.info.run_id, "train/loss")
    assert [m.step for m in history] == [1, 2, 3, 4]
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"results.json", "resolved_config.yaml", "predictions.json", "adapter"} <= artifacts
    # the view the UI opens with: arm runs, key metric columns, grouped by a tag that every arm
    # run carries with its job run's name (MLflow would fold nested runs under their job run)
    view = json.loads(experiment.tags["mlflow.sharedViewState.ragtune"])
    assert "metrics.`accuracy/contains`" in view["selectedColumns"]
    (group,) = view["groupBy"]["groupByKeys"]
    assert group["mode"] == "tag"
    assert {r.data.tags[group["groupByData"]] for r in arms.values()} == {run.info.run_name}
    assert view["useGroupedValuesInCharts"] is False  # charts draw each arm, not the average


def test_a_rerun_that_reuses_every_answer_says_so(smoke_runs):
    from mlflow.tracking import MlflowClient

    cwd, *_ = smoke_runs
    second = json.loads((cwd / "outputs/smoke/second/results.json").read_text())
    client = MlflowClient(tracking_uri=f"sqlite:///{cwd / 'mlflow.db'}")
    run = client.get_run(second["mlflow_run_id"])
    reused = sum(figures["reused_answers"] for figures in second["arms"].values())
    expected = "all" if reused == 4 * 6 else "some" if reused else "none"
    assert run.data.tags["reused_answers"] == expected
    assert ("**Reused:**" in run.data.tags["mlflow.note.content"]) == (expected == "all")


def test_console_ends_with_the_summary_and_the_next_commands(smoke_runs):
    *_, second = smoke_runs
    out = second.stdout
    summary = out[out.index("Summary of smoke (4 arms):") :].splitlines()
    assert summary[1].split()[:2] == ["arm", "contains"]
    assert "USD / 1k queries" in summary[1] and "kg CO2e / 1k queries" in summary[1]
    assert "–" not in "".join(summary[3:7])  # every figure known for the smoke arms
    assert [line.split()[0] for line in summary[3:7]] == ARMS
    assert "make ui" in out and "ragtune-report --experiment smoke" in out
    assert "workflowType=machine_learning&viewStateShareKey=ragtune" in out
    log = second.stdout + second.stderr
    assert "FutureWarning" not in log or "py.warnings" in log  # warnings go through logging
    assert log.count("reusing cached adapter") == 1


def test_a_copied_store_folder_still_finds_every_artifact(smoke_runs, tmp_path, monkeypatch):
    import shutil

    from mlflow.tracking import MlflowClient

    cwd, *_ = smoke_runs
    copy = tmp_path / "moved"
    copy.mkdir()
    shutil.copy(cwd / "mlflow.db", copy / "mlflow.db")
    shutil.copytree(cwd / "mlartifacts", copy / "mlartifacts")
    monkeypatch.chdir(copy)  # `mlflow ui` and ragtune-report run in the store's folder
    client = MlflowClient(tracking_uri="sqlite:///mlflow.db")
    experiment = client.get_experiment_by_name("smoke")
    assert experiment.artifact_location == "mlartifacts/smoke"
    results = json.loads((cwd / "outputs/smoke/first/results.json").read_text())
    run = client.get_run(results["mlflow_run_id"])
    assert str(cwd) not in run.info.artifact_uri
    local = client.download_artifacts(run.info.run_id, "results.json", str(tmp_path))
    assert Path(local).resolve().is_relative_to(tmp_path.resolve())
    assert json.loads(Path(local).read_text())["mlflow_run_id"] == run.info.run_id
    assert not Path(run.info.artifact_uri).is_absolute()  # resolved in the folder it is opened


def test_a_failing_arm_marks_the_run_failed_and_writes_no_results(tmp_path, tiny_model_dir):
    from mlflow.tracking import MlflowClient

    # The embedder folder exists (so validation passes) but holds no model: the RAG stage fails
    # after the MLflow run has started.
    bogus = tmp_path / "not-a-model"
    bogus.mkdir()
    proc = run_cli(
        tmp_path,
        tmp_path / "cache",
        f"retriever.embedder.model={bogus}",
        "hydra.run.dir=outputs/smoke/failed",
    )
    assert proc.returncode != 0
    assert not (tmp_path / "outputs/smoke/failed/results.json").exists()
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("smoke").experiment_id])
    assert [r.info.status for r in runs] == ["FAILED"]  # no arm runs: no arm was measured
    assert runs[0].data.tags["error"]


def test_tracking_none_writes_results_only(tmp_path):
    proc = run_cli(tmp_path, tmp_path / "cache", "tracking=none", "eval.arms=[closed_book]")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert not (tmp_path / "mlflow.db").exists()
    (path,) = results_files(tmp_path)
    assert list(json.loads(path.read_text())["arms"]) == ["closed_book"]


def test_report_reads_runs_back_and_attaches_tables_and_plots(smoke_runs, tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    from evaluate.report import main as report_main

    cwd, *_ = smoke_runs
    monkeypatch.chdir(cwd)  # artifact locations are relative to the store's folder
    uri = f"sqlite:///{cwd / 'mlflow.db'}"
    out = tmp_path / "report"
    assert report_main(["--experiment", "smoke", "--tracking-uri", uri, "--out", str(out)]) == 0
    markdown = (out / "report.md").read_text()
    client = MlflowClient(tracking_uri=uri)
    runs = client.search_runs(
        [client.get_experiment_by_name("smoke").experiment_id],
        filter_string="tags.kind = 'job'",
        order_by=["attributes.start_time DESC"],
    )
    latest = runs[0]
    for arm in ARMS:
        (arm_run,) = client.search_runs(
            [latest.info.experiment_id],
            filter_string=f"tags.arm = '{arm}' and tags.mlflow.parentRunId = "
            f"'{latest.info.run_id}'",
        )
        value = arm_run.data.metrics["accuracy/contains"]
        assert f"| {arm} | {value:.3f}" in markdown  # the table shows the logged number
    assert "## Bottom line" in markdown and "Most accurate" in markdown
    page = (out / "report.html").read_text()
    assert "<table>" in page and 'src="data:image/png;base64,' in page
    for name in ("pareto_usd.png", "pareto_co2.png", "latency_breakdown.png", "break_even.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    attached = {a.path for a in client.list_artifacts(latest.info.run_id, "report")}
    assert "report/report.html" in attached and "report/pareto_usd.png" in attached


def test_report_on_unknown_experiment_is_a_clear_error(smoke_runs, capsys):
    from evaluate.report import main as report_main

    cwd, *_ = smoke_runs
    code = report_main(
        ["--experiment", "nope", "--tracking-uri", f"sqlite:///{cwd / 'mlflow.db'}", "--no-log"]
    )
    assert code == 2
    assert "no experiment 'nope'" in capsys.readouterr().err


def test_a_sweep_is_one_parent_run_with_a_child_per_job(tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    from evaluate.report import main as report_main

    proc = ragtune(
        tmp_path,
        "--multirun",
        "experiment=smoke",
        "eval.arms=[closed_book]",
        "eval.throughput_batch_size=0",
        "qa.max_eval_questions=2",
        "generator.max_new_tokens=3,5",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    runs = client.search_runs([client.get_experiment_by_name("smoke").experiment_id])
    parents = [r for r in runs if r.data.tags.get("kind") == "sweep"]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    parent_id = parents[0].info.run_id
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent_id]
    assert sorted(r.data.params["generator.max_new_tokens"] for r in children) == ["3", "5"]
    assert all(r.info.status == "FINISHED" for r in children)
    # sweep -> jobs -> arms
    for job in children:
        (arm,) = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == job.info.run_id]
        assert arm.data.tags["arm"] == "closed_book" and "accuracy/contains" in arm.data.metrics
    out = tmp_path / "report"
    monkeypatch.chdir(tmp_path)  # artifact locations are relative to the store's folder
    assert report_main(["--parent", parent_id, "--tracking-uri", uri, "--out", str(out)]) == 0
    assert (out / "sweep_generator_max_new_tokens.png").is_file()
    attached = {a.path for a in client.list_artifacts(parent_id, "report")}
    assert "report/report.md" in attached


def test_unreachable_tracking_server_still_writes_results(tmp_path):
    proc = run_cli(
        tmp_path,
        tmp_path / "cache",
        "tracking.uri=http://127.0.0.1:9",
        "eval.arms=[closed_book]",
        "hydra.run.dir=outputs/smoke/offline",
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 2
    assert "tracking.uri=http://127.0.0.1:9 is unreachable" in output
    assert "Traceback" not in output
    results = json.loads((tmp_path / "outputs/smoke/offline/results.json").read_text())
    assert list(results["arms"]) == ["closed_book"] and "mlflow_run_id" not in results


def test_accuracy_from_batches_latency_from_a_batch1_sample(tmp_path):
    """eval.latency_questions=2 of 6: two timed batch-1 requests, four batched answers that
    carry no timings, latency statistics over the two, per-query cost over all six; with
    eval.compare_batched the two timed questions are compared with their batched answers."""
    proc = ragtune(
        tmp_path,
        "experiment=smoke",
        "tracking=none",
        "eval.arms=[closed_book,rag]",
        "eval.latency_questions=2",
        "eval.answer_batch_size=4",
        "eval.compare_batched=true",
        "hydra.run.dir=outputs/smoke/sampled",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((tmp_path / "outputs/smoke/sampled/results.json").read_text())
    for arm in ("closed_book", "rag"):
        preds = [p for p in results["predictions"] if p["arm"] == arm]
        timed = [p for p in preds if p["latency_measured"]]
        assert len(preds) == 6 and [p["qa_id"] for p in timed] == [p["qa_id"] for p in preds[:2]]
        assert all(p["ttft_s"] == 0 and p["batched_answer_matches"] is None for p in preds[2:])
        figures = results["arms"][arm]
        assert figures["latency_questions"] == 2
        assert figures["batched_vs_batch1"]["compared"] == 2
        mean_ttft = sum(p["ttft_s"] for p in timed) / 2
        assert figures["latency"]["ttft_mean_s"] == pytest.approx(mean_ttft)
        assert figures["accuracy"]["questions"] == 6
        assert figures["cost"]["per_query"]["total"]["usd"] > 0
