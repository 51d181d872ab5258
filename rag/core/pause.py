"""A test hook: stop the process at a named point so a test can kill it exactly there.

Used only by tests (tests/integration/test_kill_resume.py, test_training_kill_resume.py). With
``RAGTUNE_TEST_PAUSE_AT=<point>`` set, the first ``pause_point(<point>)`` writes the process id
into the file named by ``RAGTUNE_TEST_PAUSE_FILE`` and sleeps until the test kills the process
with SIGKILL. Without the variable (every real run) it returns at once. Points: ``ingest``
(after the first corpus file is read), ``embed`` (after the first batch of vectors is written
into the unfinished entry), ``index`` (after ``index.faiss`` is written, before the rest of the
entry), ``checkpoint`` (after a training checkpoint is complete).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

PAUSE_AT_ENV = "RAGTUNE_TEST_PAUSE_AT"
PAUSE_FILE_ENV = "RAGTUNE_TEST_PAUSE_FILE"


def pause_point(name: str) -> None:
    if os.environ.get(PAUSE_AT_ENV) != name:
        return
    Path(os.environ[PAUSE_FILE_ENV]).write_text(str(os.getpid()))
    while True:  # until killed
        time.sleep(1.0)
