"""Hydra callback of a multirun sweep: the budget guard, then one MLflow parent run.

Configured in conf/config.yaml (hydra.callbacks). When the sweep starts, every job is expanded
from the sweep's overrides the way Hydra's sweepers do it, composed, and costed
(evaluate/pipeline/budget.py): the table is printed, and a budget that would be exceeded (or
``budget.dry_run=true``) stops the sweep before any job is launched. Then the parent run is
created; its id travels to every job through the environment (``RAGTUNE_PARENT_RUN_ID``), so
jobs in other processes (joblib, submitit) attach to it too. The parent is closed when the sweep
ends: FINISHED when every job returned, FAILED otherwise.
"""

from __future__ import annotations

import itertools
import logging
import os
import sys
from pathlib import Path
from typing import Any

from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf, open_dict

from evaluate.config.checks import validate
from evaluate.config.schema import Config, ConfigError
from evaluate.pipeline.budget import BudgetError, JobEstimate, estimate_job, guard
from evaluate.records.redact import redact_multirun_file, redact_override
from evaluate.records.tracking import PARENT_RUN_ENV, finish_parent_run, start_parent_run

logger = logging.getLogger(__name__)

# A search sweeper (Optuna) picks its trials as it goes: the guard costs each combination of the
# candidate values (choices, ranges, interval ends) and charges every trial the dearest one.
# Beyond this many combinations only the first ones are costed (said in a warning).
MAX_CANDIDATES = 256


def expand_sweep(config: DictConfig) -> tuple[list[list[str]], bool]:
    """Override lists of the sweep's jobs (BasicSweeper) or candidates (other sweepers), and
    whether they are the exact jobs. Uses Hydra's own override parser, as the sweepers do."""
    sweeper = config.hydra.sweeper
    params = sweeper.get("params") or {}
    arguments = [f"{k}={v}" for k, v in params.items()]
    arguments += list(config.hydra.overrides.task)
    loader = GlobalHydra.instance().config_loader()
    parsed = OverridesParser.create(config_loader=loader).parse_overrides(arguments)
    exact = str(sweeper.get("_target_", "")).endswith("BasicSweeper")
    axes: dict[str, list[str]] = {}
    for override in parsed:
        key = override.get_key_element()
        if not override.is_sweep_override():  # as typed (keeps +key=, ~key forms)
            axes[key] = [override.input_line or f"{key}={override.get_value_element_as_str()}"]
            continue
        if override.is_discrete_sweep():
            values = list(override.sweep_string_iterator())
            if not exact and override.is_range_sweep():  # Optuna's int ranges include the stop
                values.append(str(override.value().stop))
        else:  # interval(a, b): its two ends
            interval = override.value()
            values = [str(interval.start), str(interval.end)]
        axes[key] = [f"{key}={value}" for value in values]
    jobs = [list(combo) for combo in itertools.product(*axes.values())]
    if not exact and len(jobs) > MAX_CANDIDATES:
        logger.warning(
            "%d candidate combinations: the budget guard costs the first %d",
            len(jobs),
            MAX_CANDIDATES,
        )
        jobs = jobs[:MAX_CANDIDATES]
    return jobs, exact


def job_config(master: DictConfig, overrides: list[str]) -> Config:
    """The typed, validated config one job of the sweep will run with."""
    cfg = GlobalHydra.instance().config_loader().load_sweep_config(master, overrides)
    with open_dict(cfg):
        del cfg["hydra"]
    config = OmegaConf.to_object(cfg)
    assert isinstance(config, Config)  # the schema is first in the defaults list
    validate(config)
    return config


def sweep_estimates(master: DictConfig, jobs: list[list[str]], exact: bool) -> list[JobEstimate]:
    """One estimate per job, or per trial of a search sweeper (its dearest candidate)."""
    swept = {o.split("=", 1)[0] for job in jobs for o in job if _varies(o, jobs)}
    estimates = []
    for num, overrides in enumerate(jobs):
        shown = " ".join(redact_override(o) for o in overrides if o.split("=", 1)[0] in swept)
        estimates.append(estimate_job(job_config(master, overrides), str(num), shown))
    if exact:
        return estimates
    dearest = max(estimates, key=lambda e: e.xpu_hours)
    label = f"dearest candidate: {dearest.overrides}" if dearest.overrides else ""
    trials = int(master.hydra.sweeper.get("n_trials", len(jobs)))
    return [
        JobEstimate(f"trial {i}", label, dearest.xpu_hours, dearest.usd, dearest.co2_kg, {})
        for i in range(trials)
    ]


