"""Run the real ``ragtune-cost`` console script in a subprocess, as a user would."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

DATA = Path(__file__).parent.parent / "data" / "model_configs"


def command() -> list[str]:
    """The installed console script next to this interpreter (fallback: its module)."""
    script = Path(sys.executable).parent / "ragtune-cost"
    if script.exists():
        return [str(script)]
    found = shutil.which("ragtune-cost")
    return [found] if found else [sys.executable, "-m", "costing.whatif"]


def ragtune_cost(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*command(), *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def ragtune_cost_json(*args: str) -> dict[str, Any]:
    done = ragtune_cost(*args, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)
