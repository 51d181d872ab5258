"""Embedding with several processes: sentence-transformers' multi-process pool.

``retriever.embedder.processes > 1`` encodes a corpus in that many worker processes, each with
``cpu_count // processes`` threads, so the processes do not fight over the cores. The model is
shared with the workers (sentence-transformers moves it to shared memory), the input is cut into
chunks that the workers take in turn, and the rows come back in input order. The pool starts on
first use and stops at exit (or ``close``); query embedding stays in the calling process, where
a pool round trip would only add latency.
"""

from __future__ import annotations

import atexit
import logging
import os
from contextlib import contextmanager
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

# Below this many texts one process is faster than shipping chunks to the pool.
MIN_TEXTS_FOR_POOL = 256


@contextmanager
def _threads_per_worker(threads: int):
    """Workers are spawned and read OMP_NUM_THREADS when torch starts in them."""
    previous = os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = str(threads)
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("OMP_NUM_THREADS", None)
        else:
            os.environ["OMP_NUM_THREADS"] = previous


class ProcessPoolEncoder:
    """Encode with ``processes`` worker processes on ``device`` (CPU cores or one GPU each)."""

    def __init__(self, model: Any, processes: int, device: str = "cpu"):
        if processes < 2:
            raise ValueError(f"a process pool needs at least 2 processes, not {processes}")
        self.model = model
        self.processes = processes
        self.devices = [device] * processes
        self.pool: dict[str, Any] | None = None

    def start(self) -> None:
        if self.pool is not None:
            return
        threads = max(1, (os.cpu_count() or 1) // self.processes)
        logger.info("starting %d embedding processes, %d threads each", self.processes, threads)
        with _threads_per_worker(threads):
            self.pool = self.model.start_multi_process_pool(target_devices=self.devices)
        atexit.register(self.close)

    def encode(self, texts: list[str], batch_size: int, progress: bool = False) -> np.ndarray:
        self.start()
        # Several chunks per process keep every worker busy until the end.
        chunk_size = max(batch_size, -(-len(texts) // (4 * self.processes)))
        vectors = self.model.encode(
            texts,
            pool=self.pool,
            batch_size=batch_size,
            chunk_size=chunk_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=progress,
        )
        return np.asarray(vectors, dtype=np.float32)

    def close(self) -> None:
        if self.pool is None:
            return
        pool, self.pool = self.pool, None
        self.model.stop_multi_process_pool(pool)
