"""Mirror a run to MLflow. The only module that imports mlflow.

results.json in the run folder is the source of truth; this copies it into MLflow so runs can be
compared in the UI. A run that raises is marked FAILED (never left RUNNING).
"""

from __future__ import annotations

import copy
import logging
import math
import os
from collections.abc import Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
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
    experiment_id: str | None

    def start(self, run_name: str, tags: dict[str, str]) -> None: ...
    def log_params(self, params: dict[str, Any]) -> None: ...
    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None: ...
    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None: ...
    def log_table(self, rows: list[dict[str, Any]], artifact_file: str) -> None: ...
    def set_tags(self, tags: dict[str, str]) -> None: ...
    def set_description(self, markdown: str) -> None: ...
    def start_child(self, run_name: str, tags: dict[str, str]) -> Tracker: ...
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
    experiment_id: str | None = None

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

    def set_description(self, markdown: str) -> None:
        pass

    def start_child(self, run_name: str, tags: dict[str, str]) -> Tracker:
        return self

    def finish(self, ok: bool, error: str | None = None) -> None:
        pass


# Tags ragtune sets on its runs. A run is a sweep (parent of jobs), a job (one `ragtune` run:
# comparisons, summary, artifacts) or an arm (nested in its job; the curated per-arm metrics).
KIND_TAG = "kind"
ARM_TAG = "arm"
JOB_TAG = "job"  # on arm runs: the name of their job run (the runs table groups by it)
REUSED_TAG = "reused_answers"  # all | some | none
HOST_TAG, PID_TAG, PID_STARTED_TAG = "host", "pid", "pid_started"
KILLED_TAG = "killed"
NOTE_TAG = "mlflow.note.content"  # the run's description in the MLflow UI
MAX_TAG_CHARS = 5000
# The runs table MLflow opens with: a view stored as an experiment tag
# (``mlflow.sharedViewState.<key>``, read by MLflow's UI from ``?viewStateShareKey=<key>``),
# showing the arm runs with the key metric columns, grouped by job run. MLflow 3.17 restores a
# shared view's columns, grouping and chart settings but never which nested runs are expanded
# (``runsExpanded`` is dropped from shared views), so nested arm runs would sit folded under their
# job run; a group by the arm runs' ``job`` tag shows them, since groups open expanded. Charts
# draw each arm run (``useGroupedValuesInCharts: false``), not a job's average.
VIEW_KEY = "ragtune"
VIEW_TAG = f"mlflow.sharedViewState.{VIEW_KEY}"
VIEW_COLUMNS = (
    "accuracy/contains",
    "accuracy/exact_match",
    "latency/ttft_p50_s",
    "latency/tpot_p50_s",
    "latency/request_p50_s",
    "cost/usd_per_1k_queries",
    "co2/operational_kg_per_1k_queries",
    "cost/one_time_usd",
    "qoe/score",
)


def ui_path(experiment_id: str) -> str:
    """The MLflow UI route of an experiment's runs table with ragtune's view. MLflow 3.17 chooses
    the experiment page (GenAI overview or runs table) from the ``workflowType`` URL parameter,
    else from the browser's last choice (default GenAI), not from the experiment's tags."""
    return (
        f"#/experiments/{experiment_id}/runs?workflowType=machine_learning"
        f"&viewStateShareKey={VIEW_KEY}"
    )


def view_state() -> str:
    import json

    return json.dumps(
        {
            "searchFilter": f"tags.`{KIND_TAG}` = 'arm'",
            "orderByKey": "attributes.start_time",
            "orderByAsc": False,
            "selectedColumns": [f"metrics.`{name}`" for name in VIEW_COLUMNS],
            "groupBy": {
                "aggregateFunction": "average",
                "groupByKeys": [{"mode": "tag", "groupByData": JOB_TAG}],
            },
            "useGroupedValuesInCharts": False,
        }
    )


def process_started(pid: int) -> str | None:
    """When process ``pid`` started (Linux: clock ticks after boot, from /proc), "unknown" where
    that cannot be read, None when there is no such process."""
    proc = Path("/proc")
    if (proc / "self" / "stat").exists():
        try:
            stat = (proc / str(pid) / "stat").read_text()
        except OSError:
            return None
        return stat.rsplit(")", 1)[1].split()[19]  # field 22, starttime (proc(5))
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    return "unknown"


def process_tags() -> dict[str, str]:
    """Which process owns a run, so a later run can tell an orphan (killed) from a live one."""
    import socket

    pid = os.getpid()
    started = str(process_started(pid))
    return {HOST_TAG: socket.gethostname(), PID_TAG: str(pid), PID_STARTED_TAG: started}


def is_orphan(tags: Mapping[str, str], host: str) -> bool:
    """A RUNNING run whose process on this host has ended (or is another process by now)."""
    if tags.get(HOST_TAG) != host or not str(tags.get(PID_TAG, "")).isdigit():
        return False
    started = process_started(int(tags[PID_TAG]))
    recorded = tags.get(PID_STARTED_TAG, "unknown")
    return started is None or ("unknown" not in (started, recorded) and started != recorded)