def objective_value(config: Config, results: dict[str, Any]) -> float:
    """The run's objective (conf/config.yaml ``objective``): ``objective.metric`` of
    ``objective.arm`` (null: the best arm) minus ``cost_weight_per_usd`` x USD per 1,000 queries."""
    o = config.objective
    arms = [o.arm] if o.arm else list(results["arms"])
    return max(_arm_objective(o, arm, results["arms"][arm]) for arm in arms)


def _arm_objective(o, arm: str, figures: dict[str, Any]) -> float:
    value = _lookup(figures, o.metric, arm, "objective.metric")
    if not o.cost_weight_per_usd:
        return value
    usd = _lookup(figures, "cost.per_1k_queries.usd", arm, "objective.cost_weight_per_usd")
    return value - o.cost_weight_per_usd * usd


def _lookup(figures: dict[str, Any], path: str, arm: str, key: str) -> float:
    node: Any = figures
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            known = sorted(node) if isinstance(node, dict) else []
            raise ConfigError(
                f"{key}: results.json has no arms.{arm}.{path} (at {part!r}; keys there: {known})"
            )
        node = node[part]
    if isinstance(node, bool) or not isinstance(node, int | float):
        raise ConfigError(f"{key}: arms.{arm}.{path} is {node!r}, not a number")
    return float(node)


def _varies(override: str, jobs: list[list[str]]) -> bool:
    key = override.split("=", 1)[0]
    return len({o for job in jobs for o in job if o.split("=", 1)[0] == key}) > 1


class MlflowSweepCallback(Callback):
    def __init__(self) -> None:
        self.run_id: str | None = None
        self.uri = ""
        self.failed = False

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._guard_budget(config)
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
        _open_sweeps.append(self)
        logger.info("sweep parent run %s", self.run_id)

    @staticmethod
    def _guard_budget(config: DictConfig) -> None:
        """Print the cost table; stop before any job on a budget overrun or a dry run."""
        try:
            jobs, exact = expand_sweep(config)
            first = job_config(config, jobs[0])  # its budget section applies to the sweep
            proceed = guard(first, lambda: sweep_estimates(config, jobs, exact), print)
        except (BudgetError, ConfigError) as err:
            kind = "budget" if isinstance(err, BudgetError) else "config error"
            logger.error("%s: %s", kind, err)
            sys.exit(2)
        if not proceed:
            sys.exit(0)

    def on_job_end(self, config: DictConfig, job_return: Any, **kwargs: Any) -> None:
        status = getattr(job_return, "status", None)
        if status is not None and getattr(status, "name", "") == "FAILED":
            self.failed = True

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        redact_multirun_file(Path(str(config.hydra.sweep.dir)) / "multirun.yaml")

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        redact_multirun_file(Path(str(config.hydra.sweep.dir)) / "multirun.yaml")
        if self.run_id is None:
            return
        self._close(ok=not self.failed)

    def _close(self, ok: bool) -> None:
        if self in _open_sweeps:
            _open_sweeps.remove(self)
        os.environ.pop(PARENT_RUN_ENV, None)
        finish_parent_run(self.uri, str(self.run_id), ok=ok)


# Parent runs opened in this process and not yet closed: Hydra skips on_multirun_end when a job
# raises (or the sweep is interrupted), so the entry point closes these as FAILED on its way out.
_open_sweeps: list[MlflowSweepCallback] = []


def close_interrupted_sweeps() -> None:
    """Mark the parent run of every sweep that stopped early FAILED (never left RUNNING)."""
    while _open_sweeps:
        sweep = _open_sweeps[-1]
        try:
            sweep._close(ok=False)
        except Exception as err:  # the tracking server may be what failed
            _open_sweeps.remove(sweep)
            logger.warning("could not close the sweep's parent run %s: %s", sweep.run_id, err)
