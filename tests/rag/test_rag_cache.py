"""Content-addressed embedding and index caches: keys, corruption, locking, concurrency."""

from __future__ import annotations

import json
import logging
import multiprocessing
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

from rag.core.lock import CacheLockTimeout, file_lock
from rag.core.types import Chunk
from rag.retrieval.embedder import HashingEmbedder
from rag.retrieval.embeddings import cached_embeddings
from rag.retrieval.index import build_or_load_index, index_key, search


def make_chunks(n: int) -> list[Chunk]:
    rng = np.random.default_rng(1)
    chunks = []
    for i in range(n):
        text = " ".join(f"w{j:03d}" for j in rng.integers(0, 300, 10))
        chunks.append(Chunk(f"doc-{i:03d}#0", f"doc-{i:03d}", text, 0, len(text)))
    return chunks


CHUNKS = make_chunks(60)


class CountingEmbedder(HashingEmbedder):
    """A hashing embedder that leaves one marker file per embed call (visible across processes)
    and can be slowed down, to make concurrent builds overlap."""

    def __init__(self, marker_dir: Path, delay_s: float = 0.0, dimension: int = 32):
        super().__init__(dimension=dimension)
        self.marker_dir, self.delay_s = marker_dir, delay_s

    def embed(self, texts, progress=False):
        self.marker_dir.mkdir(parents=True, exist_ok=True)
        (self.marker_dir / uuid.uuid4().hex).touch()
        time.sleep(self.delay_s)
        return super().embed(texts, progress)

    def calls(self) -> int:
        return len(list(self.marker_dir.glob("*"))) if self.marker_dir.exists() else 0


class LyingEmbedder(HashingEmbedder):
    """Claims the identity of a 32-d hashing embedder while producing 16-d vectors."""

    @property
    def identity(self) -> str:
        return "hashing:v1:dim=32"


def test_embeddings_are_shared_across_index_types_and_keys_track_inputs(tmp_path):
    embedder = CountingEmbedder(tmp_path / "calls")
    flat = build_or_load_index(CHUNKS, embedder, tmp_path, "Flat", False)
    hnsw = build_or_load_index(CHUNKS, embedder, tmp_path, "HNSW16", False, ef_search=20)
    assert embedder.calls() == 1  # the second index type reused the embeddings entry
    assert flat.key != hnsw.key and hnsw.manifest["embeddings_reused"] is True
    knobs = build_or_load_index(CHUNKS, embedder, tmp_path, "HNSW16", False, ef_search=99)
    assert knobs.reused and knobs.key == hnsw.key  # search knobs are not part of the key
    base = index_key(CHUNKS, embedder, "Flat")
    edited = [*CHUNKS[:-1], Chunk("doc-059#0", "doc-059", "changed text", 0, 12)]
    assert index_key(edited, embedder, "Flat") != base
    assert index_key(CHUNKS, HashingEmbedder(dimension=64), "Flat") != base
    assert index_key(CHUNKS, embedder, "Flat", metric="l2") != base
    assert index_key(CHUNKS, embedder, "Flat", train_size=100) != base
    renamed = [Chunk("x#0", "x", c.text, c.char_start, c.char_end) for c in CHUNKS]
    assert index_key(renamed, embedder, "Flat") != base  # ids are stored in the entry
    other = build_or_load_index(edited, embedder, tmp_path, "Flat", False)
    assert not other.reused and embedder.calls() == 2


def test_truncated_index_file_is_detected_removed_and_rebuilt(tmp_path, caplog):
    embedder = HashingEmbedder(dimension=32)
    first = build_or_load_index(CHUNKS, embedder, tmp_path, "Flat", False)
    index_file = first.path / "index.faiss"
    with index_file.open("r+b") as handle:
        handle.truncate(index_file.stat().st_size // 2)
    with caplog.at_level(logging.WARNING, logger="rag.core.store"):
        again = build_or_load_index(CHUNKS, embedder, tmp_path, "Flat", False)
    assert not again.reused and again.key == first.key
    assert "index.faiss is missing or has the wrong size" in caplog.text
    assert "removing corrupt index" in caplog.text
    assert again.manifest["embeddings_reused"] is True  # only the broken part was rebuilt
    query = embedder.embed([CHUNKS[3].text])
    assert search(again, query, 1)[0][0][0] == 3
    assert not list((tmp_path / "indexes").glob(".*"))  # no temp or trash folder left


def test_tampered_manifest_and_flipped_bytes_are_not_trusted(tmp_path, caplog):
    embedder = HashingEmbedder(dimension=32)
    first = build_or_load_index(CHUNKS, embedder, tmp_path, "Flat", False)
    manifest = json.loads((first.path / "manifest.json").read_text())
    (first.path / "manifest.json").write_text(json.dumps({**manifest, "key": "0" * 64}))
    with caplog.at_level(logging.WARNING, logger="rag.core.store"):
        assert not build_or_load_index(CHUNKS, embedder, tmp_path, "Flat", False).reused
    assert "manifest key" in caplog.text
    index_file = first.path / "index.faiss"
    data = bytearray(index_file.read_bytes())
    data[-5] ^= 0xFF  # same size, one vector byte changed: only the checksum can tell
    index_file.write_bytes(bytes(data))
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="rag.core.store"):
        assert not build_or_load_index(CHUNKS, embedder, tmp_path, "Flat", False).reused
    assert "does not match the sha256" in caplog.text


