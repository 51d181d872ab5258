"""Chunking, embedding, the cached FAISS index and retrieval."""

from __future__ import annotations

import numpy as np
import pytest

from rag.core.types import Document
from rag.corpus.chunking import chunk_documents
from rag.retrieval.embedder import HashingEmbedder
from rag.retrieval.index import build_or_load_index
from rag.retrieval.retriever import Retriever

DOCS = [
    Document(
        "bio-1",
        "Velmora Quist",
        "Velmora Quist was born in Tarrowby in 1957. "
        "She works as a glassblower for Pelt Instruments.",
    ),
    Document(
        "bio-2", "Orlen Vask", "Orlen Vask was born in Munderby in 1961. He is a cartographer."
    ),
    Document("news-1", "Gazette", "The harbour of Skelwick reopened after the spring storms."),
]


def test_chunks_are_exact_slices_with_overlap():
    doc = Document("d", "t", " ".join(f"w{i}" for i in range(25)))
    chunks = chunk_documents([doc], chunk_words=10, overlap_words=3)
    assert [c.chunk_id for c in chunks] == ["d#0", "d#1", "d#2", "d#3"]
    for chunk in chunks:
        assert doc.text[chunk.char_start : chunk.char_end] == chunk.text
    assert chunks[0].text.split()[-3:] == chunks[1].text.split()[:3]
    assert chunks[-1].text.split()[-1] == "w24"


def test_chunking_rejects_overlap_not_below_window():
    with pytest.raises(ValueError, match="chunk_overlap_words"):
        chunk_documents(DOCS, chunk_words=5, overlap_words=5)


def test_hashing_embedder_is_normalised_and_deterministic():
    vectors = HashingEmbedder(dimension=64).embed(["a b c", "a b c", "x y"])
    assert vectors.shape == (3, 64)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0)
    assert np.array_equal(vectors[0], vectors[1])
    assert not np.array_equal(vectors[0], vectors[2])


def test_index_is_reused_only_for_identical_inputs(tmp_path):
    embedder = HashingEmbedder()
    chunks = chunk_documents(DOCS)
    first = build_or_load_index(chunks, embedder, tmp_path, progress=False)
    again = build_or_load_index(chunks, embedder, tmp_path, progress=False)
    assert not first.reused and again.reused and again.key == first.key
    assert again.build_s == pytest.approx(first.build_s)  # the original build time, for costing
    changed = chunk_documents([*DOCS[:2], Document("news-1", "Gazette", "Another text.")])
    other = build_or_load_index(changed, embedder, tmp_path, progress=False)
    assert not other.reused and other.key != first.key
    other_dim = build_or_load_index(chunks, HashingEmbedder(dimension=32), tmp_path, progress=False)
    assert not other_dim.reused
    assert not list(tmp_path.glob("indexes/.*tmp*"))  # no temp folder left behind


def test_retriever_finds_the_supporting_document(tmp_path):
    embedder = HashingEmbedder()
    index = build_or_load_index(chunk_documents(DOCS), embedder, tmp_path, progress=False)
    retrieval = Retriever(mode="dense", embedder=embedder, chunk_index=index, top_k=2).retrieve(
        "Where was Orlen Vask born?"
    )
    assert retrieval.doc_ids[0] == "bio-2"
    assert len(retrieval.chunks) == 2
    assert retrieval.scores[0] >= retrieval.scores[1]
    assert retrieval.embed_s > 0 and retrieval.search_s > 0


def test_top_k_larger_than_corpus_returns_everything(tmp_path):
    embedder = HashingEmbedder()
    index = build_or_load_index(chunk_documents(DOCS), embedder, tmp_path, progress=False)
    assert (
        len(
            Retriever(mode="dense", embedder=embedder, chunk_index=index, top_k=50)
            .retrieve("harbour")
            .chunks
        )
        == 3
    )
