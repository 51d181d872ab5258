"""Real servers and engines the integration tests run against, each started once per session
and stopped by PID: ``transformers serve`` (the ``serve`` extra) with the packaged default
generator, and the scale-out engines of .ci/services/ (SLURM, PostgreSQL, Ray)."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.integration.services import free_port, service, service_folder

# Loading the 135M model and importing the server stack took about 15 s on 2 busy cores; the
# bound only stops a test from hanging on a server that never comes up.
READY_TIMEOUT_S = 300.0
STOP_TIMEOUT_S = 20.0


@dataclass
class ServedModel:
    base_url: str
    model: str  # the name requests carry: the folder the server was started with
    pid: int
    log: Path


def _log_tail(log: Path, chars: int = 600) -> str:
    text = log.read_text(errors="replace") if log.exists() else ""
    return " ".join(text[-chars:].split())


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


@pytest.fixture(scope="session")
def transformers_server(real_model_cache, tmp_path_factory):
    """``transformers serve MODEL_FOLDER`` on a free 127.0.0.1 port; skips with the reason when
    the extra is not installed or the server does not become healthy within READY_TIMEOUT_S."""
    pytest.importorskip("fastapi", reason="needs the serve extra: pip install -e '.[serve]'")
    pytest.importorskip("uvicorn", reason="needs the serve extra: pip install -e '.[serve]'")
    cli = Path(sys.executable).parent / "transformers"
    if not cli.exists():
        pytest.skip(f"{cli} not found: install the serve extra (transformers[serving])")
    from rag.core.models import resolve_generator

    folder = resolve_generator("smollm2-135m-instruct", real_model_cache)
    port = free_port()
    log = tmp_path_factory.mktemp("transformers-serve") / "server.log"
    command = [str(cli), "serve", "--host", "127.0.0.1", "--port", str(port)]
    command += ["--device", "cpu", "--dtype", "float32", folder]
    with log.open("wb") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not _healthy(f"http://127.0.0.1:{port}/health"):
            if process.poll() is not None:
                pytest.skip(
                    f"transformers serve exited with {process.returncode}: {_log_tail(log)}"
                )
            if time.monotonic() > deadline:
                pytest.skip(
                    f"transformers serve not ready after {READY_TIMEOUT_S:.0f} s: {_log_tail(log)}"
                )
            time.sleep(0.5)
        yield ServedModel(f"http://127.0.0.1:{port}/v1", folder, process.pid, log)
    finally:
        _stop(process)


def _stop(process: subprocess.Popen) -> None:
    """Stop the server this fixture started, by its PID: SIGTERM, then SIGKILL if it lingers."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=STOP_TIMEOUT_S)


# Engines for the scale-out tests, started by the repository's scripts in .ci/services/ once per
# session and stopped at its end (see services.py).


@pytest.fixture(scope="session")
def slurm_cluster():
    """A one-node SLURM cluster (munged, slurmctld, slurmd; partition debug, 2 CPUs).
    Yields the environment a client needs (SLURM_CONF)."""
    with service("slurm.sh", service_folder("slurm")) as values:
        yield {"SLURM_CONF": values["SLURM_CONF"]}


@pytest.fixture(scope="session")
def postgres_uri():
    """A PostgreSQL server on 127.0.0.1 with an empty database ``mlflow``; yields its URI."""
    with service("postgres.sh", service_folder("postgres")) as values:
        yield values["POSTGRES_URI"]


@pytest.fixture(scope="session")
def ray_cluster():
    """A one-node Ray cluster (``ray start --head`` on 127.0.0.1); yields its GCS address and
    the dashboard URL that Ray Jobs are submitted to."""
    with service("ray.sh", service_folder("ray")) as values:
        yield values
