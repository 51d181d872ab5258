"""Chunk embeddings cached on disk by content, embedded and written in batches.

An entry ``<cache_root>/embeddings/<key>/`` holds ``vectors.npy`` (float32, one row per text, in
order) and ``manifest.json`` (key, shape, sha256, the embedder identity, seconds taken). The key
hashes the texts and the embedder identity (model content hash and library versions), so any
change re-embeds. Entries are shared by every index built over the same texts: changing the index
type never re-embeds the corpus.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from rag.core.cache import content_key
from rag.core.pause import pause_point
from rag.core.store import DEFAULT_LOCK_TIMEOUT_S, CorruptEntryError, file_sha256, get_or_build
from rag.retrieval.embedder import Embedder
from rag.retrieval.vectors import NpyWriter, npy_shape

logger = logging.getLogger(__name__)

VECTORS_FILE = "vectors.npy"
MANIFEST_FILE = "manifest.json"
# Texts handed to the embedder per call: large enough for sentence-transformers to batch well,
# small enough that one batch of 384-d vectors is a few MB.
DEFAULT_BATCH_ROWS = 2048


@dataclass
class Embeddings:
    path: Path  # the vectors.npy file
    key: str
    reused: bool
    count: int
    dimension: int
    embed_s: float  # seconds the embedding took when the entry was built
    manifest: dict


def embeddings_key(texts: Sequence[str], embedder: Embedder) -> str:
    return content_key("embeddings", embedder.identity, list(texts))


def embed_in_batches(
    texts: Sequence[str],
    embedder: Embedder,
    writer: NpyWriter,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    progress: bool = True,
    desc: str = "embedding",
) -> None:
    """Embed ``texts`` batch by batch straight into ``writer``."""
    starts = range(0, len(texts), batch_rows)
    for start in tqdm(starts, desc=desc, unit="batch", disable=not progress):
        batch = list(texts[start : start + batch_rows])
        vectors = np.asarray(embedder.embed(batch), dtype=np.float32)
        if vectors.shape != (len(batch), embedder.dimension):
            raise ValueError(
                f"embedder {embedder.identity} returned shape {vectors.shape} for "
                f"{len(batch)} texts, expected ({len(batch)}, {embedder.dimension})"
            )
        writer.write(vectors)
        pause_point("embed")  # test hook (rag/core/pause.py); a no-op in real runs


def store_embeddings(
    cache_root: Path,
    key: str,
    count: int,
    embedder: Embedder,
    fill: Callable[[NpyWriter], dict],
    lock_timeout_s: float = DEFAULT_LOCK_TIMEOUT_S,
) -> Embeddings:
    """Fetch the entry ``key`` or build it with ``fill(writer)`` (which returns extra manifest
    fields). The caller guarantees ``key`` hashes everything ``fill`` depends on."""
    if count < 1:
        raise ValueError("nothing to embed: the corpus produced no chunks")
    dim = int(embedder.dimension)

    def build(tmp: Path) -> None:
        started = time.perf_counter()
        with NpyWriter(tmp / VECTORS_FILE, count, dim) as writer:
            extra = fill(writer)
            sha256 = writer.close()
        manifest = {
            "key": key,
            "embedder": embedder.identity,
            "count": count,
            "dimension": dim,
            "sha256": sha256,
            "embed_s": time.perf_counter() - started,
            **extra,
        }
        (tmp / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2))

    def load(path: Path) -> Embeddings:
        return _verified(path, key, count, dim)

    embeddings, reused = get_or_build(
        cache_root / "embeddings" / key,
        build,
        load,
        lock_timeout_s=lock_timeout_s,
        what="embeddings",
    )
    embeddings.reused = reused
    return embeddings


def cached_embeddings(
    texts: Sequence[str],
    embedder: Embedder,
    cache_root: Path,
    *,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    progress: bool = True,
    lock_timeout_s: float = DEFAULT_LOCK_TIMEOUT_S,
) -> Embeddings:
    """The embeddings of ``texts`` by ``embedder``, from the cache or embedded now."""
    key = embeddings_key(texts, embedder)

    def fill(writer: NpyWriter) -> dict:
        logger.info("embedding %d texts with %s (%s)", len(texts), embedder.identity, key[:12])
        embed_in_batches(texts, embedder, writer, batch_rows, progress)
        return {"embedded": len(texts)}

    return store_embeddings(cache_root, key, len(texts), embedder, fill, lock_timeout_s)


def _verified(path: Path, key: str, count: int, dim: int) -> Embeddings:
    try:
        manifest = json.loads((path / MANIFEST_FILE).read_text())
        shape, _ = npy_shape(path / VECTORS_FILE)
    except (OSError, ValueError) as err:
        raise CorruptEntryError(f"unreadable: {err}") from None
    if manifest.get("key") != key:
        raise CorruptEntryError(f"manifest key {manifest.get('key')!r} is not the entry's key")
    if shape != (count, dim) or (manifest.get("count"), manifest.get("dimension")) != shape:
        raise CorruptEntryError(f"shape {shape}, manifest and request say ({count}, {dim})")
    if file_sha256(path / VECTORS_FILE) != manifest.get("sha256"):
        raise CorruptEntryError("vectors.npy does not match the sha256 in its manifest")
    return Embeddings(
        path / VECTORS_FILE, key, True, count, dim, float(manifest["embed_s"]), manifest
    )
