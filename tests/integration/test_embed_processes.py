"""``retriever.embedder.processes``: a corpus embedded by sentence-transformers' multi-process
pool gives the vectors of one process, in the same order."""

from __future__ import annotations

import numpy as np
import pytest

from tests.helpers.ragtune_cli import ragtune

# Rows of unit length computed by the same model on the same inputs: only the grouping of texts
# into padded batches and the threads' summation order differ, which moves float32 results by
# rounding (about 1e-7 per component), far below this bound.
MAX_ABS_DIFFERENCE = 1e-5
TEXTS = 320  # above rag.embed_pool.MIN_TEXTS_FOR_POOL, so the pool is used


def corpus(n: int) -> list[str]:
    """Texts of different lengths (so padding differs between batches) and distinct content."""
    words = "harbour lantern quarry meadow copper violet ledger orchard signal timber".split()
    return [
        f"Record {i}: " + " ".join(words[(i * 7 + k) % len(words)] for k in range(3 + i % 17))
        for i in range(n)
    ]


@pytest.fixture(scope="module")
def minilm():
    try:
        from rag.core.models import resolve_embedder

        return resolve_embedder("all-minilm-l6-v2")
    except Exception as err:  # the weight package is part of `make setup`
        pytest.skip(f"all-MiniLM-L6-v2 is not installed: {err}")


def test_two_processes_embed_like_one(minilm):
    from rag.retrieval.embedder import SentenceTransformerEmbedder

    texts = corpus(TEXTS)
    one = SentenceTransformerEmbedder(minilm, batch_size=32).embed(texts)
    pooled_embedder = SentenceTransformerEmbedder(minilm, batch_size=32, processes=2)
    try:
        pooled = pooled_embedder.embed(texts)
        workers = pooled_embedder.pool.pool["processes"]
        assert len(workers) == 2 and all(w.is_alive() for w in workers)
        assert {w.pid for w in workers}.isdisjoint({None})
    finally:
        pooled_embedder.pool.close()
    assert pooled.shape == one.shape == (TEXTS, 384) and pooled.dtype == np.float32
    assert np.abs(pooled - one).max() < MAX_ABS_DIFFERENCE
    # Same order: each row is nearest to its own single-process row.
    assert (np.argmax(pooled @ one.T, axis=1) == np.arange(TEXTS)).all()
    # Same cache identity: the processes do not change what is built.
    assert pooled_embedder.identity == SentenceTransformerEmbedder(minilm).identity


def test_zero_processes_is_refused_in_one_line(tmp_path):
    proc = ragtune(tmp_path, "experiment=smoke", "retriever.embedder.processes=0")
    assert proc.returncode == 2
    errors = [line for line in (proc.stderr + proc.stdout).splitlines() if "processes" in line]
    assert len(errors) == 1 and ">= 1" in errors[0]
