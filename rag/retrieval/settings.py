"""Retrieval settings: the ``retriever`` config group's schema (the entry point composes it).

Every default lives here once; ``conf/retriever/dense.yaml`` restates them for reading and a
test fails if the two disagree.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rag.core.store import DEFAULT_LOCK_TIMEOUT_S
from rag.retrieval.fusion import RRF_K


@dataclass
class EmbedderSettings:
    model: str = "all-minilm-l6-v2"  # alias, local folder or hub id
    batch_size: int = 64
    device: str = "cpu"
    processes: int = 1  # > 1: embed the corpus in a process pool (rag/retrieval/embed_pool.py)


@dataclass
class RerankerSettings:
    model: str | None = None  # a cross-encoder folder or hub id; null: no re-ranking
    device: str = "cpu"
    batch_size: int = 32


@dataclass
class RetrievalSettings:
    embedder: EmbedderSettings = field(default_factory=EmbedderSettings)
    chunk_strategy: str = "words"  # words | tokens (embedder tokenizer) | sentences | markdown
    chunk_size: int = 120  # words for `words`, tokens otherwise
    chunk_overlap: int = 20
    top_k: int = 3
    mode: str = "dense"  # dense | bm25 | hybrid (reciprocal rank fusion)
    candidates: int = 20  # first-stage depth when fusing or re-ranking
    index_factory: str = "Flat"  # FAISS index_factory string
    metric: str = "inner_product"  # inner_product (normalised vectors) | l2
    nprobe: int | None = None  # IVF search knob
    ef_search: int | None = None  # HNSW search knob
    train_size: int | None = None  # vectors sampled to train IVF/PQ; null: 64 per centroid
    ef_construction: int | None = None  # HNSW build breadth; null: FAISS's 40
    use_gpu: bool = False  # GPU FAISS (faiss-gpu) when available
    rrf_k: int = RRF_K  # reciprocal rank fusion constant (Cormack et al. 2009)
    bm25_weight: float = 1.0
    reranker: RerankerSettings = field(default_factory=RerankerSettings)
    context_budget_tokens: int | None = None  # cap on context tokens (generator tokenizer)
    ordering: str = "best_first"  # best_first | best_at_ends (lost in the middle)
    # wait for another process building the same cache entry
    lock_timeout_s: float = DEFAULT_LOCK_TIMEOUT_S
