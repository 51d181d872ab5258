"""Text embedders: sentence-transformers models, and a hashing embedder for tests.

Both return L2-normalised float32 rows, so inner product equals cosine similarity.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from rag.core.cache import model_fingerprint
from rag.core.models import HASHING_EMBEDDER, resolve_embedder, verify_model

logger = logging.getLogger(__name__)


class Embedder(Protocol):
    identity: str  # what cache keys use: model content hash or parameters
    dimension: int

    def embed(self, texts: list[str], progress: bool = False) -> np.ndarray: ...


@dataclass
class HashingEmbedder:
    """Bag of word unigrams and bigrams hashed into ``dimension`` buckets (no model needed).

    Deterministic and instant; lexical overlap only. Used by the smoke experiment and tests.
    """

    dimension: int = 256

    @property
    def identity(self) -> str:
        return f"hashing:v1:dim={self.dimension}"

    def embed(self, texts: list[str], progress: bool = False) -> np.ndarray:
        matrix = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            words = re.findall(r"\w+", text.lower())
            for gram in words + [f"{a} {b}" for a, b in zip(words, words[1:], strict=False)]:
                bucket = int.from_bytes(hashlib.blake2b(gram.encode(), digest_size=8).digest())
                matrix[row, bucket % self.dimension] += 1.0
        norms = np.linalg.norm(matrix, axis=1, keepdims=True)
        return matrix / np.maximum(norms, 1e-12)


class SentenceTransformerEmbedder:
    """A sentence-transformers model on CPU (or the given device)."""

    def __init__(self, model: str, device: str = "cpu", batch_size: int = 64, processes: int = 1):
        from sentence_transformers import SentenceTransformer

        from rag.retrieval.embed_pool import ProcessPoolEncoder

        self.path = resolve_embedder(model)
        verify_model(self.path, "retriever.embedder.model", need_weights=False)
        self.model = SentenceTransformer(self.path, device=device)
        self.batch_size = batch_size
        self.dimension = int(self.model.get_embedding_dimension())
        self.identity = f"st:{_content_fingerprint(self.path)}:{library_versions()}"
        # Several processes give the same vectors as one, so the identity ignores them.
        self.pool = ProcessPoolEncoder(self.model, processes, device) if processes > 1 else None

    def embed(self, texts: list[str], progress: bool = False) -> np.ndarray:
        from rag.retrieval.embed_pool import MIN_TEXTS_FOR_POOL

        if self.pool is not None and len(texts) >= MIN_TEXTS_FOR_POOL:
            return self.pool.encode(texts, self.batch_size, progress)
        vectors = self.model.encode(
            texts,
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=progress,
        )
        return np.asarray(vectors, dtype=np.float32)


def _content_fingerprint(path: str) -> str:
    """A content hash of the model folder; for a hub id, of its locally cached snapshot (so a
    new revision of the same id is a new identity), else the id itself."""
    if not Path(path).is_dir():
        try:
            from huggingface_hub import snapshot_download

            path = snapshot_download(path, local_files_only=True)
        except Exception:  # no snapshot on disk: fall back to the id
            logger.warning("cannot locate the files of %s; cache keys use its name", path)
    return model_fingerprint(path)


def library_versions() -> str:
    """Versions that can change the vectors of the same model: part of every cache key."""
    from importlib import metadata

    names = ("sentence-transformers", "transformers", "torch")
    return ",".join(f"{name}=={metadata.version(name)}" for name in names)


def load_embedder(
    model: str, device: str = "cpu", batch_size: int = 64, processes: int = 1
) -> Embedder:
    if model == HASHING_EMBEDDER:
        return HashingEmbedder()
    return SentenceTransformerEmbedder(
        model, device=device, batch_size=batch_size, processes=processes
    )
