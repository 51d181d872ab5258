"""Mirror a run to MLflow. The only module that imports mlflow.

results.json in the run folder is the source of truth; this copies it into MLflow so runs can be
compared in the UI. A run that raises is marked FAILED (never left RUNNING).
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from evaluate.records.redact import redact_text, redact_value
from rag.core.errors import UserError

logger = logging.getLogger(__name__)

MAX_PARAM_CHARS = 500  # longer values live in the resolved-config artifact instead
PARENT_RUN_ENV = "RAGTUNE_PARENT_RUN_ID"  # set by the sweep callback for every job
# sqlite allows one writer at a time; MLflow waits 20 s for the lock (PRAGMA busy_timeout = 20000
# in mlflow/store/db/utils.py), then raises "database is locked". Retrying with doubling waits
# (0.5 s .. 8 s, about 23 s more) rides out bursts of parallel jobs writing together.
LOCKED_ATTEMPTS = 6
LOCKED_FIRST_WAIT_S = 0.5
LOCKED_MAX_WAIT_S = 8.0
# Creating a new sqlite store runs MLflow's schema migrations, which fail when two processes run
# them at once ("table experiments already exists"); they are serialised by a lock file.
STORE_INIT_LOCK_TIMEOUT_S = 600.0


def is_locked_error(err: BaseException) -> bool:
    return "database is locked" in str(err).lower()


def retry_when_locked(call, *args, **kwargs):
    """``call(*args, **kwargs)``, retried with backoff while sqlite says the database is locked."""
    import time

    wait_s = LOCKED_FIRST_WAIT_S
    for attempt in range(1, LOCKED_ATTEMPTS + 1):
        try:
            return call(*args, **kwargs)
        except Exception as err:
            if attempt == LOCKED_ATTEMPTS or not is_locked_error(err):
                raise
            logger.warning(
                "tracking store locked (attempt %d/%d); retrying in %.1f s",
                attempt,
                LOCKED_ATTEMPTS,
                wait_s,
            )
            time.sleep(wait_s)
            wait_s = min(wait_s * 2, LOCKED_MAX_WAIT_S)


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{'a': {'b': 1}} -> {'a.b': 1}; lists are kept as values."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


class Tracker(Protocol):
    run_id: str | None

    def start(self, run_name: str, tags: dict[str, str]) -> None: ...
    def log_params(self, params: dict[str, Any]) -> None: ...
    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None: ...
    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None: ...
    def log_table(self, rows: list[dict[str, Any]], artifact_file: str) -> None: ...
    def set_tags(self, tags: dict[str, str]) -> None: ...
    def finish(self, ok: bool, error: str | None = None) -> None: ...


class TrackingUnavailable(UserError, RuntimeError):
    """The tracking server cannot be reached; the run's local results are still written."""


def check_reachable(uri: str, timeout_s: float = 5.0) -> None:
    """Fail fast (not after the client's long retries) when an HTTP tracking server is down."""
    if not uri.startswith(("http://", "https://")):
        return
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=timeout_s):
            pass
    except (urllib.error.URLError, OSError) as err:
        raise TrackingUnavailable(
            f"tracking.uri={uri} is unreachable ({err}); start the server "
            "(mlflow server --host 127.0.0.1 ...), fix tracking.uri, or use tracking=none"
        ) from err


def open_client(uri: str):
    """An MlflowClient; a sqlite store is opened (and on first use migrated) under a lock file
    beside it, one process at a time."""
    from mlflow.tracking import MlflowClient

    if not uri.startswith("sqlite:///"):
        return MlflowClient(tracking_uri=uri)
    from rag.core.lock import file_lock

    db = Path(uri.removeprefix("sqlite:///")).expanduser()
    with file_lock(db.with_name(f"{db.name}.init.lock"), STORE_INIT_LOCK_TIMEOUT_S, "store"):
        return retry_when_locked(MlflowClient, tracking_uri=uri)


