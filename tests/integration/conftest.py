"""Engines for the scale-out tests, started by the repository's scripts in .ci/services/ once per
session and stopped at its end (see services.py)."""

from __future__ import annotations

import pytest

from tests.integration.services import service, service_folder


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
