"""Run the real entry point, ``python -m evaluate.cli``, in a subprocess as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def ragtune(
    cwd: Path,
    *args: str,
    cache: Path | None = None,
    env: dict[str, str | None] | None = None,
    timeout: float = 600,
) -> subprocess.CompletedProcess:
    """``ragtune ARGS`` run in ``cwd`` with its own model/index cache (``cwd/cache`` unless
    given); ``env`` adds variables, and a ``None`` value removes one."""
    environ = {
        **os.environ,
        "RAGTUNE_CACHE_DIR": str(cache if cache is not None else cwd / "cache"),
    }
    for name, value in (env or {}).items():
        if value is None:
            environ.pop(name, None)
        else:
            environ[name] = value
    return subprocess.run(
        [sys.executable, "-m", "evaluate.cli", *args],
        cwd=cwd,
        env=environ,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