class NullTracker:
    """tracking.backend=none: results.json only."""

    run_id: str | None = None

    def start(self, run_name: str, tags: dict[str, str]) -> None:
        pass

    def log_params(self, params: dict[str, Any]) -> None:
        pass

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        pass

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        pass

    def log_table(self, rows: list[dict[str, Any]], artifact_file: str) -> None:
        pass

    def set_tags(self, tags: dict[str, str]) -> None:
        pass

    def finish(self, ok: bool, error: str | None = None) -> None:
        pass


class MlflowTracker:
    """One MLflow run in the experiment ``experiment_name`` of the store at ``uri``."""

    def __init__(self, uri: str, experiment_name: str, artifact_dir: str = "mlartifacts"):
        self.client = open_client(uri)
        self.uri = uri
        self.experiment_name = experiment_name
        self.artifact_dir = Path(artifact_dir).expanduser().resolve()
        self.run_id: str | None = None

    def _experiment_id(self) -> str:
        from mlflow.exceptions import MlflowException

        experiment = retry_when_locked(self.client.get_experiment_by_name, self.experiment_name)
        if experiment is not None:
            return experiment.experiment_id
        # A tracking server chooses the artifact location itself (its --artifacts-destination
        # or --default-artifact-root); a local file path would bypass the server's store.
        remote = self.uri.startswith(("http://", "https://", "databricks"))
        location = None if remote else (self.artifact_dir / self.experiment_name).as_uri()
        try:
            return retry_when_locked(
                self.client.create_experiment, self.experiment_name, artifact_location=location
            )
        except MlflowException:  # a parallel job created it first
            experiment = self.client.get_experiment_by_name(self.experiment_name)
            if experiment is None:
                raise
            return experiment.experiment_id

    def start(self, run_name: str, tags: dict[str, str]) -> None:
        check_reachable(self.uri)
        parent = os.environ.get(PARENT_RUN_ENV)
        if parent:  # a job of a sweep: a child of the sweep's parent run
            tags = {**tags, "mlflow.parentRunId": parent}
        tags = {k: str(redact_value(k, v)) for k, v in tags.items()}
        run = retry_when_locked(
            self.client.create_run, self._experiment_id(), run_name=run_name, tags=tags
        )
        self.run_id = run.info.run_id
        logger.info(
            "MLflow run %s in experiment '%s' (%s)", self.run_id, self.experiment_name, self.uri
        )

    def log_params(self, params: dict[str, Any]) -> None:
        from mlflow.entities import Param

        params = {k: redact_value(k, v) for k, v in params.items()}
        items = [Param(k, str(v)) for k, v in params.items() if len(str(v)) <= MAX_PARAM_CHARS]
        for start in range(0, len(items), 100):  # MLflow accepts at most 100 params per batch
            retry_when_locked(self.client.log_batch, self.run_id, params=items[start : start + 100])

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        import time

        from mlflow.entities import Metric

        now_ms = int(time.time() * 1000)
        items = [
            Metric(k, float(v), now_ms, step or 0)
            for k, v in metrics.items()
            if isinstance(v, int | float) and math.isfinite(v)
        ]
        for start in range(0, len(items), 1000):
            retry_when_locked(
                self.client.log_batch, self.run_id, metrics=items[start : start + 1000]
            )

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        if path.is_dir():
            self.client.log_artifacts(self.run_id, str(path), artifact_path)
        else:
            self.client.log_artifact(self.run_id, str(path), artifact_path)

    def log_table(self, rows: list[dict[str, Any]], artifact_file: str) -> None:
        import pandas as pd

        self.client.log_table(self.run_id, data=pd.DataFrame(rows), artifact_file=artifact_file)

    def set_tags(self, tags: dict[str, str]) -> None:
        from mlflow.entities import RunTag

        items = [RunTag(k, str(redact_value(k, v))[:5000]) for k, v in tags.items()]
        for start in range(0, len(items), 100):
            retry_when_locked(self.client.log_batch, self.run_id, tags=items[start : start + 100])

    def finish(self, ok: bool, error: str | None = None) -> None:
        if self.run_id is None:
            return
        if error:
            retry_when_locked(self.client.set_tag, self.run_id, "error", redact_text(error)[:5000])
        status = "FINISHED" if ok else "FAILED"
        retry_when_locked(self.client.set_terminated, self.run_id, status=status)


