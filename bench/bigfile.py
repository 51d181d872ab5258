"""One large single-text-file corpus through ``ragtune``: wall time and peak memory.

    .venv/bin/python -m bench --only bigfile [--bigfile-mb 200]

Writes a text file of the given size (paragraphs of notes with names and years, so the cloze
questions have answers), runs ``ragtune experiment=smoke corpus=files qa=cloze`` on it with a
fresh cache, and reads the run's peak resident set size from the kernel (``wait4`` rusage of the
process and its children). Every stage sees the whole file: ingestion, chunking, cloze
questions, embedding, the index and the training examples of the fine-tuned arms.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from pathlib import Path

WORDS = (
    "harbour lighthouse ledger cargo quay tide ferry warehouse customs pier rope anchor "
    "market council bridge river mill school library archive census merchant"
).split()


def write_text_file(path: Path, megabytes: float, seed: int = 0) -> int:
    """A UTF-8 text file of about ``megabytes`` MB (10^6 bytes); returns its size in bytes."""
    rng = random.Random(seed)
    target = int(megabytes * 1e6)
    written, number = 0, 0
    with path.open("w", encoding="utf-8") as handle:
        while written < target:
            first, family = rng.choice(["Ada", "Bram", "Cora"]), rng.choice(["Whitlock", "Marsh"])
            sentences = [
                f"Archive item {number} was catalogued in {rng.randint(1800, 2020)} by "
                f"{first} {family}."
            ]
            for _ in range(rng.randint(2, 5)):
                words = rng.choices(WORDS, k=rng.randint(8, 18))
                sentences.append(f"{' '.join(words).capitalize()}.")
            paragraph = " ".join(sentences) + "\n\n"
            handle.write(paragraph)
            written += len(paragraph)
            number += 1
    return path.stat().st_size


def run_bigfile(folder: Path, megabytes: float, timeout_s: float = 7200) -> dict:
    """Run ``ragtune`` on one generated file; wall time, peak RSS and the exit code."""
    text = folder / "corpus.txt"
    size = write_text_file(text, megabytes)
    env = {**os.environ, "RAGTUNE_CACHE_DIR": str(folder / "cache")}
    command = [
        sys.executable,
        "-m",
        "evaluate.cli",
        "experiment=smoke",
        "corpus=files",
        f"corpus.paths=[{text}]",
        "qa=cloze",
        "tracking=none",
        f"hydra.run.dir={folder / 'run'}",
    ]
    log = folder / "ragtune.out"
    started = time.perf_counter()
    with log.open("w") as out:
        proc = subprocess.Popen(command, cwd=folder, env=env, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout_s
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.5)
    wall_s = time.perf_counter() - started
    # ru_maxrss: kilobytes on Linux, bytes on macOS
    peak_bytes = usage.ru_maxrss * (1 if sys.platform == "darwin" else 1024)
    return {
        "text_bytes": size,
        "wall_s": wall_s,
        "peak_rss_gb": peak_bytes / 1e9,
        "exit_code": os.waitstatus_to_exitcode(status),
        "log_tail": log.read_text(errors="replace")[-2000:],
    }
