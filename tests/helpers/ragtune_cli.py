"""Run the real entry point, ``python -m evaluate.cli``, in a subprocess as a user would: to the
end (``ragtune``), or started in the background (``start_ragtune``) to be stopped at a pause
point of rag/core/pause.py and SIGKILLed there (``kill_at_pause``)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from rag.core.pause import PAUSE_AT_ENV, PAUSE_FILE_ENV

PAUSE_TIMEOUT_S = 300.0  # start-up and the stages before the pause point on 2 busy cores


def _environ(cwd: Path, cache: Path | None, env: dict[str, str | None] | None) -> dict[str, str]:
    environ = {
        **os.environ,
        "RAGTUNE_CACHE_DIR": str(cache if cache is not None else cwd / "cache"),
    }
    for name, value in (env or {}).items():
        if value is None:
            environ.pop(name, None)
        else:
            environ[name] = value
    return environ


def ragtune(
    cwd: Path,
    *args: str,
    cache: Path | None = None,
    env: dict[str, str | None] | None = None,
    timeout: float = 600,
) -> subprocess.CompletedProcess:
    """``ragtune ARGS`` run in ``cwd`` with its own model/index cache (``cwd/cache`` unless
    given); ``env`` adds variables, and a ``None`` value removes one."""
    return subprocess.run(
        [sys.executable, "-m", "evaluate.cli", *args],
        cwd=cwd,
        env=_environ(cwd, cache, env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def start_ragtune(
    cwd: Path, *args: str, cache: Path | None = None, pause_at: str | None = None
) -> subprocess.Popen:
    """``ragtune ARGS`` started in the background (output merged into ``stdout``); with
    ``pause_at`` it stops at that pause point and writes ``cwd/paused`` (see ``kill_at_pause``)."""
    env = {PAUSE_AT_ENV: pause_at, PAUSE_FILE_ENV: str(cwd / "paused")} if pause_at else None
    return subprocess.Popen(
        [sys.executable, "-m", "evaluate.cli", *args],
        cwd=cwd,
        env=_environ(cwd, cache, env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def finish(proc: subprocess.Popen, timeout: float = 600) -> str:
    """The output of a started run, which must end with exit code 0."""
    output, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, output[-3000:]
    return output


def kill_at_pause(proc: subprocess.Popen, cwd: Path, point: str) -> None:
    """Wait until the run started by ``start_ragtune(cwd, ..., pause_at=point)`` reaches the
    pause point, then SIGKILL it (no cleanup code runs) and reap it."""
    deadline = time.monotonic() + PAUSE_TIMEOUT_S
    while not (cwd / "paused").exists():
        assert proc.poll() is None, f"exited before {point}: {proc.communicate()[0][-3000:]}"
        assert time.monotonic() < deadline, f"never reached {point}"
        time.sleep(0.1)
    proc.kill()
    proc.communicate(timeout=60)


def cache_with_tiny_model(cache: Path, tiny_model_dir: str) -> Path:
    """A fresh cache that shares the session's tiny model (building it is not under test)."""
    (cache / "models").mkdir(parents=True)
    (cache / "models" / Path(tiny_model_dir).name).symlink_to(tiny_model_dir)
    return cache