def start_parent_run(
    uri: str, experiment_name: str, artifact_dir: str, name: str, tags: dict[str, str]
) -> str:
    """Create the parent run of a sweep and return its id."""
    tracker = MlflowTracker(uri, experiment_name, artifact_dir)
    tracker.start(run_name=name, tags=tags)
    return tracker.run_id


def finish_parent_run(uri: str, run_id: str, ok: bool) -> None:
    """Close a sweep's parent run: FAILED if the sweep failed or any child run did (jobs in
    worker processes report their failure only through their own run)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    parent = client.get_run(run_id)
    children = client.search_runs(
        [parent.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{run_id}'"
    )
    failed = [child for child in children if child.info.status == "FAILED"]
    if failed:  # say which jobs failed, and why, where the sweep is looked at: its parent
        from evaluate.records.launcher_env import describe_job

        lines = [
            f"{describe_job(c.data.tags)}: {c.data.tags.get('error', 'FAILED')}" for c in failed
        ]
        summary = redact_text(" | ".join(lines))[:5000]
        retry_when_locked(client.set_tag, run_id, "failed_jobs", summary)
        logger.error("sweep %s: %d job(s) failed: %s", run_id, len(failed), summary)
    ok = ok and not failed
    retry_when_locked(client.set_terminated, run_id, status="FINISHED" if ok else "FAILED")


def make_tracker(backend: str, uri: str, experiment_name: str, artifact_dir: str) -> Tracker:
    if backend == "none":
        return NullTracker()
    return MlflowTracker(uri, experiment_name, artifact_dir)


class TrackingReadError(UserError, ValueError):
    """Runs cannot be read back (unknown experiment or run id, unreachable store)."""


@dataclass
class RunRecord:
    run_id: str
    run_name: str
    status: str
    start_time_ms: int
    params: dict[str, str]
    metrics: dict[str, float]
    tags: dict[str, str]


def fetch_runs(
    uri: str,
    experiment: str | None = None,
    run_ids: list[str] | None = None,
    parent: str | None = None,
) -> list[RunRecord]:
    """Runs of an experiment, listed runs, or the children of a parent run, oldest first."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    try:
        if run_ids:
            runs = []
            for run_id in run_ids:
                try:
                    runs.append(client.get_run(run_id))
                except MlflowException as err:
                    raise TrackingReadError(f"no run {run_id!r} in {uri}") from err
        else:
            if parent:
                parent_run = client.get_run(parent)
                ids = [parent_run.info.experiment_id]
                query = f"tags.mlflow.parentRunId = '{parent}'"
            else:
                found = client.get_experiment_by_name(experiment or "")
                if found is None:
                    names = [e.name for e in client.search_experiments()]
                    raise TrackingReadError(
                        f"no experiment {experiment!r} in {uri}; experiments: {names}"
                    )
                ids, query = [found.experiment_id], ""
            runs = client.search_runs(ids, filter_string=query, max_results=5000)
    except MlflowException as err:
        raise TrackingReadError(f"cannot read runs from {uri}: {err}") from err
    records = [
        RunRecord(
            r.info.run_id,
            r.info.run_name or r.info.run_id,
            r.info.status,
            int(r.info.start_time or 0),
            dict(r.data.params),
            dict(r.data.metrics),
            dict(r.data.tags),
        )
        for r in runs
    ]
    return sorted(records, key=lambda r: r.start_time_ms)


def log_folder(uri: str, run_id: str, folder: Path, artifact_path: str) -> None:
    """Attach a folder of files (e.g. a report) to an existing run."""
    from mlflow.tracking import MlflowClient

    MlflowClient(tracking_uri=uri).log_artifacts(run_id, str(folder), artifact_path)