def test_dimension_mismatch_between_cache_and_embedder_is_rebuilt(tmp_path, caplog):
    honest = HashingEmbedder(dimension=32)
    first = build_or_load_index(CHUNKS, honest, tmp_path, "Flat", False)
    liar = LyingEmbedder(dimension=16)
    assert index_key(CHUNKS, liar, "Flat") == first.key  # same key, different vectors
    with caplog.at_level(logging.WARNING, logger="rag.core.store"):
        rebuilt = build_or_load_index(CHUNKS, liar, tmp_path, "Flat", False)
    assert "index dimension 32" in caplog.text and "embedder's 16" in caplog.text
    assert not rebuilt.reused and rebuilt.index.d == 16


def test_truncated_embeddings_are_re_embedded(tmp_path, caplog):
    embedder = CountingEmbedder(tmp_path / "calls")
    texts = [c.text for c in CHUNKS]
    first = cached_embeddings(texts, embedder, tmp_path, progress=False)
    assert not first.reused and np.array_equal(np.load(first.path), embedder.embed(texts))
    with first.path.open("r+b") as handle:
        handle.truncate(first.path.stat().st_size - 100)
    calls = embedder.calls()
    with caplog.at_level(logging.WARNING, logger="rag.core.store"):
        again = cached_embeddings(texts, embedder, tmp_path, progress=False)
    assert "truncated" in caplog.text and not again.reused
    assert embedder.calls() == calls + 1
    assert np.array_equal(np.load(again.path), embedder.embed(texts))


def test_lock_timeout_names_the_lock_and_the_setting(tmp_path):
    embedder = HashingEmbedder(dimension=32)
    key = index_key(CHUNKS, embedder, "Flat")
    lock = tmp_path / "indexes" / f"{key}.lock"
    with file_lock(lock, timeout_s=1.0):  # another holder (a second open file description)
        started = time.monotonic()
        with pytest.raises(CacheLockTimeout) as err:
            build_or_load_index(CHUNKS, embedder, tmp_path, "Flat", False, lock_timeout_s=0.3)
    assert time.monotonic() - started >= 0.3
    assert str(lock) in str(err.value) and "retriever.lock_timeout_s" in str(err.value)
    assert build_or_load_index(CHUNKS, embedder, tmp_path, "Flat", False, lock_timeout_s=0.3)


def _build_in_child(cache_root: str, marker_dir: str, barrier, results) -> None:
    embedder = CountingEmbedder(Path(marker_dir), delay_s=1.0)
    barrier.wait()
    started = time.monotonic()
    index = build_or_load_index(CHUNKS, embedder, Path(cache_root), "Flat", False)
    results.put((index.key, index.reused, str(index.path), time.monotonic() - started))


def test_two_processes_building_the_same_key_build_it_once(tmp_path):
    context = multiprocessing.get_context("spawn")  # no fork of a process holding OpenMP state
    barrier, results = context.Barrier(2), context.Queue()
    args = (str(tmp_path / "cache"), str(tmp_path / "calls"), barrier, results)
    processes = [context.Process(target=_build_in_child, args=args) for _ in range(2)]
    for process in processes:
        process.start()
    outcomes = [results.get(timeout=60) for _ in processes]
    for process in processes:
        process.join(timeout=30)
        assert process.exitcode == 0
    assert len(list((tmp_path / "calls").glob("*"))) == 1  # embedded once, by one process
    assert {key for key, *_ in outcomes} == {outcomes[0][0]}
    assert {path for *_, path, _ in outcomes} == {outcomes[0][2]}
    assert sorted(reused for _, reused, *_ in outcomes) == [False, True]
    waiter_s = next(seconds for _, reused, _, seconds in outcomes if reused)
    assert waiter_s > 0.5  # it waited on the lock while the other one embedded (1 s)
    entries = [p for p in (tmp_path / "cache" / "indexes").iterdir() if p.is_dir()]
    assert len(entries) == 1 and not entries[0].name.startswith(".")
