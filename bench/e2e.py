"""End to end: an experiment run cold, then re-run identically (warm), each in a fresh process.

Cold means a fresh, empty ``RAGTUNE_CACHE_DIR``: the generator is converted from its GGUF, the
chunks embedded, the index built and the adapter trained. The operating system's file cache,
the installed packages and Python's bytecode are already warm (this is not a first boot). The
warm run uses the same cache and the same overrides in a new output folder. Tracking is off
(``tracking=none``): MLflow mirroring is measured by its own tests, not here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "1",
    "TOKENIZERS_PARALLELISM": "false",
}


def run_experiment(
    cwd: Path, cache: Path, run_dir: str, experiment: str, timeout_s: float, *overrides: str
) -> dict:
    """Run the entry point once; wall seconds and the stage figures of its results.json."""
    command = [
        sys.executable,
        "-m",
        "evaluate.cli",
        f"experiment={experiment}",
        "tracking=none",
        f"hydra.run.dir={run_dir}",
        *overrides,
    ]
    env = {**os.environ, **OFFLINE_ENV, "RAGTUNE_CACHE_DIR": str(cache)}
    started = time.perf_counter()
    done = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout_s
    )
    wall_s = time.perf_counter() - started
    if done.returncode != 0:
        tail = (done.stderr or done.stdout)[-3000:]
        raise RuntimeError(f"`{' '.join(command[2:])}` exited {done.returncode}:\n{tail}")
    return summarise(json.loads((cwd / run_dir / "results.json").read_text()), wall_s)


def summarise(results: dict, wall_s: float) -> dict:
    """The figures of one run that explain its wall time."""
    stages = results.get("stages", {})
    finetune = stages.get("finetune", {})
    index = stages.get("index", {})
    predictions = results.get("predictions", [])
    return {
        "wall_s": wall_s,
        "duration_s": float(results.get("duration_s", float("nan"))),
        "startup_s": wall_s - float(results.get("duration_s", 0.0)),
        "model_s": float(stages.get("model", {}).get("seconds", 0.0)),
        "index_reused": index.get("reused"),
        "index_build_s": index.get("build_s"),
        "finetune_reused": finetune.get("reused"),
        "finetune_wall_s": finetune.get("wall_s"),
        "finetune_steps": finetune.get("steps"),
        "predictions": len(predictions),
        "answer_s": sum(float(p.get("request_s", 0.0)) for p in predictions),
        # wall time of each model load and each arm's answers and throughput, from results.json
        "answering_parts_s": stages.get("answering_s", {}),
        "answering_total_s": sum(stages.get("answering_s", {}).values()),
        # what the run answered: accuracy and batch-1 decode time per arm, so a faster run
        # is seen to give the same figures
        "arm_figures": {
            arm: {
                "contains": (figures.get("accuracy") or {}).get("contains"),
                "tpot_p50_ms": _ms((figures.get("latency") or {}).get("tpot_p50_s")),
                "ttft_p50_ms": _ms((figures.get("latency") or {}).get("ttft_p50_s")),
            }
            for arm, figures in results.get("arms", {}).items()
        },
    }


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else 1e3 * float(seconds)


def cold_and_warm(workdir: Path, experiment: str, timeout_s: float, *overrides: str) -> dict:
    """Cold (fresh cache) then warm (same cache, same overrides) runs of ``experiment``."""
    cache = workdir / "cache"
    cache.mkdir(parents=True, exist_ok=True)
    cold = run_experiment(workdir, cache, "runs/cold", experiment, timeout_s, *overrides)
    warm = run_experiment(workdir, cache, "runs/warm", experiment, timeout_s, *overrides)
    return {
        "cold": cold,
        "warm": warm,
        "cold_excl_conversion_s": cold["wall_s"] - cold["model_s"],
        "warm_over_cold": warm["wall_s"] / cold["wall_s"],
    }