def store_folder(uri: str) -> Path | None:
    """The folder of a local sqlite store (``sqlite:///mlflow.db`` -> the current folder)."""
    if not uri.startswith("sqlite:///"):
        return None
    return Path(uri.removeprefix("sqlite:///")).expanduser().resolve().parent


@contextmanager
def in_store_folder(uri: str):
    """Run with the store's folder as the working folder: experiments this creates keep their
    artifact location relative to it (``mlartifacts/<name>``), so a copied or moved folder
    (mlflow.db + mlartifacts/) still finds its artifacts. Paths passed in must be absolute."""
    folder = store_folder(uri)
    previous = Path.cwd()
    if folder is None or folder == previous:
        yield
        return
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(previous)


class MlflowTracker:
    """One MLflow run in the experiment ``experiment_name`` of the store at ``uri``."""

    def __init__(self, uri: str, experiment_name: str, artifact_dir: str = "mlartifacts"):
        self.client = open_client(uri)
        self.uri = uri
        self.experiment_name = experiment_name
        self.artifact_dir = Path(artifact_dir).expanduser().resolve()
        self.run_id: str | None = None
        self.run_name = ""
        self.experiment_id: str | None = None

    def _experiment_id(self) -> str:
        from mlflow.exceptions import MlflowException

        experiment = retry_when_locked(self.client.get_experiment_by_name, self.experiment_name)
        if experiment is not None:
            if experiment.tags.get(VIEW_TAG) != view_state():
                retry_when_locked(
                    self.client.set_experiment_tag, experiment.experiment_id, VIEW_TAG, view_state()
                )
            return experiment.experiment_id
        # A tracking server chooses the artifact location itself (its --artifacts-destination
        # or --default-artifact-root); a local file path would bypass the server's store.
        remote = self.uri.startswith(("http://", "https://", "databricks"))
        location = None if remote else (self.artifact_dir / self.experiment_name).as_uri()
        try:
            experiment_id = retry_when_locked(
                self.client.create_experiment, self.experiment_name, artifact_location=location
            )
        except MlflowException:  # a parallel job created it first
            experiment = self.client.get_experiment_by_name(self.experiment_name)
            if experiment is None:
                raise
            return experiment.experiment_id
        self._relative_location(experiment_id)
        retry_when_locked(self.client.set_experiment_tag, experiment_id, VIEW_TAG, view_state())
        return experiment_id

    def _relative_location(self, experiment_id: str) -> None:
        """MLflow stores an absolute artifact location; inside the store's folder it is made
        relative to that folder (MLflow resolves a relative location against the working folder,
        which in_store_folder sets when logging, and which `mlflow ui` started there has)."""
        import sqlite3

        folder = store_folder(self.uri)
        target = self.artifact_dir / self.experiment_name
        if folder is None or not target.is_relative_to(folder):
            return
        db = Path(self.uri.removeprefix("sqlite:///")).expanduser()
        with sqlite3.connect(db, timeout=60) as connection:
            connection.execute(
                "UPDATE experiments SET artifact_location = ? WHERE experiment_id = ?",
                (target.relative_to(folder).as_posix(), int(experiment_id)),
            )

    def _close_orphans(self, experiment_id: str) -> None:
        """Runs left RUNNING by a process on this host that has ended (a killed run) are closed
        as FAILED with a ``ragtune.killed`` tag saying which run found them."""
        import socket

        host = socket.gethostname()
        found = retry_when_locked(
            self.client.search_runs,
            [experiment_id],
            filter_string=f"attributes.status = 'RUNNING' and tags.`{HOST_TAG}` = '{host}'",
            max_results=1000,
        )
        orphans = [run for run in found if is_orphan(run.data.tags, host)]
        for run in orphans:
            note = (
                f"process {run.data.tags[PID_TAG]} on {host} ended without closing this run "
                "(killed or crashed); closed by a later ragtune run"
            )
            retry_when_locked(self.client.set_tag, run.info.run_id, KILLED_TAG, note)
            retry_when_locked(self.client.set_terminated, run.info.run_id, status="FAILED")
        if orphans:
            logger.warning(
                "closed %d MLflow run(s) left RUNNING by killed processes as FAILED: %s",
                len(orphans),
                ", ".join(run.info.run_name or run.info.run_id for run in orphans),
            )

    def start(self, run_name: str, tags: dict[str, str]) -> None:
        check_reachable(self.uri)
        parent = os.environ.get(PARENT_RUN_ENV)
        if parent:  # a job of a sweep: a child of the sweep's parent run
            tags = {**tags, "mlflow.parentRunId": parent}
        self.experiment_id = self._experiment_id()
        self._close_orphans(self.experiment_id)
        self._create_run(run_name, {KIND_TAG: "job", **tags})
        logger.info(
            "MLflow run %s in experiment '%s' (%s)", self.run_id, self.experiment_name, self.uri
        )

    def _create_run(self, run_name: str, tags: dict[str, str]) -> None:
        tags = {k: str(redact_value(k, v)) for k, v in {**tags, **process_tags()}.items()}
        run = retry_when_locked(
            self.client.create_run, self.experiment_id, run_name=run_name, tags=tags
        )
        self.run_id, self.run_name = run.info.run_id, run_name

    def start_child(self, run_name: str, tags: dict[str, str]) -> MlflowTracker:
        """A run nested in this one (an arm of a job), in the same experiment."""
        child = copy.copy(self)
        child._create_run(
            f"{run_name} | {self.run_name}",
            {
                KIND_TAG: "arm",
                **tags,
                JOB_TAG: str(self.run_name),
                "mlflow.parentRunId": str(self.run_id),
            },
        )
        return child

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
        path = Path(path).resolve()
        with in_store_folder(self.uri):
            if path.is_dir():
                self.client.log_artifacts(self.run_id, str(path), artifact_path)
            else:
                self.client.log_artifact(self.run_id, str(path), artifact_path)

    def log_table(self, rows: list[dict[str, Any]], artifact_file: str) -> None:
        import pandas as pd

        with in_store_folder(self.uri):
            self.client.log_table(self.run_id, data=pd.DataFrame(rows), artifact_file=artifact_file)

    def set_tags(self, tags: dict[str, str]) -> None:
        from mlflow.entities import RunTag

        items = [RunTag(k, str(redact_value(k, v))[:MAX_TAG_CHARS]) for k, v in tags.items()]
        for start in range(0, len(items), 100):
            retry_when_locked(self.client.log_batch, self.run_id, tags=items[start : start + 100])

    def set_description(self, markdown: str) -> None:
        retry_when_locked(
            self.client.set_tag, self.run_id, NOTE_TAG, redact_text(markdown)[:MAX_TAG_CHARS]
        )

    def finish(self, ok: bool, error: str | None = None) -> None:
        if self.run_id is None:
            return
        if error:
            retry_when_locked(
                self.client.set_tag, self.run_id, "error", redact_text(error)[:MAX_TAG_CHARS]
            )
        status = "FINISHED" if ok else "FAILED"
        retry_when_locked(self.client.set_terminated, self.run_id, status=status)


