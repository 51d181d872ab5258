"""report.html in a real browser: Debian's Chromium, headless, opens the page from a folder
without the PNG files (as MLflow's artifact viewer shows it) and reports what it loaded."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest

from evaluate.report import write_report
from tests.evaluate.test_report_gaps import _many_runs

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)"
    ),
]
# As root (CI) Chromium needs --no-sandbox; without the background-networking flags it keeps
# trying to reach hosts this machine cannot reach.
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PROBE = """<script>
window.addEventListener("load", () => {
  const images = [...document.images].map((i) => ({complete: i.complete, width: i.naturalWidth}));
  const tables = [...document.querySelectorAll("table")].map((t) => t.rows.length);
  const out = document.createElement("pre");
  out.id = "probe";
  out.textContent = JSON.stringify({images, tables});
  document.body.appendChild(out);
});
</script>"""


def test_every_image_loads_and_the_comparison_table_is_there(tmp_path):
    out = write_report(_many_runs(), "browser", tmp_path / "report")
    alone = tmp_path / "elsewhere"  # no PNG beside the page: the images must be inside it
    alone.mkdir()
    page = (out / "report.html").read_text().replace("</body>", PROBE + "</body>")
    (alone / "report.html").write_text(page)
    proc = subprocess.run(
        [
            CHROMIUM,
            *FLAGS,
            f"--user-data-dir={tmp_path / 'profile'}",
            "--virtual-time-budget=10000",
            "--dump-dom",
            (alone / "report.html").as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    found = re.search(r'<pre id="probe">(.*?)</pre>', proc.stdout, re.S)
    assert found, proc.stdout[-2000:]
    probe = json.loads(found.group(1).replace("&quot;", '"'))
    assert len(probe["images"]) >= 4
    assert all(i["complete"] and i["width"] > 0 for i in probe["images"]), probe["images"]
    # the first table compares the four arms: a header row and a row per arm
    assert probe["tables"][0] == 5
