"""Tracking server mode: a real `mlflow server` on 127.0.0.1, a smoke run logged through it over
HTTP, its run, metrics and artifacts read back over HTTP."""

from __future__ import annotations

import json
import urllib.request

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from evaluate.cli import CONF_DIR, to_config
from tests.integration.services import mlflow_server as start_mlflow_server

pytestmark = pytest.mark.integration

SERVER_START_TIMEOUT_S = 90.0  # about 10 s here (a fresh sqlite store is migrated first)


def http_json(url: str, body: dict | None = None) -> dict:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


@pytest.fixture
def mlflow_server(tmp_path):
    """A server with a sqlite back-end store that proxies artifacts into its own folder."""
    store = tmp_path / "server"
    backend = f"sqlite:///{store / 'mlflow.db'}"
    with start_mlflow_server(
        store, backend, workers=1, start_timeout_s=SERVER_START_TIMEOUT_S
    ) as uri:
        yield uri, store


def test_a_run_logged_through_a_tracking_server_is_readable_over_http(
    mlflow_server, tmp_path, monkeypatch
):
    from evaluate.pipeline.runner import run_experiment
    from evaluate.records.tracking import PARENT_RUN_ENV, fetch_runs

    uri, store = mlflow_server
    monkeypatch.delenv(PARENT_RUN_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    # The experiment does not exist yet: ragtune creates it and the server chooses where its
    # artifacts go (mlflow-artifacts:/ under --artifacts-destination), not a local folder.
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose(
            config_name="config",
            overrides=[
                "experiment=smoke",
                "eval.arms=[closed_book]",
                "eval.throughput_batch_size=0",
                "qa.max_eval_questions=2",
                f"tracking.uri={uri}",
                f"paths.cache_dir={tmp_path / 'cache'}",
            ],
        )
    results = run_experiment(
        to_config(cfg), OmegaConf.to_container(cfg, resolve=True), tmp_path / "run"
    )

    (run,) = fetch_runs(uri, experiment="smoke")  # read back through the REST API
    assert run.run_id == results["mlflow_run_id"] and run.status == "FINISHED"
    contains = results["arms"]["closed_book"]["accuracy"]["contains"]
    assert run.arms["closed_book"].metrics["accuracy/contains"] == pytest.approx(contains)
    assert run.params["tracking.uri"] == uri

    listing = http_json(f"{uri}/api/2.0/mlflow/artifacts/list?run_id={run.run_id}")
    assert "results.json" in {f["path"] for f in listing["files"]}
    exp_id = http_json(f"{uri}/api/2.0/mlflow/experiments/get-by-name?experiment_name=smoke")[
        "experiment"
    ]["experiment_id"]
    url = f"{uri}/api/2.0/mlflow-artifacts/artifacts/{exp_id}/{run.run_id}/artifacts/results.json"
    served = http_json(url)
    assert served["mlflow_run_id"] == run.run_id
    assert served["arms"]["closed_book"]["accuracy"]["contains"] == contains
    stored = list((store / "artifacts").rglob("results.json"))  # uploaded to the server's store
    assert len(stored) == 1 and not (tmp_path / "mlartifacts").exists()
