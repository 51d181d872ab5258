"""Set-up time of a fresh clone: ``make setup`` (virtual environment, PyTorch, this package and
the two weight wheels), as a new user's first command runs it.

    .venv/bin/python -m bench --only setup

Clones the repository's committed HEAD into a temporary folder and times ``make setup`` there,
with pip's cache as it is on this machine (warm once anything was installed from it) and the
environment of the bench process. The model conversion is not part of it: the e2e part's cold
run includes it.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

MAKE_VARIABLES = ("MAKEFLAGS", "MAKELEVEL", "MFLAGS", "MAKEOVERRIDES")


def run_setup(repo: Path, workdir: Path, command: tuple[str, ...] = ("make", "setup")) -> dict:
    """Clone ``repo`` into ``workdir/clone`` and time ``command`` there."""
    clone = workdir / "clone"
    subprocess.run(["git", "clone", "--quiet", str(repo), str(clone)], check=True)
    commit = subprocess.run(
        ["git", "-C", str(clone), "rev-parse", "--short", "HEAD"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    # As a user's top-level command: not a sub-make of a `make bench` or `make test` running us.
    env = {k: v for k, v in os.environ.items() if k not in MAKE_VARIABLES}
    started = time.perf_counter()
    done = subprocess.run(list(command), cwd=clone, env=env, capture_output=True, text=True)
    wall_s = time.perf_counter() - started
    log = (done.stdout + done.stderr).splitlines()
    return {
        "wall_s": wall_s,
        "exit_code": done.returncode,
        "command": " ".join(command),
        "commit": commit,
        "log_tail": "\n".join(log[-20:]),
    }
