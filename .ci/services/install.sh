#!/usr/bin/env bash
# Install the engines of the scale-out tests (tests/integration/test_slurm.py, test_ray.py,
# test_postgres_tracking.py); safe to run again (installs only what is missing).
#   Debian packages: slurm-wlm and munge (SLURM), postgresql (the tracking server's database)
#   Python packages, into $VENV (default .venv): the `cluster` extra of pyproject.toml (Ray,
#   the PostgreSQL driver) and hydra-ray-launcher without its dependencies (it pins
#   cloudpickle<3, which joblib, and with it hydra-joblib-launcher, cannot use).
# Without root or apt-get the Debian packages are left out, and their tests skip with the
# reason (fail when CI=true).
set -euo pipefail
cd "$(dirname "$0")/../.."
VENV=${VENV:-.venv}
RAY_LAUNCHER="hydra-ray-launcher==1.2.*"

missing=()
command -v slurmctld >/dev/null || [ -x /usr/sbin/slurmctld ] || missing+=(slurm-wlm)
[ -x /usr/sbin/munged ] || missing+=(munge)
ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || missing+=(postgresql)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
    echo "installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" \
      >/dev/null
  else
    echo "not installed (needs root and apt-get): ${missing[*]}; their tests will skip" >&2
  fi
fi

# The extra's requirements, read from pyproject.toml (one list of versions).
mapfile -t cluster < <("$VENV/bin/python" - <<'PY'
import tomllib
with open("pyproject.toml", "rb") as f:
    print("\n".join(tomllib.load(f)["project"]["optional-dependencies"]["cluster"]))
PY
)
if [ ${#cluster[@]} -eq 0 ]; then
  echo "pyproject.toml has no [project.optional-dependencies] cluster list" >&2
  exit 1
fi
if ! "$VENV/bin/python" -c 'import ray, psycopg' 2>/dev/null; then
  "$VENV/bin/pip" install --quiet "${cluster[@]}"
fi
if ! "$VENV/bin/python" -c 'import hydra_plugins.hydra_ray_launcher' 2>/dev/null; then
  "$VENV/bin/pip" install --quiet --no-deps "$RAY_LAUNCHER"
fi
echo "scale-out engines installed"
