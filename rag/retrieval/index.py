"""FAISS index over chunk embeddings, cached by content and verified on every load.

An entry ``<cache_root>/indexes/<key>/`` holds ``index.faiss``, ``chunks.jsonl`` (the chunk of
each position), ``labels.npy`` (the FAISS label of each position: ``0..n-1`` for a fresh build,
arbitrary after an incremental update of an IVF index) and ``manifest.json`` (key, spec, sizes,
sha256 of every file, seconds). The key hashes the embeddings entry (chunk texts + embedder
identity), the chunk ids and spans, and the index spec (factory, metric, training sample, seed,
FAISS version); search-time knobs (``nprobe``, ``efSearch``) and GPU placement are applied after
loading and are not part of it. Embeddings live in their own entry (``rag.retrieval.embeddings``),
so
changing only the index type never re-embeds the corpus.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rag.core.cache import content_key
from rag.core.pause import pause_point
from rag.core.store import (
    DEFAULT_LOCK_TIMEOUT_S,
    CorruptEntryError,
    file_sha256,
    get_or_build,
    verify_files,
)
from rag.core.types import Chunk
from rag.retrieval.embedder import Embedder
from rag.retrieval.embeddings import DEFAULT_BATCH_ROWS, cached_embeddings, embeddings_key
from rag.retrieval.faiss_build import (
    IndexSpecError,
    apply_search_params,
    build_streaming,
    check_trainable,
    make_index,
    require_gpu,
    to_gpu,
)

logger = logging.getLogger(__name__)

INDEX_FILE = "index.faiss"
CHUNKS_FILE = "chunks.jsonl"
LABELS_FILE = "labels.npy"
MANIFEST_FILE = "manifest.json"
# Bump when the way an index is built changes its contents (e.g. polysemous training was
# switched off in rag.retrieval.faiss_build.make_index).
BUILDER_VERSION = 1


@dataclass
class ChunkIndex:
    index: object  # faiss.Index, on the GPU(s) when use_gpu
    chunks: list[Chunk]
    key: str
    path: Path
    reused: bool
    build_s: float  # embedding + index seconds when built (read back when reused), for costing
    manifest: dict
    labels: np.ndarray | None = None  # FAISS label of chunks[i]; None means label == position
    search_params: dict[str, int] = field(default_factory=dict)
    use_gpu: bool = False
    _position_of: np.ndarray | None = field(default=None, init=False, repr=False)

    def positions(self, labels: np.ndarray) -> np.ndarray:
        """Chunk positions of FAISS labels (-1 for a label no chunk has)."""
        if self.labels is None:
            return np.where(labels < len(self.chunks), labels, -1)
        if self._position_of is None:
            table = np.full(int(self.labels.max(initial=-1)) + 1, -1, dtype=np.int64)
            table[self.labels] = np.arange(len(self.labels))
            self._position_of = table
        inside = (labels >= 0) & (labels < len(self._position_of))
        return np.where(inside, self._position_of[np.where(inside, labels, 0)], -1)


def index_spec(
    factory: str,
    metric: str = "inner_product",
    train_size: int | None = None,
    seed: int = 0,
    ef_construction: int | None = None,
) -> dict:
    import faiss

    spec = {
        "factory": factory,
        "metric": metric,
        "train_size": train_size,
        "seed": seed,
        "faiss": faiss.__version__,
        "builder": BUILDER_VERSION,
    }
    if ef_construction is not None:  # only when set: the keys of default builds stay as they were
        spec["ef_construction"] = ef_construction
    return spec


def index_key(chunks: list[Chunk], embedder: Embedder, factory: str, **spec) -> str:
    return content_key(
        "faiss-index",
        embeddings_key([c.text for c in chunks], embedder),
        [(c.chunk_id, c.doc_id, c.char_start, c.char_end) for c in chunks],
        index_spec(factory, **spec),
    )


def build_or_load_index(
    chunks: list[Chunk],
    embedder: Embedder,
    cache_root: Path,
    factory: str = "Flat",
    progress: bool = True,
    *,
    metric: str = "inner_product",
    nprobe: int | None = None,
    ef_search: int | None = None,
    use_gpu: bool = False,
    train_size: int | None = None,
    seed: int = 0,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    lock_timeout_s: float = DEFAULT_LOCK_TIMEOUT_S,
    ef_construction: int | None = None,
) -> ChunkIndex:
    """Return the cached index for exactly these chunks, embedder and spec, building it if new.

    The spec is checked before anything is embedded: an invalid factory string, a metric
    typo, too few vectors to train, or ``use_gpu`` without GPU FAISS fail at once.
    """
    if not chunks:
        raise ValueError("the corpus produced no chunks: check corpus settings and documents")
    if train_size is not None and train_size < 1:
        raise IndexSpecError(f"retriever.train_size must be >= 1 or null, got {train_size}")
    empty = make_index(factory, embedder.dimension, metric, ef_construction)
    check_trainable(empty, factory, len(chunks), warn=False)
    if use_gpu:
        require_gpu()
    spec = index_spec(factory, metric, train_size, seed, ef_construction)
    key = index_key(
        chunks,
        embedder,
        factory,
        metric=metric,
        train_size=train_size,
        seed=seed,
        ef_construction=ef_construction,
    )

    def build(tmp: Path) -> None:
        embeddings = cached_embeddings(
            [c.text for c in chunks],
            embedder,
            cache_root,
            batch_rows=batch_rows,
            progress=progress,
            lock_timeout_s=lock_timeout_s,
        )
        started = time.perf_counter()
        stats: dict = {}
        index = build_streaming(
            embeddings.path,
            factory,
            metric,
            train_size=train_size,
            seed=seed,
            progress=progress,
            stats=stats,
            ef_construction=ef_construction,
        )
        index_s = time.perf_counter() - started
        write_entry(
            tmp,
            index,
            chunks,
            np.arange(len(chunks), dtype=np.int64),
            {
                "key": key,
                **spec,
                "embedder": embedder.identity,
                "embeddings_key": embeddings.key,
                "embeddings_reused": embeddings.reused,
                "embed_s": embeddings.embed_s,
                **stats,
                "index_s": index_s,
                "build_s": embeddings.embed_s + index_s,
            },
        )
        del index

    def load(path: Path) -> ChunkIndex:
        return load_entry(path, key, chunks, embedder.dimension)

    chunk_index, reused = get_or_build(
        cache_root / "indexes" / key, build, load, lock_timeout_s=lock_timeout_s, what="index"
    )
    chunk_index.reused = reused
    if reused:
        logger.info("reusing cached index %s (%d chunks)", key[:12], len(chunks))
    return prepare_for_search(chunk_index, nprobe, ef_search, use_gpu)


def prepare_for_search(
    chunk_index: ChunkIndex, nprobe: int | None, ef_search: int | None, use_gpu: bool
) -> ChunkIndex:
    factory = chunk_index.manifest["factory"]
    chunk_index.search_params = apply_search_params(chunk_index.index, factory, nprobe, ef_search)
    if use_gpu:
        chunk_index.index = to_gpu(chunk_index.index, factory)
        chunk_index.use_gpu = True
    return chunk_index


def write_entry(
    folder: Path, index, chunks: list[Chunk], labels: np.ndarray, manifest: dict
) -> None:
    """Write the files of an index entry and a manifest with their sizes and checksums."""
    import faiss

    faiss.write_index(index, str(folder / INDEX_FILE))
    pause_point("index")  # test hook (rag/core/pause.py); a no-op in real runs
    with (folder / CHUNKS_FILE).open("w", encoding="utf-8") as handle:
        for chunk in chunks:
            handle.write(json.dumps(chunk.to_dict(), ensure_ascii=False) + "\n")
    np.save(folder / LABELS_FILE, np.asarray(labels, dtype=np.int64))
    files = {
        name: {"bytes": (folder / name).stat().st_size, "sha256": file_sha256(folder / name)}
        for name in (INDEX_FILE, CHUNKS_FILE, LABELS_FILE)
    }
    manifest = {
        **manifest,
        "dimension": int(index.d),
        "vectors": int(index.ntotal),
        "files": files,
    }
    (folder / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2))


def load_entry(path: Path, key: str, chunks: list[Chunk], dimension: int) -> ChunkIndex:
    """Load and verify an entry; ``CorruptEntryError`` says what did not match."""
    import faiss

    try:
        manifest = json.loads((path / MANIFEST_FILE).read_text())
        files = manifest["files"]
    except (OSError, ValueError, KeyError) as err:
        raise CorruptEntryError(f"manifest unreadable: {err}") from None
    if manifest.get("key") != key:
        raise CorruptEntryError(f"manifest key {manifest.get('key')!r} is not the entry's key")
    verify_files(path, files, "the manifest")
    try:
        index = faiss.read_index(str(path / INDEX_FILE))
        labels = np.load(path / LABELS_FILE)
    except (RuntimeError, OSError, ValueError) as err:
        raise CorruptEntryError(f"unreadable: {err}") from None
    if index.d != dimension or manifest.get("dimension") != dimension:
        raise CorruptEntryError(
            f"index dimension {index.d} (manifest {manifest.get('dimension')}) is not the "
            f"embedder's {dimension}"
        )
    if not index.ntotal == len(labels) == len(chunks) == manifest.get("vectors"):
        raise CorruptEntryError(
            f"{index.ntotal} vectors, {len(labels)} labels, {len(chunks)} chunks, manifest "
            f"{manifest.get('vectors')}"
        )
    identity = np.array_equal(labels, np.arange(len(labels)))
    return ChunkIndex(
        index=index,
        chunks=list(chunks),
        key=key,
        path=path,
        reused=True,
        build_s=float(manifest["build_s"]),
        manifest=manifest,
        labels=None if identity else labels,
    )


def search(
    chunk_index: ChunkIndex, query_vectors: np.ndarray, top_k: int
) -> list[list[tuple[int, float]]]:
    """Top-k (chunk position, score) per query row, best first. Scores are similarities (higher
    is better): inner products, or negated squared L2 distances for ``metric=l2``."""
    k = min(top_k, len(chunk_index.chunks))
    queries = np.ascontiguousarray(query_vectors, dtype=np.float32)
    scores, labels = chunk_index.index.search(queries, k)
    if chunk_index.manifest.get("metric") == "l2":
        scores = -scores
    positions = chunk_index.positions(labels)
    # tolist() converts whole rows at once: iterating numpy scalars cost ~5 µs per query, ~10%
    # of a batch-1 Flat search over 1,000 chunks (python -m bench --only overhead).
    return [
        [(i, s) for i, s in zip(row_ids, row_scores, strict=True) if i >= 0]
        for row_ids, row_scores in zip(positions.tolist(), scores.tolist(), strict=True)
    ]
