"""Dense top-k retrieval with per-stage timings."""

from __future__ import annotations

import time
from dataclasses import dataclass

from rag.embedder import Embedder
from rag.index import ChunkIndex, search
from rag.types import Chunk


@dataclass
class Retrieval:
    chunks: list[Chunk]
    scores: list[float]
    embed_s: float  # query embedding
    search_s: float  # FAISS search

    @property
    def total_s(self) -> float:
        return self.embed_s + self.search_s

    @property
    def doc_ids(self) -> list[str]:
        return [c.doc_id for c in self.chunks]


class DenseRetriever:
    def __init__(self, embedder: Embedder, chunk_index: ChunkIndex, top_k: int = 3):
        if top_k < 1:
            raise ValueError(f"retriever.top_k must be >= 1, got {top_k}")
        self.embedder = embedder
        self.chunk_index = chunk_index
        self.top_k = top_k

    def retrieve(self, question: str) -> Retrieval:
        started = time.perf_counter()
        vector = self.embedder.embed([question])
        embedded = time.perf_counter()
        hits = search(self.chunk_index, vector, self.top_k)[0]
        searched = time.perf_counter()
        chunks = [self.chunk_index.chunks[i] for i, _ in hits]
        return Retrieval(chunks, [s for _, s in hits], embedded - started, searched - embedded)
