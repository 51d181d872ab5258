"""Top-k retrieval: dense (FAISS), lexical (BM25) or hybrid (both, fused by reciprocal rank),
optionally re-ranked by a cross-encoder, with per-stage timings for every question.

The first stage fetches ``candidates`` chunks from each retriever when they are fused or
re-ranked (``top_k`` otherwise); the answer keeps the best ``top_k``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rag.core.types import Chunk
from rag.retrieval.bm25 import BM25Index
from rag.retrieval.embedder import Embedder
from rag.retrieval.fusion import RRF_K, reciprocal_rank_fusion
from rag.retrieval.index import ChunkIndex, build_or_load_index, search
from rag.retrieval.rerank import CrossEncoderReranker, Reranker
from rag.retrieval.settings import RetrievalSettings

MODES = ("dense", "bm25", "hybrid")


@dataclass
class Retrieval:
    chunks: list[Chunk]
    scores: list[float]  # of the last stage: similarity, BM25, RRF or cross-encoder score
    embed_s: float = 0.0  # query embedding
    search_s: float = 0.0  # first stage in all: dense_search_s + bm25_search_s + fusion_s
    dense_search_s: float = 0.0
    bm25_search_s: float = 0.0
    fusion_s: float = 0.0
    rerank_s: float = 0.0
    mode: str = "dense"

    @property
    def total_s(self) -> float:
        return self.embed_s + self.search_s + self.rerank_s

    @property
    def doc_ids(self) -> list[str]:
        return [c.doc_id for c in self.chunks]

    @property
    def chunk_ids(self) -> list[str]:
        return [c.chunk_id for c in self.chunks]

    def timings(self) -> dict[str, float]:
        names = ("embed_s", "dense_search_s", "bm25_search_s", "fusion_s", "search_s", "rerank_s")
        return {**{name: getattr(self, name) for name in names}, "total_s": self.total_s}


@dataclass
class Retriever:
    mode: str = "dense"
    embedder: Embedder | None = None
    chunk_index: ChunkIndex | None = None
    bm25: BM25Index | None = None
    reranker: Reranker | None = None
    top_k: int = 3
    candidates: int = 20
    rrf_k: float = RRF_K
    bm25_weight: float = 1.0
    setup: dict[str, Any] = field(default_factory=dict)  # one-time build figures

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"retriever.mode={self.mode!r} must be one of {', '.join(MODES)}")
        if self.top_k < 1:
            raise ValueError(f"retriever.top_k must be >= 1, got {self.top_k}")
        if self.candidates < 1:
            raise ValueError(f"retriever.candidates must be >= 1, got {self.candidates}")
        if self.bm25_weight < 0:
            raise ValueError(f"retriever.bm25_weight must be >= 0, got {self.bm25_weight}")
        if self.mode != "bm25" and (self.embedder is None or self.chunk_index is None):
            raise ValueError(f"retriever.mode={self.mode} needs an embedder and a FAISS index")
        if self.mode != "dense" and self.bm25 is None:
            raise ValueError(f"retriever.mode={self.mode} needs a BM25 index")
        if self.mode == "hybrid" and self.bm25.size != len(self.chunk_index.chunks):
            raise ValueError("the BM25 and FAISS indexes must cover the same chunks")

    @property
    def chunks(self) -> list[Chunk]:
        return self.chunk_index.chunks if self.chunk_index is not None else self.bm25.chunks

    def retrieve(self, question: str) -> Retrieval:
        depth = self.top_k
        if self.mode == "hybrid" or self.reranker is not None:
            depth = max(self.candidates, self.top_k)
        result = Retrieval([], [], mode=self.mode)
        dense: list[tuple[int, float]] = []
        lexical: list[tuple[int, float]] = []
        clock = time.perf_counter()
        if self.mode != "bm25":
            vector = self.embedder.embed([question])
            result.embed_s, clock = _lap(clock)
            dense = search(self.chunk_index, vector, depth)[0]
            result.dense_search_s, clock = _lap(clock)
        if self.mode != "dense":
            lexical = self.bm25.search(question, depth)
            result.bm25_search_s, clock = _lap(clock)
        hits = dense or lexical
        if self.mode == "hybrid":
            rankings = [[i for i, _ in dense], [i for i, _ in lexical]]
            weights = [1.0, self.bm25_weight]
            hits = reciprocal_rank_fusion(rankings, self.rrf_k, weights)[:depth]
            result.fusion_s, clock = _lap(clock)
        result.search_s = result.dense_search_s + result.bm25_search_s + result.fusion_s
        if self.reranker is not None and hits:
            scores = self.reranker.score(question, [self.chunks[i].text for i, _ in hits])
            order = sorted(range(len(hits)), key=lambda j: (-float(scores[j]), j))
            hits = [(hits[j][0], float(scores[j])) for j in order]
            result.rerank_s, clock = _lap(clock)
        hits = hits[: self.top_k]
        result.chunks = [self.chunks[i] for i, _ in hits]
        result.scores = [float(s) for _, s in hits]
        return result

    def stage_info(self) -> dict[str, Any]:
        """What results.json records about the retriever; ``build_s`` is the one-time cost
        (embedding + FAISS build as originally measured, plus this run's BM25 build)."""
        info: dict[str, Any] = {
            "mode": self.mode,
            "top_k": self.top_k,
            "candidates": self.candidates,
            "rrf_k": self.rrf_k if self.mode == "hybrid" else None,
            "bm25_weight": self.bm25_weight if self.mode == "hybrid" else None,
            "reranker": getattr(self.reranker, "identity", None),
            "chunks": len(self.chunks),
            **self.setup,
        }
        build_s = self.setup.get("bm25_build_s", 0.0)
        info["reused"] = False  # BM25 is built in every run; a cached FAISS index says so below
        if self.chunk_index is not None:
            index = self.chunk_index
            info.update(index.manifest)
            info.update(
                reused=index.reused,
                path=str(index.path),
                search_params=index.search_params,
                use_gpu=index.use_gpu,
            )
            build_s += index.build_s
        info["build_s"] = build_s
        return info


def build_retriever(
    chunks: list[Chunk],
    embedder: Embedder | None,
    cache_root: Path,
    settings: RetrievalSettings | None = None,
    *,
    progress: bool = True,
) -> Retriever:
    """Everything a RAG arm needs, built (or fetched from the cache) from chunks and settings."""
    s = RetrievalSettings() if settings is None else settings
    if s.mode not in MODES:
        raise ValueError(f"retriever.mode={s.mode!r} must be one of {', '.join(MODES)}")
    setup: dict[str, Any] = {}
    chunk_index = bm25 = reranker = None
    if s.mode != "bm25":
        if embedder is None:
            raise ValueError(f"retriever.mode={s.mode} needs an embedder")
        chunk_index = build_or_load_index(
            chunks,
            embedder,
            cache_root,
            s.index_factory,
            progress,
            metric=s.metric,
            nprobe=s.nprobe,
            ef_search=s.ef_search,
            use_gpu=s.use_gpu,
            train_size=s.train_size,
            lock_timeout_s=s.lock_timeout_s,
            ef_construction=s.ef_construction,
        )
    if s.mode != "dense":
        bm25 = BM25Index(chunks)
        setup["bm25_build_s"] = bm25.build_s
    if s.reranker.model:
        started = time.perf_counter()
        r = s.reranker
        reranker = CrossEncoderReranker(r.model, r.device, r.batch_size)
        setup["reranker_load_s"] = time.perf_counter() - started
    return Retriever(
        mode=s.mode,
        embedder=embedder,
        chunk_index=chunk_index,
        bm25=bm25,
        reranker=reranker,
        top_k=s.top_k,
        candidates=s.candidates,
        rrf_k=s.rrf_k,
        bm25_weight=s.bm25_weight,
        setup=setup,
    )


def _lap(since: float) -> tuple[float, float]:
    now = time.perf_counter()
    return now - since, now
