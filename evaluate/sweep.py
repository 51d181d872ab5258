"""A Hydra callback that groups a multirun sweep under one MLflow parent run.

Configured in conf/config.yaml (hydra.callbacks). The parent run is created when the sweep
starts; its id travels to every job through the environment (``RAGTUNE_PARENT_RUN_ID``), so
jobs in other processes (joblib, submitit) attach to it too. The parent is closed when the
sweep ends: FINISHED when every job returned, FAILED otherwise.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from evaluate.tracking import PARENT_RUN_ENV, finish_parent_run, start_parent_run

logger = logging.getLogger(__name__)


class MlflowSweepCallback(Callback):
    def __init__(self) -> None:
        self.run_id: str | None = None
        self.uri = ""
        self.failed = False

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        tracking = config.get("tracking")
        if tracking is None or tracking.backend == "none":
            return
        self.uri = str(tracking.uri)
        sweep_dir = str(config.hydra.sweep.dir)
        self.run_id = start_parent_run(
            self.uri,
            str(tracking.experiment_name),
            str(tracking.artifact_dir),
            name=f"sweep-{os.path.basename(sweep_dir)}",
            tags={"sweep_dir": sweep_dir, "kind": "sweep"},
        )
        os.environ[PARENT_RUN_ENV] = self.run_id
        logger.info("sweep parent run %s", self.run_id)

    def on_job_end(self, config: DictConfig, job_return: Any, **kwargs: Any) -> None:
        status = getattr(job_return, "status", None)
        if status is not None and getattr(status, "name", "") == "FAILED":
            self.failed = True

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if self.run_id is None:
            return
        finish_parent_run(self.uri, self.run_id, ok=not self.failed)
        os.environ.pop(PARENT_RUN_ENV, None)
