"""Split documents into chunks, keeping each chunk's exact character span.

Four strategies (``chunk_corpus``):

- ``words``: fixed windows of whitespace-separated words with overlap (``chunk_documents``);
- ``tokens``: fixed windows of tokens of a given tokenizer (the embedder's), so a chunk never
  exceeds the embedder's input length; spans come from the tokenizer's offsets;
- ``sentences``: whole sentences packed up to a budget (an over-long sentence is cut by units);
- ``markdown``: one chunk per heading section, sections over budget packed by sentences.

Sizes count tokens when a tokenizer is given, words otherwise. Every chunk satisfies
``document.text[chunk.char_start:chunk.char_end] == chunk.text``.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Callable

from rag.core.types import Chunk, Document

STRATEGIES = ("words", "tokens", "sentences", "markdown")
Spans = list[tuple[int, int]]
UnitSpans = Callable[[str], Spans]

_WORD = re.compile(r"\S+")
_SENTENCE_GAP = re.compile(
    r"(?:(?<=[.!?])|(?<=[.!?][\"'”’)\]]))\s+(?=[\"'“‘(\[]?[A-Z0-9])"  # after . ! ? (+ quote)
    r"|\n[ \t]*\n\s*"  # a blank line
    r"|\s*\n(?=[ \t]*(?:[#>|*+-]|\d+[.)])[ \t])"  # a line opening a list item, quote or heading
)
_HEADING = re.compile(r"^#{1,6}[ \t]+\S.*$", re.MULTILINE)
_FENCE = re.compile(r"^[ \t]*(```|~~~)", re.MULTILINE)


def word_spans(text: str) -> Spans:
    return [m.span() for m in _WORD.finditer(text)]


def unit_spans_function(tokenizer: object | None) -> UnitSpans:
    """Character spans of the units sizes are counted in: the tokenizer's tokens, else words.

    Accepts a fast Hugging Face tokenizer (``backend_tokenizer``), a ``tokenizers.Tokenizer`` or
    a callable returning spans. Truncation is switched off on a private copy, because a saved
    tokenizer often truncates to the model's length and would silently drop text.
    """
    if tokenizer is None:
        return word_spans
    backend = getattr(tokenizer, "backend_tokenizer", tokenizer)
    if hasattr(backend, "encode") and hasattr(backend, "to_str"):
        from tokenizers import Tokenizer

        private = Tokenizer.from_str(backend.to_str())
        private.no_truncation()
        private.no_padding()

        def token_spans(text: str) -> Spans:
            offsets = private.encode(text, add_special_tokens=False).offsets
            return [(s, e) for s, e in offsets if e > s]

        return token_spans
    if callable(tokenizer) and not hasattr(tokenizer, "encode"):
        return tokenizer  # a function text -> spans
    raise ValueError(
        f"retriever.chunk_strategy=tokens: tokenizer {type(tokenizer).__name__} gives no "
        "character offsets; "
        "pass a fast (Rust) Hugging Face tokenizer, e.g. AutoTokenizer.from_pretrained(embedder)"
    )


def sentence_spans(text: str, start: int = 0, end: int | None = None) -> Spans:
    """Sentences of ``text[start:end]`` as trimmed spans (a simple regex splitter)."""
    end = len(text) if end is None else end
    spans, cursor = [], start
    for gap in [*_SENTENCE_GAP.finditer(text, start, end), None]:
        stop = gap.start() if gap else end
        span = _trim(text, cursor, stop)
        if span:
            spans.append(span)
        cursor = gap.end() if gap else end
    return spans


def markdown_sections(text: str) -> Spans:
    """Spans of heading sections (a heading and its body up to the next heading).

    Headings inside fenced code blocks are ignored; a heading directly followed by another
    (no body) is kept with the next section rather than becoming a chunk of its own.
    """
    fences = [m.start() for m in _FENCE.finditer(text)]
    starts = [
        m.start()
        for m in _HEADING.finditer(text)
        if bisect_left(fences, m.start()) % 2 == 0  # an even number of fences before it
    ]
    bounds = sorted({0, *starts, len(text)})
    sections = [_trim(text, a, b) for a, b in zip(bounds, bounds[1:], strict=False)]
    merged: Spans = []
    pending: int | None = None
    for span in filter(None, sections):
        heading_only = _HEADING.fullmatch(text, *span) is not None
        start = span[0] if pending is None else pending
        if heading_only:
            pending = start
            continue
        merged.append((start, span[1]))
        pending = None
    if pending is not None:
        merged.append((pending, len(text.rstrip())))
    return merged


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
    chunks: list[Chunk] = []
    for doc in documents:
        spans = word_spans(doc.text)
        _emit(
            chunks,
            doc,
            [
                (spans[a][0], spans[b - 1][1])
                for a, b in _windows(len(spans), chunk_words, overlap_words)
            ],
        )
    return chunks


def chunk_corpus(
    documents: list[Document],
    strategy: str = "words",
    size: int = 120,
    overlap: int = 20,
    tokenizer: object | None = None,
) -> list[Chunk]:
    """Chunks of every document with ``strategy``; ``size``/``overlap`` in tokens or words."""
    if strategy not in STRATEGIES:
        raise ValueError(
            f"retriever.chunk_strategy must be one of {', '.join(STRATEGIES)}, got {strategy!r}"
        )
    if not isinstance(size, int) or size < 1:
        raise ValueError(f"retriever.chunk_size must be an integer >= 1, got {size!r}")
    if not isinstance(overlap, int) or not 0 <= overlap < size:
        raise ValueError(
            "retriever.chunk_overlap must be an integer in "
            f"[0, retriever.chunk_size={size}), got {overlap!r}"
        )
    if strategy == "tokens" and tokenizer is None:
        raise ValueError(
            "retriever.chunk_strategy=tokens needs the embedder's tokenizer; pass tokenizer= "
            "or use strategy=words"
        )
    if strategy == "words":
        return chunk_documents(documents, size, overlap)
    units_of = unit_spans_function(tokenizer)
    chunks: list[Chunk] = []
    for doc in documents:
        units = units_of(doc.text)
        if strategy == "tokens":
            windows = _windows(len(units), size, overlap)
            spans = [(units[a][0], units[b - 1][1]) for a, b in windows]
        else:
            regions = [(0, len(doc.text))]
            if strategy == "markdown":
                regions = markdown_sections(doc.text)
            starts = [s for s, _ in units]
            spans = []
            for region in regions:
                spans += _pack_region(doc.text, region, units, starts, size, overlap)
        _emit(chunks, doc, spans)
    return chunks


def _windows(count: int, size: int, overlap: int) -> list[tuple[int, int]]:
    """Index ranges of fixed windows over ``count`` units; the last window ends at ``count``."""
    if count == 0:
        return []
    windows, start = [], 0
    while True:
        windows.append((start, min(start + size, count)))
        if start + size >= count:
            return windows
        start += size - overlap


def _pack_region(
    text: str, region: tuple[int, int], units: Spans, starts: list[int], size: int, overlap: int
) -> Spans:
    """Whole sentences of ``region`` packed into spans of at most ``size`` units."""

    def count(a: int, b: int) -> int:
        return bisect_left(starts, b) - bisect_left(starts, a)

    if count(*region) <= size:
        return [region]
    spans: Spans = []
    current: Spans = []  # sentences of the chunk being built
    for sentence in sentence_spans(text, *region):
        if count(*sentence) > size:  # cut an over-long sentence by unit windows, alone
            if current:
                spans.append((current[0][0], current[-1][1]))
                current = []
            inner = units[bisect_left(starts, sentence[0]) : bisect_left(starts, sentence[1])]
            spans += [
                (inner[a][0], inner[b - 1][1]) for a, b in _windows(len(inner), size, overlap)
            ]
            continue
        if current and count(current[0][0], sentence[1]) > size:
            spans.append((current[0][0], current[-1][1]))
            # Carry trailing sentences worth at most ``overlap`` units into the next chunk.
            carried = len(current)
            while carried > 0 and count(current[carried - 1][0], current[-1][1]) <= overlap:
                carried -= 1
            current = current[carried:]
            if current and count(current[0][0], sentence[1]) > size:
                current = []
        current.append(sentence)
    if current:
        spans.append((current[0][0], current[-1][1]))
    return spans


def _trim(text: str, start: int, end: int) -> tuple[int, int] | None:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return (start, end) if end > start else None


def _emit(chunks: list[Chunk], doc: Document, spans: Spans) -> None:
    index = 0
    for span in spans:
        trimmed = _trim(doc.text, *span)
        if trimmed is None:
            continue
        start, end = trimmed
        chunks.append(Chunk(f"{doc.doc_id}#{index}", doc.doc_id, doc.text[start:end], start, end))
        index += 1
