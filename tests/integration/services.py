"""Start and stop the engines of the scale-out tests with the repository's own scripts
(``.ci/services/*.sh``); a component that is not installed skips its tests with the reason.
Also an ``mlflow server`` on a free 127.0.0.1 port, started and stopped by its pid."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ROOT / ".ci" / "services"
NOT_INSTALLED = 3  # the scripts' exit code for a missing component
SERVICE_START_TIMEOUT_S = 300.0
SERVER_STOP_TIMEOUT_S = 30.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


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


@contextmanager
def mlflow_server(
    store: Path, backend_uri: str, workers: int, start_timeout_s: float
) -> Iterator[str]:
    """``mlflow server`` with ``backend_uri`` that proxies artifacts (--serve-artifacts) into
    ``store/artifacts``; yields its URL once ``/health`` answers. Stopped whatever happens: its
    own session (the server and its workers) by the pid started here, SIGTERM then SIGKILL."""
    store.mkdir(parents=True, exist_ok=True)
    port = free_port()
    command = [
        str(Path(sys.executable).with_name("mlflow")),
        "server",
        "--host", "127.0.0.1",
        "--port", str(port),
        "--workers", str(workers),
        "--backend-store-uri", backend_uri,
        "--serve-artifacts",
        "--artifacts-destination", str(store / "artifacts"),
    ]  # fmt: skip
    log = (store / "server.log").open("w")
    server = subprocess.Popen(
        command, cwd=store, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + start_timeout_s
        while True:
            if server.poll() is not None:
                pytest.fail(f"mlflow server exited: {(store / 'server.log').read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{uri}/health", timeout=2):
                    break
            except (urllib.error.URLError, OSError):
                if time.monotonic() > deadline:
                    pytest.fail(f"mlflow server not healthy after {start_timeout_s} s")
                time.sleep(0.5)
        yield uri
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(timeout=SERVER_STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait(timeout=SERVER_STOP_TIMEOUT_S)
        log.close()
