"""Embedding a large corpus with one process and with a multi-process pool
(``retriever.embedder.processes``): seconds each and the speed-up ratio.

    python bench/embed_processes.py --chunks 100000 --processes 2
"""

from __future__ import annotations

import argparse
import json
import logging
import time

import numpy as np

logger = logging.getLogger(__name__)

WORDS = (
    "harbour lantern quarry meadow copper violet ledger orchard signal timber founded river "
    "company engineer museum festival market council railway bridge archive studio"
).split()


def synthetic_chunks(n: int, seed: int = 0) -> list[str]:
    """``n`` distinct chunks of 40-120 words (the default chunker's window is 128 words)."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(40, 121, size=n)
    picks = rng.integers(0, len(WORDS), size=int(lengths.sum()))
    chunks, start = [], 0
    for i, length in enumerate(lengths):
        chunks.append(f"chunk {i}: " + " ".join(WORDS[j] for j in picks[start : start + length]))
        start += length
    return chunks


def measure(chunks: int, processes: int = 2, model: str = "all-minilm-l6-v2") -> dict:
    from rag.core.models import resolve_embedder
    from rag.retrieval.embedder import SentenceTransformerEmbedder

    path = resolve_embedder(model)
    texts = synthetic_chunks(chunks)
    one = SentenceTransformerEmbedder(path)
    started = time.perf_counter()
    single = one.embed(texts)
    single_s = time.perf_counter() - started

    pooled_embedder = SentenceTransformerEmbedder(path, processes=processes)
    started = time.perf_counter()
    pooled_embedder.pool.start()
    startup_s = time.perf_counter() - started
    try:
        started = time.perf_counter()
        pooled = pooled_embedder.embed(texts)
        pooled_s = time.perf_counter() - started
    finally:
        pooled_embedder.pool.close()
    return {
        "chunks": chunks,
        "processes": processes,
        "single_process_s": single_s,
        "pool_startup_s": startup_s,
        "pool_s": pooled_s,
        "speedup_ratio": single_s / pooled_s,
        "speedup_incl_startup_ratio": single_s / (pooled_s + startup_s),
        "max_abs_difference": float(np.abs(pooled - single).max()),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--chunks", type=int, default=100_000)
    p.add_argument("--processes", type=int, default=2)
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO)
    print(json.dumps(measure(args.chunks, args.processes), indent=2))


if __name__ == "__main__":
    main()
