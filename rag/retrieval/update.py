"""Add or replace documents in an existing index without re-embedding the unchanged ones.

A document in ``add_chunks`` replaces every chunk of that ``doc_id`` already indexed; documents
in ``remove_doc_ids`` are dropped. Only the new chunks are embedded: the kept vectors are copied
from the parent's embeddings entry. The approach depends on the index type:

- ``ids`` (IVF family, also under OPQ/PCA transforms; IDMap): ``remove_ids`` by label, then
  ``add_with_ids`` with fresh labels. Labels are stable, so ``labels.npy`` maps them to chunks.
  The coarse centroids and PQ codebooks are NOT retrained: after large changes the data drifts
  from the training sample; rebuild from scratch (a normal build) now and then.
- ``compact`` (Flat, PQ, SQ: ``IndexFlatCodes``): ``remove_ids`` compacts the storage keeping
  order, then ``add`` appends, so label == position still holds.
- ``append`` (HNSW and other types without removal) when nothing is removed: ``add``.
- ``rebuild`` (HNSW and other types without removal) when something is removed: the index is
  rebuilt (trained again if needed) from the updated embeddings; still only new chunks are
  embedded.

The result is a new cache entry whose key hashes the parent key and the change, so a cache never
serves an index built from different chunks, and the same update asked twice is reused.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rag.core.cache import content_key
from rag.core.store import DEFAULT_LOCK_TIMEOUT_S, get_or_build
from rag.core.types import Chunk
from rag.retrieval.embedder import Embedder
from rag.retrieval.embeddings import (
    DEFAULT_BATCH_ROWS,
    Embeddings,
    embed_in_batches,
    store_embeddings,
)
from rag.retrieval.faiss_build import build_streaming, inner_index, make_index
from rag.retrieval.index import INDEX_FILE, ChunkIndex, load_entry, prepare_for_search, write_entry
from rag.retrieval.vectors import NpyWriter, iter_rows, read_rows

logger = logging.getLogger(__name__)


@dataclass
class IndexUpdate:
    chunk_index: ChunkIndex  # the updated index, ready to search (same search knobs as before)
    key: str  # its content key (new unless the change is empty)
    strategy: str  # ids | compact | append | rebuild | unchanged
    seconds: float  # wall time of this call (reading, embedding, index work, writing)
    embed_s: float  # of which embedding new texts (0 when the entry was cached)
    vectors_embedded: int  # texts embedded by this call (0 on a cache hit)
    vectors_removed: int
    vectors_added: int
    reused: bool

    def to_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "chunk_index"}


def update_strategy(index, removing: bool) -> str:
    import faiss

    inner = inner_index(index)
    top = faiss.downcast_index(index)
    if isinstance(top, faiss.IndexIVF | faiss.IndexIDMap | faiss.IndexIDMap2) or (
        isinstance(top, faiss.IndexPreTransform) and isinstance(inner, faiss.IndexIVF)
    ):
        return "ids"
    if isinstance(top, faiss.IndexFlatCodes):
        return "compact"
    return "rebuild" if removing else "append"


def update_index(
    chunk_index: ChunkIndex,
    embedder: Embedder,
    cache_root: Path,
    *,
    add_chunks: Sequence[Chunk] = (),
    remove_doc_ids: Iterable[str] = (),
    progress: bool = True,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    lock_timeout_s: float = DEFAULT_LOCK_TIMEOUT_S,
) -> IndexUpdate:
    """A new index equal to ``chunk_index`` with documents added, replaced or removed."""
    started = time.perf_counter()
    old, manifest = chunk_index, chunk_index.manifest
    if manifest.get("embedder") != embedder.identity:
        raise ValueError(
            f"the index {old.key[:12]} was built with the embedder {manifest.get('embedder')}, "
            f"not {embedder.identity}: build a new index instead of updating this one"
        )
    add_chunks = list(add_chunks)
    replaced = {c.doc_id for c in add_chunks} | set(remove_doc_ids)
    missing = set(remove_doc_ids) - {c.doc_id for c in old.chunks}
    if missing:
        logger.warning("documents to remove are not in the index: %s", sorted(missing)[:10])
    removed = [i for i, c in enumerate(old.chunks) if c.doc_id in replaced]
    kept = [i for i, c in enumerate(old.chunks) if c.doc_id not in replaced]
    new_chunks = [old.chunks[i] for i in kept] + add_chunks
    _check_unique(new_chunks)
    if not removed and not add_chunks:
        return IndexUpdate(old, old.key, "unchanged", 0.0, 0.0, 0, 0, 0, True)
    if not new_chunks:
        raise ValueError("the update would remove every chunk; build a new index instead")
    counters = {"embedded": 0, "embed_s": 0.0}

    def embed_into(writer: NpyWriter, texts: list[str]) -> None:
        began = time.perf_counter()
        embed_in_batches(texts, embedder, writer, batch_rows, progress, desc="embedding update")
        counters["embedded"] += len(texts)
        counters["embed_s"] += time.perf_counter() - began

    def refill_parent(writer: NpyWriter) -> dict:  # only if the parent entry was deleted
        embed_into(writer, [c.text for c in old.chunks])
        return {}

    parent = store_embeddings(
        cache_root,
        manifest["embeddings_key"],
        len(old.chunks),
        embedder,
        refill_parent,
        lock_timeout_s,
    )
    change = (
        [old.chunks[i].chunk_id for i in removed],
        [(c.chunk_id, c.doc_id, c.char_start, c.char_end, c.text) for c in add_chunks],
    )
    removed_rows = np.asarray(removed, dtype=np.int64)

    def fill(writer: NpyWriter) -> dict:
        drop = np.zeros(len(old.chunks), dtype=bool)
        drop[removed_rows] = True
        for first, batch in iter_rows(parent.path, batch_rows):
            writer.write(batch[~drop[first : first + len(batch)]])
        embed_into(writer, [c.text for c in add_chunks])
        return {"parent": parent.key, "embedded": len(add_chunks)}

    updated = store_embeddings(
        cache_root,
        content_key("embeddings-update", parent.key, change, embedder.identity),
        len(new_chunks),
        embedder,
        fill,
        lock_timeout_s,
    )
    key = content_key("index-update", old.key, change, updated.key)
    empty = make_index(manifest["factory"], embedder.dimension, manifest["metric"])
    strategy = update_strategy(empty, bool(removed))

    def build(tmp: Path) -> None:
        began = time.perf_counter()
        index, labels = _apply(old, strategy, removed_rows, kept, updated, len(add_chunks))
        update_s = time.perf_counter() - began
        write_entry(
            tmp,
            index,
            new_chunks,
            labels,
            {
                **{k: manifest[k] for k in ("factory", "metric", "train_size", "seed", "faiss")},
                "key": key,
                "embedder": embedder.identity,
                "embeddings_key": updated.key,
                "parent_key": old.key,
                "update_strategy": strategy,
                "update_embed_s": updated.embed_s,  # copying kept rows + embedding new ones
                "update_s": update_s,
                "build_s": float(manifest["build_s"]) + updated.embed_s + update_s,
            },
        )

    new_index, reused = get_or_build(
        cache_root / "indexes" / key,
        build,
        lambda path: load_entry(path, key, new_chunks, embedder.dimension),
        lock_timeout_s=lock_timeout_s,
        what="index",
    )
    new_index.reused = reused
    nprobe, ef_search = old.search_params.get("nprobe"), old.search_params.get("efSearch")
    prepare_for_search(new_index, nprobe, ef_search, old.use_gpu)
    return IndexUpdate(
        chunk_index=new_index,
        key=key,
        strategy=strategy,
        seconds=time.perf_counter() - started,
        embed_s=counters["embed_s"],
        vectors_embedded=counters["embedded"],
        vectors_removed=len(removed),
        vectors_added=len(add_chunks),
        reused=reused,
    )


def _apply(
    old: ChunkIndex,
    strategy: str,
    removed: np.ndarray,
    kept: list[int],
    updated: Embeddings,
    n_added: int,
):
    """The updated CPU index and the label of each new position."""
    old_labels = old.labels if old.labels is not None else np.arange(len(old.chunks))
    if strategy == "rebuild":
        m = old.manifest
        index = build_streaming(
            updated.path, m["factory"], m["metric"], train_size=m["train_size"], seed=m["seed"]
        )
        return index, np.arange(updated.count, dtype=np.int64)
    index = _read_cpu_index(old)
    added = read_rows(updated.path, np.arange(len(kept), len(kept) + n_added))
    if strategy == "ids":
        if len(removed):
            index.remove_ids(np.ascontiguousarray(old_labels[removed], dtype=np.int64))
        start = int(old_labels.max(initial=-1)) + 1
        new_labels = np.arange(start, start + n_added, dtype=np.int64)
        if n_added:
            index.add_with_ids(added, new_labels)
        return index, np.concatenate([old_labels[kept], new_labels])
    if len(removed):  # compact: storage keeps its order, positions close up
        index.remove_ids(np.ascontiguousarray(removed, dtype=np.int64))
    if n_added:
        index.add(added)
    return index, np.arange(len(kept) + n_added, dtype=np.int64)


def _read_cpu_index(chunk_index: ChunkIndex):
    import faiss

    return faiss.read_index(str(chunk_index.path / INDEX_FILE))


def _check_unique(chunks: list[Chunk]) -> None:
    seen: set[str] = set()
    for chunk in chunks:
        if chunk.chunk_id in seen:
            raise ValueError(f"chunk id {chunk.chunk_id!r} occurs twice after the update")
        seen.add(chunk.chunk_id)
