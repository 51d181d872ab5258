"""`make run` installs only what a run needs; `make test` adds the dev extras (issue: set-up
time). Checked on make's dry run (-n) against a venv path that does not exist, so every
recipe line is printed and nothing is installed."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


def _pip_lines(target: str, tmp_path: Path) -> list[str]:
    # A user's shell: no variables passed down from an enclosing `make` (CI runs the suite
    # under `make test EXTRAS=dev,serve`, which sub-makes would inherit through MAKEFLAGS).
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"MAKEFLAGS", "MAKEOVERRIDES", "MFLAGS", "MAKELEVEL", "EXTRAS"}
    }
    out = subprocess.run(
        ["make", "-n", target, f"VENV={tmp_path / 'venv'}"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [line for line in out.splitlines() if "/bin/pip install" in line]


def test_make_run_installs_no_dev_extras(tmp_path):
    lines = _pip_lines("run", tmp_path)
    assert any("pip install -e ." in line for line in lines)
    assert not any("[dev]" in line or "[sweeps]" in line for line in lines)


def test_make_test_installs_the_dev_extras(tmp_path):
    lines = _pip_lines("test", tmp_path)
    assert any('pip install -e ".[dev]"' in line for line in lines)
