"""FAISS inner-product index over normalised chunk embeddings, cached by content."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rag.cache import atomic_dir, content_key
from rag.embedder import Embedder
from rag.types import Chunk

logger = logging.getLogger(__name__)

INDEX_FILE = "index.faiss"
CHUNKS_FILE = "chunks.jsonl"
MANIFEST_FILE = "manifest.json"


@dataclass
class ChunkIndex:
    index: object  # faiss.Index
    chunks: list[Chunk]
    key: str
    path: Path
    reused: bool
    build_s: float  # wall time the build took (measured when built; read back when reused)
    manifest: dict


def index_key(chunks: list[Chunk], embedder: Embedder, factory: str) -> str:
    return content_key(
        "faiss-index",
        embedder.identity,
        factory,
        [(c.chunk_id, c.text) for c in chunks],
    )


def build_or_load_index(
    chunks: list[Chunk],
    embedder: Embedder,
    cache_root: Path,
    factory: str = "Flat",
    progress: bool = True,
) -> ChunkIndex:
    """Return the cached index for exactly these chunks and this embedder, building it if new."""
    import faiss

    if not chunks:
        raise ValueError("the corpus produced no chunks: check corpus settings and documents")
    key = index_key(chunks, embedder, factory)

    def build(tmp: Path) -> None:
        started = time.perf_counter()
        logger.info("embedding %d chunks for a new index %s", len(chunks), key[:12])
        vectors = embedder.embed([c.text for c in chunks], progress=progress)
        index = faiss.index_factory(vectors.shape[1], factory, faiss.METRIC_INNER_PRODUCT)
        if not index.is_trained:
            index.train(vectors)
        index.add(vectors)
        faiss.write_index(index, str(tmp / INDEX_FILE))
        with (tmp / CHUNKS_FILE).open("w", encoding="utf-8") as handle:
            for chunk in chunks:
                handle.write(json.dumps(chunk.to_dict(), ensure_ascii=False) + "\n")
        manifest = {
            "key": key,
            "factory": factory,
            "metric": "inner_product",
            "embedder": embedder.identity,
            "dimension": int(vectors.shape[1]),
            "vectors": int(index.ntotal),
            "faiss_version": faiss.__version__,
            "build_s": time.perf_counter() - started,
        }
        (tmp / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2))

    path, reused = atomic_dir(cache_root / "indexes" / key, build)
    if reused:
        logger.info("reusing cached index %s (%d chunks)", key[:12], len(chunks))
    index = faiss.read_index(str(path / INDEX_FILE))
    manifest = json.loads((path / MANIFEST_FILE).read_text())
    return ChunkIndex(index, chunks, key, path, reused, float(manifest["build_s"]), manifest)


def search(
    chunk_index: ChunkIndex, query_vectors: np.ndarray, top_k: int
) -> list[list[tuple[int, float]]]:
    """Top-k (chunk position, score) per query row, best first."""
    k = min(top_k, len(chunk_index.chunks))
    scores, ids = chunk_index.index.search(np.ascontiguousarray(query_vectors), k)
    return [
        [(int(i), float(s)) for i, s in zip(row_ids, row_scores, strict=True) if i >= 0]
        for row_ids, row_scores in zip(ids, scores, strict=True)
    ]
