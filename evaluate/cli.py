"""The entry point: ``ragtune [experiment=NAME] [key=value ...]`` (Hydra).

Composition and validation happen here, before any model library is imported, so a typo or a
bad value fails within a second or two with the key named.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import secrets
import sys
import warnings
from pathlib import Path
from typing import Any

import hydra
from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from evaluate.config.checks import validate
from evaluate.config.resolvers import register_resolvers
from evaluate.config.schema import Config, ConfigError
from evaluate.records.redact import redact_hydra_folder, redact_override

logger = logging.getLogger("ragtune")

ConfigStore.instance().store(name="config_schema", node=Config)
register_resolvers()  # ${package_data:...} in presets that point at shipped data
# Run folders are named by the second the run started plus this suffix, drawn once per process
# (conf/config.yaml hydra.run.dir): two runs started in the same second must not share a folder.
RUN_SUFFIX = secrets.token_hex(3)
OmegaConf.register_new_resolver("run_suffix", lambda: RUN_SUFFIX, replace=True)
# conf/hydra/launcher/*.yaml give ragtune's values under the launcher plugins' own names
# (hydra/launcher=joblib); Hydra validates them against the plugins' schemas of the same name and
# warns that this matching is deprecated. Each file lists every key, so it composes without it.
warnings.filterwarnings(
    "ignore", message=r"\s*'hydra/launcher/\w+' is validated against ConfigStore schema"
)
CONF_DIR = str(Path(__file__).resolve().parent.parent / "conf")
# One log format: MLflow's records go through the job's handlers instead of MLflow's own.
os.environ.setdefault("MLFLOW_CONFIGURE_LOGGING", "false")
QUIET_LOGGERS = ("faiss.loader", "alembic", "httpx", "urllib3")  # chatter below WARNING


def to_config(cfg: DictConfig) -> Config:
    """The composed DictConfig as the typed, validated ``Config``."""
    config = OmegaConf.to_object(cfg)
    assert isinstance(config, Config)  # guaranteed by the schema in the defaults list
    validate(config)
    return config


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="config")
def _run(cfg: DictConfig) -> float | None:
    hydra_cfg = HydraConfig.get()
    if hydra_cfg.output_subdir:  # .hydra/ holds the command line verbatim: no secrets in it
        redact_hydra_folder(Path(hydra_cfg.runtime.output_dir) / hydra_cfg.output_subdir)
    try:
        config = to_config(cfg)
    except ConfigError as err:
        _exit_bad_input(f"config error: {err}")
    if hydra_cfg.mode == RunMode.MULTIRUN:  # the job's number and overrides name it in MLflow
        overrides = " ".join(redact_override(o) for o in hydra_cfg.overrides.task)
        config.tracking.tags.update(sweep_job=str(hydra_cfg.job.num), sweep_overrides=overrides)
    elif not _within_budget(config):  # a sweep is costed before its first job (sweep.py)
        return None  # budget.dry_run: the estimate was printed, nothing runs
    output_dir = Path(HydraConfig.get().runtime.output_dir)
    resolved = OmegaConf.to_container(cfg, resolve=True)

    from tqdm.contrib.logging import logging_redirect_tqdm

    from evaluate.pipeline.runner import run_experiment  # heavy imports only after validation
    from evaluate.pipeline.sweep import objective_value

    quiet_libraries(config.eval.progress)
    try:
        with logging_redirect_tqdm():  # log lines above progress bars, not inside them
            results = run_experiment(config, resolved, output_dir)
    except user_errors() as err:  # bad input: one clear line, no traceback (run marked FAILED)
        _exit_bad_input(f"{type(err).__name__}: {err}")
    if not results:  # not the main process
        return None
    print_summary(config, results)
    try:  # the value Hydra hands to a sweeper (Optuna maximises it)
        return objective_value(config, results)
    except ConfigError as err:  # a single run has its results; only a sweep needs the number
        if hydra_cfg.mode != RunMode.MULTIRUN:
            logger.warning("no objective: %s", err)
            return None
        logger.error("config error: %s", err)
        sys.exit(2)


def _exit_bad_input(message: str) -> None:
    """Log the one-line error and exit with code 2; inside a job launched away from the sweep
    process (submitit/SLURM, Ray), raise it instead: the launcher hands a job's exception back
    to the sweep, which names the job, while an exit leaves submitit no result file (it then
    waits for ``sacct`` to report the job's end, forever on a cluster without accounting) and
    kills a Ray worker."""
    logger.error("%s", message)
    if os.environ.get("SUBMITIT_EXECUTOR") or os.environ.get("RAGTUNE_REMOTE_JOB"):
        raise RuntimeError(message)
    sys.exit(2)


def quiet_libraries(progress: bool) -> None:
    """Library warnings become log records (one format, never inside a progress bar), and
    libraries' INFO chatter is dropped; eval.progress=false also hides their progress bars."""
    logging.captureWarnings(True)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    if not progress:
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()


def print_summary(config: Config, results: dict[str, Any]) -> None:
    """Who wins: one row per arm (accuracy with its interval, TTFT and TPOT p50, USD and kg CO2e
    per 1,000 queries, one-time cost), then the commands that show more."""
    from evaluate.records.results import arm_run_metrics
    from evaluate.records.summary import arm_table_text
    from evaluate.records.tracking import ui_path

    arms = {arm: arm_run_metrics(results, arm) for arm in results["arms"]}
    lines = ["", f"Summary of {config.experiment.name} ({len(arms)} arms):", arm_table_text(arms)]
    lines += ["", "Next:"]
    if "mlflow_run_id" in results:
        uri = config.tracking.uri
        base = uri.rstrip("/") if uri.startswith("http") else "http://127.0.0.1:5000"
        if not uri.startswith("http"):
            lines.append(
                f"  make ui   (= mlflow ui --backend-store-uri {uri} --host 127.0.0.1 --port 5000)"
            )
        lines.append(f"  open {base}/{ui_path(results['mlflow_experiment_id'])}")
        lines.append(f"  ragtune-report --experiment {config.tracking.experiment_name}")
    else:
        lines.append("  tracking=mlflow (the default) mirrors runs to MLflow for make ui and")
        lines.append("  ragtune-report; this run's figures are in results.json")
    print("\n".join(lines), flush=True)


def _within_budget(config: Config) -> bool:
    """Cost estimate of this run against the budget (evaluate/pipeline/budget.py); False on a dry
    run."""
    from evaluate.pipeline.budget import BudgetError, estimate_job, guard

    overrides = " ".join(redact_override(o) for o in HydraConfig.get().overrides.task)
    show = print if config.budget.dry_run else logger.info
    try:
        return guard(config, lambda: [estimate_job(config, "run", overrides)], show)
    except BudgetError as err:
        logger.error("budget: %s", err)
        sys.exit(2)


def user_errors() -> tuple[type[BaseException], ...]:
    """Errors caused by the user's input or environment, whose message says what to do: the
    one base class, and costing's own (``costing`` imports nothing of ours)."""
    from costing.rows import CostingConfigError
    from rag.core.errors import UserError

    return (UserError, CostingConfigError)


# Hydra's detail lines, and its "+key=value to append" advice, which a schema refuses anyway.
HYDRA_DETAIL_LINES = (
    "full_key:",
    "object_type=",
    "reference_type=",
    "To append to your config",
    "Config search path",
    "provider=",
)


# The disk refused a write: permissions, read-only file system, full disk or quota, a file-size
# limit (RLIMIT_FSIZE; Python ignores SIGXFSZ, so write() fails with EFBIG), a file where a
# folder is expected.
DISK_ERRNOS = {
    errno.EACCES,
    errno.EPERM,
    errno.EROFS,
    errno.ENOSPC,
    errno.EDQUOT,
    errno.EFBIG,
    errno.ENOTDIR,
    errno.EEXIST,
}


def disk_errno(err: BaseException) -> int | None:
    """The errno of a refused write: an ``OSError``, or a Rust library's error (safetensors,
    tokenizers) that reports it as ``... (os error 27)``; None for anything else."""
    if isinstance(err, OSError):
        return err.errno if err.errno in DISK_ERRNOS else None
    found = re.search(r"\(os error (\d+)\)", str(err))
    code = int(found.group(1)) if found else None
    return code if code in DISK_ERRNOS else None


def composition_error_line(err: BaseException) -> str:
    """Hydra's multi-line composition error as one line, with the closest valid key when the
    key is unknown (Hydra prints several lines and a HYDRA_FULL_ERROR hint, and exits 1)."""
    from evaluate.config.suggest import closest_key

    parts = [str(err)]
    cause = err.__cause__ or err.__context__
    if cause is not None and str(cause) not in parts[0]:
        parts.append(str(cause))
    sentences: list[str] = []
    for raw in (line for part in parts for line in part.splitlines()):
        line = raw.strip()
        if not line or line.startswith(HYDRA_DETAIL_LINES):
            continue
        if raw[:1].isspace() and " " not in line and sentences:  # an item of a listed option
            sentences[-1] += f" {line},"
        else:
            sentences.append(line)
    message = " ".join(
        s.rstrip(",") + ("" if s.rstrip(",")[-1] in ".:;?" else ".") for s in sentences
    )
    key = getattr(cause, "full_key", None) or getattr(err, "full_key", None)
    if key and ("not in" in message or "Could not append" in message):
        match = closest_key(str(key))
        if match:
            message += f" Did you mean {match}?"
    if key and "is not a ListConfig" in message:
        message += f" Give a list: {key}=[...]."
    return message


def main() -> None:
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    # Let composition errors reach us (instead of Hydra's report and exit 1) to print them on one
    # line with exit code 2, as every other bad input. Errors inside a run are handled in _run.
    os.environ.setdefault("HYDRA_FULL_ERROR", "1")
    try:
        _run()
    except (HydraException, OmegaConfBaseException) as err:
        logger.error("config error: %s", composition_error_line(err))
        sys.exit(2)
    except Exception as err:
        code = disk_errno(err)
        if code is None:
            raise
        # Atomic writes leave nothing half-written; say which file and what to change.
        logger.error(
            "cannot write %s: %s; check the output folder (hydra.run.dir), the cache folder "
            "(paths.cache_dir), their permissions, free disk space and file-size limits",
            getattr(err, "filename", None) or "a file",
            os.strerror(code),
        )
        sys.exit(2)
    finally:  # a sweep stopped by a failing job or Ctrl-C: its parent run is closed as FAILED
        sweep = sys.modules.get("evaluate.pipeline.sweep")
        if sweep is not None:
            sweep.close_interrupted_sweeps()


if __name__ == "__main__":
    # Run the importable module's function, not __main__'s: parallel launchers (joblib,
    # submitit) then pickle it by reference and their workers import evaluate.cli as the
    # console script does (with its warning filter), instead of receiving a copy by value.
    from evaluate.cli import main as importable_main

    importable_main()
