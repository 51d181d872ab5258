"""Oracle context: the gold passage instead of the retrieved ones, to measure the reader alone.

For a question that names its supporting documents, the oracle returns the best-matching chunk
of each such document (cosine of the question and chunk embeddings), best first, at most
``top_k``. A RAG arm fed by it answers with perfect retrieval, so its accuracy is the reader's
ceiling at this chunking: the gap between it and RAG is what retrieval loses, the gap between
it and 1 is what the reader loses. A question without supporting documents gets no context.
"""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Any

import numpy as np

from rag.core.types import Chunk, QAPair
from rag.retrieval.embedder import Embedder
from rag.retrieval.retriever import Retrieval


class OracleRetriever:
    mode = "oracle"

    def __init__(
        self, chunks: list[Chunk], embedder: Embedder, questions: list[QAPair], top_k: int = 3
    ):
        if top_k < 1:
            raise ValueError(f"retriever.top_k must be >= 1, got {top_k}")
        self.chunks, self.embedder, self.top_k = chunks, embedder, top_k
        self._by_doc: dict[str, list[Chunk]] = defaultdict(list)
        for chunk in chunks:
            self._by_doc[chunk.doc_id].append(chunk)
        self._gold = {qa.question: list(qa.supporting_doc_ids) for qa in questions}
        self.without_gold = sum(
            not any(d in self._by_doc for d in qa.supporting_doc_ids) for qa in questions
        )

    def retrieve(self, question: str) -> Retrieval:
        started = time.perf_counter()
        best: list[tuple[float, Chunk]] = []
        docs = [d for d in self._gold.get(question, []) if d in self._by_doc]
        if docs:
            candidates = [c for d in docs for c in self._by_doc[d]]
            vectors = self.embedder.embed([question] + [c.text for c in candidates])
            scores = np.asarray(vectors[1:]) @ np.asarray(vectors[0])  # normalised: cosine
            for doc in docs:  # each gold document's best chunk
                own = [(float(s), c) for s, c in zip(scores, candidates, strict=True)]
                best.append(max((p for p in own if p[1].doc_id == doc), key=lambda p: p[0]))
            best.sort(key=lambda p: -p[0])
            best = best[: self.top_k]
        elapsed = time.perf_counter() - started
        return Retrieval(
            [c for _, c in best], [s for s, _ in best], embed_s=elapsed, mode=self.mode
        )

    def stage_info(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "top_k": self.top_k,
            "chunks": len(self.chunks),
            "questions_without_gold": self.without_gold,
            "build_s": 0.0,
            "reused": True,
        }
