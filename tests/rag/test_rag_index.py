"""FAISS indexes from factory strings: training, clear errors, search knobs, metrics, streaming."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from rag.core.types import Chunk
from rag.retrieval.embedder import HashingEmbedder
from rag.retrieval.faiss_build import (
    IndexSpecError,
    IndexTrainingError,
    build_streaming,
    gpu_count,
    training_requirement,
)
from rag.retrieval.index import build_or_load_index, search
from rag.retrieval.vectors import NpyWriter, iter_rows, npy_shape, read_rows

DIM = 64


def make_chunks(n: int, seed: int = 0) -> list[Chunk]:
    """n one-chunk documents of 12 words drawn from a 400-word made-up vocabulary."""
    rng = np.random.default_rng(seed)
    vocabulary = [f"w{i:03d}" for i in range(400)]
    chunks = []
    for i in range(n):
        text = " ".join(rng.choice(vocabulary, 12))
        chunks.append(Chunk(f"doc-{i:04d}#0", f"doc-{i:04d}", text, 0, len(text)))
    return chunks


CHUNKS = make_chunks(300)
EMBEDDER = HashingEmbedder(dimension=DIM)


def exact_top(chunks: list[Chunk], query: str, k: int) -> list[int]:
    vectors = EMBEDDER.embed([c.text for c in chunks])
    scores = vectors @ EMBEDDER.embed([query])[0]
    return sorted(range(len(chunks)), key=lambda i: (-scores[i], i))[:k]


@pytest.mark.parametrize(
    "factory", ["Flat", "HNSW32", "IVF8,Flat", "IVF8,PQ8x4", "PQ8x4", "IVF8,SQ8"]
)
def test_every_factory_builds_and_finds_the_document_itself(tmp_path, factory):
    index = build_or_load_index(CHUNKS, EMBEDDER, tmp_path, factory, progress=False, nprobe=8)
    assert index.index.ntotal == 300 and index.index.is_trained
    assert index.manifest["factory"] == factory
    hits = search(index, EMBEDDER.embed([CHUNKS[17].text, CHUNKS[250].text]), 5)
    # a document's own text is its nearest neighbour (approximate indexes included: nprobe=8
    # visits every list; PQ codes keep the self-match on top for these well-separated texts)
    assert [row[0][0] for row in hits] == [17, 250]
    assert all(len(row) == 5 for row in hits)


def test_invalid_factory_string_names_it(tmp_path):
    with pytest.raises(IndexSpecError, match=r"'IVF12,Bogus'.*not a usable FAISS index"):
        build_or_load_index(CHUNKS, EMBEDDER, tmp_path, "IVF12,Bogus", progress=False)
    with pytest.raises(IndexSpecError, match=r"'PQ7'.*multiple of the number of subquantizers"):
        build_or_load_index(CHUNKS, EMBEDDER, tmp_path, "PQ7", progress=False)
    with pytest.raises(IndexSpecError, match="retriever.metric='cosine'"):
        build_or_load_index(CHUNKS, EMBEDDER, tmp_path, "Flat", False, metric="cosine")
    assert not (tmp_path / "embeddings").exists()  # refused before embedding anything


def test_too_few_vectors_to_train_gives_the_numbers(tmp_path):
    with pytest.raises(IndexTrainingError) as err:
        build_or_load_index(CHUNKS[:40], EMBEDDER, tmp_path, "IVF1024,Flat", progress=False)
    message = str(err.value)
    assert "'IVF1024,Flat'" in message and "at least 1024 vectors" in message
    assert "only 40" in message and "about 39936 recommended" in message
    with pytest.raises(IndexTrainingError, match="at least 256 vectors"):
        build_or_load_index(CHUNKS[:100], EMBEDDER, tmp_path, "IVF4,PQ8", progress=False)


def test_training_requirements_by_index_type():
    import faiss

    def requirement(factory: str) -> tuple[int, int]:
        return training_requirement(faiss.index_factory(DIM, factory))

    assert requirement("Flat") == (0, 0) and requirement("HNSW32") == (0, 0)
    assert requirement("IVF100,Flat") == (100, 3900)
    assert requirement("IVF16,PQ8") == (256, 9984)  # 8-bit codebooks: 256 centroids each
    assert requirement("OPQ8,IVF512,PQ8") == (512, 19968)


def test_search_knobs_are_applied_and_inapplicable_ones_ignored(tmp_path, caplog):
    import faiss

    ivf = build_or_load_index(CHUNKS, EMBEDDER, tmp_path, "IVF8,Flat", False, nprobe=3)
    assert faiss.extract_index_ivf(ivf.index).nprobe == 3 and ivf.search_params == {"nprobe": 3}
    hnsw = build_or_load_index(CHUNKS, EMBEDDER, tmp_path, "HNSW16", False, ef_search=77)
    assert faiss.downcast_index(hnsw.index).hnsw.efSearch == 77
    with caplog.at_level(logging.WARNING, logger="rag.retrieval.faiss_build"):
        flat = build_or_load_index(CHUNKS, EMBEDDER, tmp_path, "Flat", False, nprobe=4)
    assert flat.search_params == {} and "retriever.nprobe=4 does not apply" in caplog.text
    with pytest.raises(IndexSpecError, match="retriever.ef_search must be >= 1"):
        build_or_load_index(CHUNKS, EMBEDDER, tmp_path, "HNSW16", False, ef_search=0)


def test_hnsw_build_breadth_is_applied_and_part_of_the_cache_key(tmp_path, caplog):
    import faiss

    default = build_or_load_index(CHUNKS, EMBEDDER, tmp_path, "HNSW16", False)
    wide = build_or_load_index(CHUNKS, EMBEDDER, tmp_path, "HNSW16", False, ef_construction=97)
    assert wide.key != default.key and not wide.reused
    assert "ef_construction" not in default.manifest and wide.manifest["ef_construction"] == 97
    assert faiss.downcast_index(default.index).hnsw.efConstruction == 40  # FAISS's default
    assert faiss.downcast_index(wide.index).hnsw.efConstruction == 97
    again = build_or_load_index(CHUNKS, EMBEDDER, tmp_path, "HNSW16", False, ef_construction=97)
    assert again.reused and faiss.downcast_index(again.index).hnsw.efConstruction == 97
    with caplog.at_level(logging.WARNING, logger="rag.retrieval.faiss_build"):
        build_or_load_index(CHUNKS, EMBEDDER, tmp_path, "Flat", False, ef_construction=64)
    assert "retriever.ef_construction=64 does not apply to 'Flat'" in caplog.text
    with pytest.raises(IndexSpecError, match="retriever.ef_construction must be >= 1"):
        build_or_load_index(CHUNKS, EMBEDDER, tmp_path, "HNSW16", False, ef_construction=0)


def test_l2_metric_ranks_like_inner_product_on_normalised_vectors(tmp_path):
    ip = build_or_load_index(CHUNKS, EMBEDDER, tmp_path, "Flat", False)
    l2 = build_or_load_index(CHUNKS, EMBEDDER, tmp_path, "Flat", False, metric="l2")
    assert ip.key != l2.key and ip.manifest["embeddings_key"] == l2.manifest["embeddings_key"]
    query = EMBEDDER.embed([CHUNKS[42].text])
    ip_hits, l2_hits = search(ip, query, 10)[0], search(l2, query, 10)[0]
    assert ip_hits[0][0] == l2_hits[0][0] == 42
    # on unit vectors ||q - x||^2 = 2 - 2 q.x, and search() returns the negated distance, so
    # the score sequences correspond exactly (equal scores may list their ids in any order)
    vectors = EMBEDDER.embed([c.text for c in CHUNKS])
    for (_, similarity), (i, negated) in zip(ip_hits, l2_hits, strict=True):
        assert negated == pytest.approx(2 * similarity - 2, abs=1e-5)
        assert negated == pytest.approx(2 * float(vectors[i] @ query[0]) - 2, abs=1e-5)


def test_streaming_build_matches_exact_search_and_reads_in_batches(tmp_path):
    vectors = EMBEDDER.embed([c.text for c in CHUNKS])
    path = tmp_path / "v.npy"
    with NpyWriter(path, len(vectors), DIM) as writer:
        for start in range(0, len(vectors), 7):
            writer.write(vectors[start : start + 7])
        writer.close()
    assert np.array_equal(np.load(path), vectors)  # a standard .npy file
    assert [len(b) for _, b in iter_rows(path, 128)] == [128, 128, 44]
    rows = np.array([299, 0, 150, 3])
    assert np.array_equal(read_rows(path, rows, batch_rows=16), vectors[rows])
    index = build_streaming(path, "Flat", batch_rows=50, progress=False)
    _, ids = index.search(vectors[:1], 5)
    assert ids[0].tolist() == exact_top(CHUNKS, CHUNKS[0].text, 5)


def test_truncated_npy_is_detected(tmp_path):
    path = tmp_path / "v.npy"
    with NpyWriter(path, 10, 4) as writer:
        writer.write(np.ones((10, 4), dtype=np.float32))
        writer.close()
    assert npy_shape(path)[0] == (10, 4)
    with path.open("r+b") as handle:
        handle.truncate(path.stat().st_size - 4)
    with pytest.raises(ValueError, match="truncated"):
        npy_shape(path)
    with pytest.raises(ValueError, match="wrote 3 rows, announced 5"):
        with NpyWriter(tmp_path / "short.npy", 5, 4) as writer:
            writer.write(np.ones((3, 4), dtype=np.float32))
            writer.close()


@pytest.mark.skipif(gpu_count() > 0, reason="checks the error raised without a GPU")
def test_use_gpu_without_gpu_faiss_is_a_clear_error(tmp_path):
    with pytest.raises(IndexSpecError, match="retriever.use_gpu=true but this FAISS build"):
        build_or_load_index(CHUNKS, EMBEDDER, tmp_path, "Flat", False, use_gpu=True)


@pytest.mark.skipif(gpu_count() == 0, reason="needs GPU FAISS and a CUDA device")
def test_gpu_index_searches_like_the_cpu_one(tmp_path):
    cpu = build_or_load_index(CHUNKS, EMBEDDER, tmp_path, "IVF8,Flat", False, nprobe=8)
    gpu = build_or_load_index(
        CHUNKS, EMBEDDER, tmp_path, "IVF8,Flat", False, nprobe=8, use_gpu=True
    )
    query = EMBEDDER.embed([CHUNKS[5].text])
    assert gpu.use_gpu and gpu.key == cpu.key  # the cached file is the same CPU index
    assert [i for i, _ in search(gpu, query, 5)[0]] == [i for i, _ in search(cpu, query, 5)[0]]
