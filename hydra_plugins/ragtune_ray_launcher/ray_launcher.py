"""hydra-ray-launcher, made to run ragtune's jobs on a Ray cluster started with ``ray start``.

``hydra/launcher=ray`` (conf/hydra/launcher/ray.yaml) points here. The plugin's own launcher
runs each job as a Ray task, but on a cluster that was started separately (``ray start --head``)
a task runs in the worker's folder with the worker's environment, not the submitting shell's:
relative paths (``multirun/``, ``sqlite:///mlflow.db``) land in the worker's folder, and the
sweep's parent run id, ``RAGTUNE_CACHE_DIR`` and the offline switches never arrive. This
launcher passes them on, as ``sbatch`` does by default (``--export=ALL``, same folder):

- the sweep folder is made absolute (an override of every job), and each job runs in the
  submitting folder;
- variables that configure ragtune and its libraries (``FORWARDED_PREFIXES``) travel in the
  job's Ray ``runtime_env``;
- ``object_store_memory`` is dropped when joining a running cluster (hydra-ray-launcher 1.2
  sets it, and Ray refuses it unless it starts the cluster itself).

Only hydra imports at module level: Hydra imports every plugin module on start-up, with or
without Ray installed.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf, open_dict

logger = logging.getLogger(__name__)

# Environment variables a job inherits from the submitting shell.
FORWARDED_PREFIXES = ("RAGTUNE_", "HF_", "TRANSFORMERS_", "MLFLOW_", "TOKENIZERS_", "OMP_")
FORWARDED_NAMES = ("DO_NOT_TRACK",)
REMOTE_JOB_ENV = "RAGTUNE_REMOTE_JOB"  # set inside a job that runs away from the sweep process
RAY_TASK_ENV = "RAGTUNE_RAY_TASK_ID"

INSTALL_HINT = (
    "hydra/launcher=ray needs Ray and the Hydra plugin: pip install 'ray[default]' and "
    "pip install --no-deps 'hydra-ray-launcher==1.2.*' (README: Running on a Ray cluster)"
)


def forwarded_environment(environ: dict[str, str] | os._Environ) -> dict[str, str]:
    return {
        name: value
        for name, value in environ.items()
        if name.startswith(FORWARDED_PREFIXES) or name in FORWARDED_NAMES
    }


def run_in_folder(folder: str, task_function: TaskFunction, config: DictConfig) -> Any:
    """The job, inside the Ray worker: in the submitting folder, named by its Ray task."""
    import ray

    os.chdir(folder)
    os.environ[REMOTE_JOB_ENV] = "ray"
    os.environ[RAY_TASK_ENV] = ray.get_runtime_context().get_task_id() or ""
    return task_function(config)


class RagtuneRayLauncher(Launcher):
    def __init__(self, ray: DictConfig) -> None:
        self.ray_cfg = ray
        self.inner: Any = None
        self.sweep_dir = ""

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        try:
            from hydra_plugins.hydra_ray_launcher.ray_launcher import RayLauncher
        except ImportError as err:
            raise ImportError(f"{INSTALL_HINT} ({err})") from None
        # Every job's config is composed again from its overrides, so the sweep folder is
        # fixed through an override (the job's output folder is made before the job starts).
        self.sweep_dir = str(Path(str(config.hydra.sweep.dir)).resolve())
        with open_dict(config):
            config.hydra.sweep.dir = self.sweep_dir
        self.inner = RayLauncher(ray=self.ray_cfg)
        self.inner.setup(
            hydra_context=hydra_context,
            task_function=functools.partial(run_in_folder, os.getcwd(), task_function),
            config=config,
        )

    def launch(
        self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int
    ) -> Sequence[JobReturn]:
        init = self.inner.ray_cfg.init
        with open_dict(init):
            given = init.get("runtime_env")
            runtime_env = {} if given is None else OmegaConf.to_container(given, resolve=True)
            # Read now, not at setup: the sweep's parent run id is set between the two.
            env_vars = {**forwarded_environment(os.environ), **runtime_env.get("env_vars", {})}
            init.runtime_env = {**runtime_env, "env_vars": env_vars}
            if init.get("address") and "object_store_memory" not in init:
                init.object_store_memory = None
        logger.info("Ray jobs get %d variables of this environment", len(env_vars))
        pin = f"hydra.sweep.dir='{self.sweep_dir}'"
        pinned = [[*overrides, pin] for overrides in job_overrides]
        return self.inner.launch(pinned, initial_job_idx)
