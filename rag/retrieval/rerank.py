"""Optional second-stage re-ranking with a cross-encoder (query and passage read together).

The model is a sentence-transformers ``CrossEncoder`` from a local folder or a hub id (only with
network access or a warm hub cache); nothing is downloaded unless the user names a hub id. Off
by default: the default models ship no cross-encoder.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from rag.core.cache import model_fingerprint
from rag.core.models import ModelNotAvailableError

logger = logging.getLogger(__name__)


class Reranker(Protocol):
    identity: str

    def score(self, question: str, texts: Sequence[str]) -> np.ndarray: ...


class CrossEncoderReranker:
    """Scores (question, passage) pairs; higher means more relevant."""

    def __init__(self, model: str, device: str = "cpu", batch_size: int = 32):
        path = Path(model).expanduser()
        if (model.startswith((".", "/", "~")) or path.exists()) and not path.is_dir():
            raise ModelNotAvailableError(
                f"retriever.reranker.model={model!r}: no such cross-encoder folder"
            )
        try:
            from sentence_transformers import CrossEncoder

            self.model = CrossEncoder(str(path) if path.is_dir() else model, device=device)
        except Exception as err:
            raise ModelNotAvailableError(
                f"retriever.reranker.model={model!r} could not be loaded as a sentence-"
                f"transformers CrossEncoder ({type(err).__name__}: {str(err)[:300]}). Name a "
                "local cross-encoder folder, or a hub id on a machine with network access; "
                "set retriever.reranker.model=null to turn re-ranking off."
            ) from None
        self.batch_size = batch_size
        self.identity = f"cross-encoder:{model_fingerprint(str(path) if path.is_dir() else model)}"

    def score(self, question: str, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros(0, dtype=np.float32)
        scores = self.model.predict(
            [(question, text) for text in texts],
            batch_size=self.batch_size,
            show_progress_bar=False,
            convert_to_numpy=True,
        )
        return np.asarray(scores, dtype=np.float32).reshape(len(texts), -1)[:, -1]