def start_parent_run(
    uri: str, experiment_name: str, artifact_dir: str, name: str, tags: dict[str, str]
) -> str:
    """Create the parent run of a sweep and return its id."""
    tracker = MlflowTracker(uri, experiment_name, artifact_dir)
    tracker.start(run_name=name, tags={**tags, KIND_TAG: "sweep"})
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
    arms: dict[str, RunRecord] = field(default_factory=dict)  # a job's arm runs, by arm name

    @property
    def kind(self) -> str:
        return self.tags.get(KIND_TAG, "job")


def _record(run) -> RunRecord:
    return RunRecord(
        run.info.run_id,
        run.info.run_name or run.info.run_id,
        run.info.status,
        int(run.info.start_time or 0),
        dict(run.data.params),
        dict(run.data.metrics),
        dict(run.data.tags),
    )


def fetch_runs(
    uri: str,
    experiment: str | None = None,
    run_ids: list[str] | None = None,
    parent: str | None = None,
) -> list[RunRecord]:
    """Job runs, oldest first, each with its arm runs: an experiment's, the listed ones, or a
    sweep's (``parent``)."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    try:
        if run_ids or parent:
            chosen = []
            for run_id in run_ids or [parent]:
                try:
                    chosen.append(client.get_run(run_id))
                except MlflowException as err:
                    raise TrackingReadError(f"no run {run_id!r} in {uri}") from err
            ids = sorted({run.info.experiment_id for run in chosen})
        else:
            found = client.get_experiment_by_name(experiment or "")
            if found is None:
                names = [e.name for e in client.search_experiments()]
                raise TrackingReadError(
                    f"no experiment {experiment!r} in {uri}; experiments: {names}"
                )
            ids = [found.experiment_id]
        runs = [_record(r) for r in client.search_runs(ids, max_results=5000)]
    except MlflowException as err:
        raise TrackingReadError(f"cannot read runs from {uri}: {err}") from err
    for run in runs:
        parent_id = run.tags.get("mlflow.parentRunId")
        if run.kind == "arm" and parent_id:
            for job in runs:
                if job.run_id == parent_id:
                    job.arms[run.tags.get(ARM_TAG, run.run_name)] = run
    if run_ids:
        jobs = [r for r in runs if r.run_id in run_ids]
    elif parent:
        jobs = [r for r in runs if r.tags.get("mlflow.parentRunId") == parent and r.kind == "job"]
    else:
        jobs = [r for r in runs if r.kind == "job"]
    return sorted(jobs, key=lambda r: r.start_time_ms)


def log_folder(uri: str, run_id: str, folder: Path, artifact_path: str) -> None:
    """Attach a folder of files (e.g. a report) to an existing run."""
    from mlflow.tracking import MlflowClient

    folder = Path(folder).resolve()
    with in_store_folder(uri):
        MlflowClient(tracking_uri=uri).log_artifacts(run_id, str(folder), artifact_path)
