"""Split documents into overlapping word windows, keeping each chunk's character span."""

from __future__ import annotations

import re

from rag.types import Chunk, Document

_WORD = re.compile(r"\S+")


def chunk_documents(
    documents: list[Document], chunk_words: int = 120, overlap_words: int = 20
) -> list[Chunk]:
    """Fixed windows of ``chunk_words`` words, consecutive windows sharing ``overlap_words``.

    A document shorter than one window becomes a single chunk. Chunk text is an exact slice of
    the document (``text[char_start:char_end]``), so provenance is preserved.
    """
    if chunk_words < 1:
        raise ValueError(f"retriever.chunk_words must be >= 1, got {chunk_words}")
    if not 0 <= overlap_words < chunk_words:
        raise ValueError(
            f"retriever.chunk_overlap_words must be in [0, chunk_words={chunk_words}), "
            f"got {overlap_words}"
        )
    step = chunk_words - overlap_words
    chunks: list[Chunk] = []
    for doc in documents:
        spans = [m.span() for m in _WORD.finditer(doc.text)]
        if not spans:
            continue
        start, index = 0, 0
        while True:
            window = spans[start : start + chunk_words]
            char_start, char_end = window[0][0], window[-1][1]
            chunks.append(
                Chunk(
                    chunk_id=f"{doc.doc_id}#{index}",
                    doc_id=doc.doc_id,
                    text=doc.text[char_start:char_end],
                    char_start=char_start,
                    char_end=char_end,
                )
            )
            index += 1
            if start + chunk_words >= len(spans):
                break
            start += step
    return chunks
