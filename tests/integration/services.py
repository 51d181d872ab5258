"""Start and stop the engines of the scale-out tests with the repository's own scripts
(``.ci/services/*.sh``); a component that is not installed skips its tests with the reason."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ROOT / ".ci" / "services"
NOT_INSTALLED = 3  # the scripts' exit code for a missing component
SERVICE_START_TIMEOUT_S = 300.0


def service_folder(name: str) -> Path:
    """A fresh folder every user can traverse: PostgreSQL runs as its own unprivileged user,
    which cannot enter pytest's private (0700) temporary folders."""
    folder = Path(tempfile.mkdtemp(prefix=f"ragtune-{name}-"))
    folder.chmod(0o755)
    return folder


@contextmanager
def service(script: str, folder: Path) -> Iterator[dict[str, str]]:
    """``script start folder``; yields the ``KEY=value`` lines it printed; always ``stop``s."""
    path = SERVICES / script
    started = subprocess.run(
        [str(path), "start", str(folder)],
        capture_output=True,
        text=True,
        timeout=SERVICE_START_TIMEOUT_S,
        env={**os.environ, "RAGTUNE_PYTHON": sys.executable},
    )
    if started.returncode == NOT_INSTALLED:
        reason = f"{script}: {started.stderr.strip().splitlines()[-1]}"
        if os.environ.get("CI") == "true":  # .ci/run installs every engine: missing is a fault
            pytest.fail(f"{reason} (.ci/services/install.sh should have installed it)")
        pytest.skip(reason)
    try:
        if started.returncode != 0:
            pytest.fail(f"{script} start failed ({started.returncode}): {started.stderr[-3000:]}")
        values = dict(line.split("=", 1) for line in started.stdout.splitlines() if "=" in line)
        yield values
    finally:
        subprocess.run([str(path), "stop", str(folder)], capture_output=True, timeout=120)
        shutil.rmtree(folder, ignore_errors=True)


def require_module(name: str, hint: str) -> None:
    """Skip without ``name`` (fail under CI, where .ci/services/install.sh installs it)."""
    try:
        __import__(name)
    except ImportError as err:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{name} is not installed ({err}); {hint}")
        pytest.skip(f"{name} is not installed; {hint}")
