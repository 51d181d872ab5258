"""Lexical retrieval: BM25 over the chunks with the ``bm25s`` library.

Tokens are lower-cased runs of letters and digits (``\\w+``) without English stop words (the
list bm25s ships); no stemming, so nothing beyond numpy is needed. Scoring is bm25s's default,
the Lucene variant of BM25 with k1 = 1.5, b = 0.75 (Robertson and Zaragoza 2009 give
k1 in [1.2, 2.0] and b = 0.75 as the usual defaults). The index lives in memory and is rebuilt
each run: bm25s indexes tens of thousands of chunks per second, so it is timed and reported
rather than cached.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Sequence

import numpy as np

from rag.core.types import Chunk

logger = logging.getLogger(__name__)

_TOKEN = re.compile(r"\w+")
K1, B = 1.5, 0.75


def tokenize(text: str, stopwords: frozenset[str]) -> list[str]:
    return [t for t in _TOKEN.findall(text.lower()) if t not in stopwords]


class BM25Index:
    """BM25 scores of every chunk for a query; ``search`` returns positions, best first."""

    def __init__(self, chunks: Sequence[Chunk], k1: float = K1, b: float = B):
        import bm25s
        from bm25s.stopwords import STOPWORDS_EN

        if not chunks:
            raise ValueError("BM25 needs at least one chunk")
        started = time.perf_counter()
        self.stopwords = frozenset(STOPWORDS_EN)
        self.chunks = list(chunks)
        self.size = len(self.chunks)
        self.model = bm25s.BM25(k1=k1, b=b)
        corpus = [tokenize(c.text, self.stopwords) for c in chunks]
        self.model.index(corpus, show_progress=False)
        self.build_s = time.perf_counter() - started
        logger.info("BM25 index over %d chunks built in %.2f s", self.size, self.build_s)

    def scores(self, query: str) -> np.ndarray:
        tokens = [t for t in tokenize(query, self.stopwords) if t in self.model.vocab_dict]
        if not tokens:
            return np.zeros(self.size, dtype=np.float32)
        return np.asarray(self.model.get_scores(tokens), dtype=np.float32)

    def search(self, query: str, top_k: int) -> list[tuple[int, float]]:
        """Up to ``top_k`` (position, score) with a positive score; ties keep corpus order."""
        scores = self.scores(query)
        k = min(top_k, self.size)
        kth_best = np.partition(scores, self.size - k)[self.size - k]
        candidates = np.flatnonzero((scores >= kth_best) & (scores > 0))
        order = sorted(candidates.tolist(), key=lambda i: (-scores[i], i))[:k]
        return [(i, float(scores[i])) for i in order]
