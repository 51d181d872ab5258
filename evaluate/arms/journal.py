"""The evaluation journal: every answered question, appended as it is answered, so a killed or
repeated run reuses the answers instead of generating them again.

One journal file per arm set-up, in the content-addressed cache, named by the hash of everything
that determines an answer (model fingerprint, adapter, retriever/index and context settings,
prompt wording, decoding settings, arm). Each line is one JSON object ``{"key", "prediction"}``
where ``key`` hashes the question id and text. Lines are written with a single ``write`` on a
file opened for appending, then flushed and fsynced: a kill leaves at most a torn last line,
which is skipped when the journal is read. Failed questions are never journaled, so a re-run
retries them.
"""

from __future__ import annotations

import json
import logging
import os
import signal
from pathlib import Path
from typing import Any

from rag.core.cache import content_key
from rag.core.types import QAPair

logger = logging.getLogger(__name__)

JOURNAL_FORMAT = "answers-v2"  # bump when a journal line's meaning changes (v2: log-probs)
# Test hook, read only here: the process SIGKILLs itself after journaling this many answers, to
# test resuming after a kill (tests/evaluate/test_eval_resume.py). Unset in normal use.
KILL_AFTER_ENV = "RAGTUNE_TEST_KILL_AFTER_ANSWERS"
_written_in_process = 0


def journal_path(cache_dir: Path, parts: dict[str, Any]) -> Path:
    return Path(cache_dir) / "eval_journal" / f"{content_key(JOURNAL_FORMAT, parts)}.jsonl"


def question_key(qa: QAPair) -> str:
    return content_key(qa.qa_id, qa.question)


class AnswerJournal:
    """Answers already given for one arm set-up, and the file new ones are appended to."""

    def __init__(self, path: Path, read: bool = True):
        self.path = Path(path)
        self.entries: dict[str, dict[str, Any]] = self._read() if read else {}
        self._end_torn_line()

    def _end_torn_line(self) -> None:
        """Terminate a torn last line, so the next answer starts a line of its own."""
        try:
            with self.path.open("rb+") as handle:
                handle.seek(0, os.SEEK_END)
                if handle.tell() == 0:
                    return
                handle.seek(-1, os.SEEK_END)
                if handle.read(1) != b"\n":
                    handle.write(b"\n")
        except FileNotFoundError:
            pass

    def _read(self) -> dict[str, dict[str, Any]]:
        entries: dict[str, dict[str, Any]] = {}
        if not self.path.is_file():
            return entries
        with self.path.open("rb") as handle:
            for number, raw in enumerate(handle, start=1):
                try:
                    row = json.loads(raw)
                    entries[row["key"]] = row["prediction"]
                except (ValueError, KeyError, TypeError):  # torn by a kill mid-write
                    logger.warning("%s line %d is incomplete; ignored", self.path, number)
        return entries

    def lookup(self, qa: QAPair) -> dict[str, Any] | None:
        return self.entries.get(question_key(qa))

    def record(self, qa: QAPair, prediction: dict[str, Any]) -> None:
        global _written_in_process
        key = question_key(qa)
        line = json.dumps({"key": key, "prediction": prediction}, ensure_ascii=False) + "\n"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        try:
            data = line.encode()
            if os.write(fd, data) != len(data):  # never for a regular file short of a full disk
                raise OSError(f"{self.path}: short write while journaling an answer")
            os.fsync(fd)
        finally:
            os.close(fd)
        self.entries[key] = prediction
        _written_in_process += 1
        kill_after = os.environ.get(KILL_AFTER_ENV)
        if kill_after and _written_in_process >= int(kill_after):
            os.kill(os.getpid(), signal.SIGKILL)
