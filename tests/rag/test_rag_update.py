"""Incremental index updates: add, replace and remove documents, per index type."""

from __future__ import annotations

import numpy as np
import pytest

from rag.core.types import Chunk
from rag.retrieval.embedder import HashingEmbedder
from rag.retrieval.index import build_or_load_index, search
from rag.retrieval.update import update_index


class CountingEmbedder(HashingEmbedder):
    def __init__(self, dimension: int = 32):
        super().__init__(dimension=dimension)
        self.texts = 0

    def embed(self, texts, progress=False):
        self.texts += len(texts)
        return super().embed(texts, progress)


def doc_chunk(doc: int, text: str) -> Chunk:
    return Chunk(f"doc-{doc:03d}#0", f"doc-{doc:03d}", text, 0, len(text))


rng = np.random.default_rng(2)
CHUNKS = [doc_chunk(i, " ".join(f"w{j:03d}" for j in rng.integers(0, 300, 10))) for i in range(80)]
REPLACEMENT = doc_chunk(5, "entirely new words about glassblowing in tarrowby")
ADDITION = doc_chunk(100, "a brand new document on cartography in munderby")


def nearest_doc(chunk_index, embedder, text: str) -> str:
    position = search(chunk_index, embedder.embed([text]), 1)[0][0][0]
    return chunk_index.chunks[position].doc_id


def test_flat_update_embeds_only_new_chunks_and_equals_a_fresh_build(tmp_path):
    embedder = CountingEmbedder()
    base = build_or_load_index(CHUNKS, embedder, tmp_path, "Flat", False)
    embedder.texts = 0
    update = update_index(
        base,
        embedder,
        tmp_path,
        add_chunks=[REPLACEMENT, ADDITION],
        remove_doc_ids=["doc-010"],
        progress=False,
    )
    assert update.strategy == "compact" and update.key != base.key
    assert (update.vectors_embedded, update.vectors_removed, update.vectors_added) == (2, 2, 2)
    assert embedder.texts == 2 and update.seconds > 0 and update.embed_s > 0
    new = update.chunk_index
    expected = [c for c in CHUNKS if c.doc_id not in ("doc-005", "doc-010")]
    assert new.chunks == [*expected, REPLACEMENT, ADDITION]
    fresh = build_or_load_index(new.chunks, HashingEmbedder(32), tmp_path / "fresh", "Flat", False)
    assert np.array_equal(new.index.reconstruct_n(0, 80), fresh.index.reconstruct_n(0, 80))
    assert nearest_doc(new, embedder, REPLACEMENT.text) == "doc-005"
    assert nearest_doc(new, embedder, ADDITION.text) == "doc-100"
    assert nearest_doc(base, embedder, CHUNKS[10].text) == "doc-010"  # the parent is intact
    embedder.texts = 0
    again = update_index(
        base, embedder, tmp_path, add_chunks=[REPLACEMENT, ADDITION], remove_doc_ids=["doc-010"]
    )
    assert again.reused and again.key == update.key and again.vectors_embedded == 0
    assert embedder.texts == 0


def test_ivf_update_removes_and_adds_by_label(tmp_path):
    import faiss

    embedder = CountingEmbedder()
    base = build_or_load_index(CHUNKS, embedder, tmp_path, "IVF4,Flat", False, nprobe=4)
    update = update_index(
        base, embedder, tmp_path, add_chunks=[REPLACEMENT, ADDITION], progress=False
    )
    new = update.chunk_index
    assert update.strategy == "ids" and update.vectors_embedded == 2
    assert faiss.extract_index_ivf(new.index).nprobe == 4  # search knobs carried over
    # labels are stable: doc-005's old label 5 is gone, the two new chunks get 80 and 81
    assert new.labels.tolist() == [i for i in range(80) if i != 5] + [80, 81]
    assert nearest_doc(new, embedder, REPLACEMENT.text) == "doc-005"
    assert nearest_doc(new, embedder, ADDITION.text) == "doc-100"
    old_text_hits = search(new, embedder.embed([CHUNKS[5].text]), 100)[0]  # every vector
    assert all(new.chunks[i].text != CHUNKS[5].text for i, _ in old_text_hits)
    assert len(old_text_hits) == new.index.ntotal == 81
    reloaded = update_index(base, embedder, tmp_path, add_chunks=[REPLACEMENT, ADDITION])
    assert reloaded.reused and np.array_equal(reloaded.chunk_index.labels, new.labels)


@pytest.mark.parametrize(("remove", "strategy"), [([], "append"), (["doc-010"], "rebuild")])
def test_hnsw_appends_or_rebuilds(tmp_path, remove, strategy):
    embedder = CountingEmbedder()
    base = build_or_load_index(CHUNKS, embedder, tmp_path, "HNSW16", False, ef_search=64)
    embedder.texts = 0
    update = update_index(
        base, embedder, tmp_path, add_chunks=[ADDITION], remove_doc_ids=remove, progress=False
    )
    assert update.strategy == strategy and embedder.texts == update.vectors_embedded == 1
    new = update.chunk_index
    assert new.index.ntotal == len(new.chunks) == 81 - len(remove)
    assert nearest_doc(new, embedder, ADDITION.text) == "doc-100"
    assert all(c.doc_id != "doc-010" for c in new.chunks) == bool(remove)


def test_empty_and_invalid_updates(tmp_path):
    embedder = CountingEmbedder()
    base = build_or_load_index(CHUNKS, embedder, tmp_path, "Flat", False)
    nothing = update_index(base, embedder, tmp_path)
    assert nothing.strategy == "unchanged" and nothing.key == base.key
    duplicate = Chunk("doc-001#0", "doc-999", "x", 0, 1)
    with pytest.raises(ValueError, match="chunk id 'doc-001#0' occurs twice"):
        update_index(base, embedder, tmp_path, add_chunks=[duplicate])
    with pytest.raises(ValueError, match="was built with the embedder hashing:v1:dim=32"):
        update_index(base, HashingEmbedder(dimension=64), tmp_path, add_chunks=[ADDITION])
    everything = sorted({c.doc_id for c in CHUNKS})
    with pytest.raises(ValueError, match="remove every chunk"):
        update_index(base, embedder, tmp_path, remove_doc_ids=everything)
