"""QA synthesis from chunks: offline cloze rules, and the LM method with a fake generator."""

from __future__ import annotations

import pytest

from rag.core.types import Chunk, Document
from rag.corpus.chunking import chunk_corpus
from rag.corpus.synthetic import generate_corpus
from rag.qa.leakage import check_leakage, split_questions, training_texts
from rag.qa.synthesis import (
    cloze_candidates,
    parse_qa_reply,
    source_chunk_id,
    supported,
    synthesize_qa,
)

TEXT = (
    "Marie Curie won the Nobel Prize in Chemistry in 1911. She was born in Warsaw. "
    "The Eiffel Tower was completed in 1889 for the fair. "
    "In 1906, Pierre Curie died in Paris. "
    "The Bodleian Library holds 13,000,000 printed items. "
    "About 45% of the budget went to the Royal Society. "
    "The bridge was opened in 1850 by Queen Victoria. "
    "It rained."
)


def chunk(text: str, chunk_id: str = "doc#0", doc_id: str = "doc", start: int = 0) -> Chunk:
    return Chunk(chunk_id, doc_id, text, start, start + len(text))


def test_cloze_rules_make_natural_questions():
    made = {(c.question, c.answer, c.kind) for c in cloze_candidates(TEXT)}
    expected = {
        ("Marie Curie won the Nobel Prize in Chemistry in which year?", "1911", "year"),
        ("Who won the Nobel Prize in Chemistry in 1911?", "Marie Curie", "entity"),
        ("In which year was the Eiffel Tower completed for the fair?", "1889", "year"),
        ("What was completed in 1889 for the fair?", "Eiffel Tower", "entity"),
        ("Pierre Curie died in Paris in which year?", "1906", "year"),
        ("The Bodleian Library holds how many printed items?", "13,000,000", "number"),
        ("About what percentage of the budget went to the Royal Society?", "45", "number"),
        ("In which year was the bridge opened by Queen Victoria?", "1850", "year"),
        ("The bridge was opened in 1850 by whom?", "Queen Victoria", "entity"),
    }
    assert expected <= made
    # A sentence opening with a pronoun gives no question: "She" is unknown out of context.
    assert not any("Warsaw" in q for q, _, _ in made)
    assert not any(q.startswith("It ") for q, _, _ in made)


def test_cloze_pairs_are_valid_deduplicated_and_carry_their_chunk():
    docs = [Document("d1", "t", TEXT), Document("d2", "t", TEXT)]  # same text twice
    chunks = chunk_corpus(docs, "sentences", 30, 0)
    pairs, stats = synthesize_qa(chunks, "cloze", max_per_chunk=10, seed=0)
    by_id = {c.chunk_id: c for c in chunks}
    questions = [q.question for q in pairs]
    assert len(questions) == len(set(questions))  # d2 repeats d1: every repeat dropped
    assert stats["rejected"]["duplicate"] == stats["candidates"] - len(pairs)
    for pair in pairs:
        source = by_id[source_chunk_id(pair.qa_id)]
        assert pair.answers[0] in source.text and pair.answers[0] not in pair.question
        assert pair.supporting_doc_ids == [source.doc_id] and pair.split == ""
        doc_id, rest = pair.fact_id.split("@")
        assert doc_id == source.doc_id and rest.endswith("/cloze")
    # Questions of one sentence share a fact group, so no split can separate them.
    curie = [p for p in pairs if "Nobel Prize" in p.question]
    assert len(curie) == 2 and curie[0].fact_id == curie[1].fact_id
    assert stats["accepted"] == len(pairs) and sum(stats["by_kind"].values()) == len(pairs)


def test_ambiguous_questions_are_dropped():
    chunks = [
        chunk("Ada Whitlock opened the new laboratory in 1987.", "a#0", "a"),
        chunk("Ada Whitlock opened the new laboratory in 1990.", "b#0", "b"),
    ]
    pairs, stats = synthesize_qa(chunks, "cloze")
    assert not any("which year" in p.question for p in pairs)
    assert stats["rejected"]["ambiguous"] == 2
    assert {p.answers[0] for p in pairs} == {"Ada Whitlock"}  # the two "Who opened ..." differ


def test_max_per_chunk_and_determinism():
    chunks = chunk_corpus([Document("d", "t", TEXT)], "words", 200, 0)
    one, stats = synthesize_qa(chunks, "cloze", max_per_chunk=2, seed=1)
    assert len(one) == 2 and stats["rejected"]["over max_per_chunk"] > 0
    assert one == synthesize_qa(chunks, "cloze", max_per_chunk=2, seed=1)[0]
    assert sorted(stats["by_kind"].values()) == [1, 1]  # kinds interleave: two different ones
    with pytest.raises(ValueError, match="max_per_chunk must be >= 1"):
        synthesize_qa(chunks, "cloze", max_per_chunk=0)
    with pytest.raises(ValueError, match="must be one of cloze, lm"):
        synthesize_qa(chunks, "templates")


def test_cloze_on_the_builtin_corpus_then_split_without_leakage():
    corpus = generate_corpus(num_people=8, num_organisations=3, num_distractors=2)
    chunks = chunk_corpus(corpus.documents, "sentences", 60, 0)
    pairs, stats = synthesize_qa(chunks, "cloze", max_per_chunk=3)
    assert len(pairs) >= 20 and stats["by_kind"]["year"] and stats["by_kind"]["entity"]
    texts = {c.chunk_id: c.text for c in chunks}
    assert all(p.answers[0] in texts[source_chunk_id(p.qa_id)] for p in pairs)
    split = split_questions(pairs, 0.3, seed=0)
    train = [p for p in split if p.split == "train"]
    evals = [p.question for p in split if p.split == "eval"]
    assert check_leakage(training_texts(train), evals).overlap_count == 0


class FakeGenerator:
    """Answers each prompt from a script; counts calls like a real endpoint would bill them."""

    def __init__(self, replies):
        self.replies = list(replies)
        self.prompts = []

    def __call__(self, prompt: str) -> tuple[str, int, int]:
        self.prompts.append(prompt)
        reply = self.replies.pop(0)
        if isinstance(reply, Exception):
            raise reply
        return reply, len(prompt.split()), len(reply.split())


PASSAGE = "Harbourview Labs was founded in 1987 by Ada Whitlock in the port town of Kessel."


def test_lm_method_parses_validates_and_counts_tokens():
    fake = FakeGenerator(
        [
            "Here are the pairs:\n"
            "Q: Who founded Harbourview Labs?\nA: Ada Whitlock\n"
            '1. Question: In which town was Harbourview Labs founded\nAnswer: "Kessel".\n'
            "Q: When was Harbourview Labs founded?\nA: in the spring of 1987\n"  # not in chunk
            "Q: Who founded Harbourview Labs in 1987 with Ada Whitlock?\nA: Ada Whitlock\n"
            "Q: What was founded in 1987?\nA: harbourview labs\n",  # normalised support
            "no pairs at all",
            TimeoutError("read timed out"),
            "Q: Who founded Harbourview Labs?\nA: Ada Whitlock\n",  # duplicate of chunk 1
        ]
    )
    chunks = [chunk(PASSAGE, f"doc#{i}") for i in range(4)]
    pairs, stats = synthesize_qa(chunks, "lm", max_per_chunk=5, generate=fake)
    assert [(p.question, p.answers[0]) for p in pairs] == [
        ("Who founded Harbourview Labs?", "Ada Whitlock"),
        ("In which town was Harbourview Labs founded?", "Kessel"),
        ("What was founded in 1987?", "harbourview labs"),
    ]
    assert PASSAGE in fake.prompts[0] and "Q: <question>" in fake.prompts[0]
    assert stats["prompts"] == 4 and stats["generation_errors"] == 1
    assert stats["input_tokens"] == sum(len(p.split()) for p in fake.prompts[:2] + fake.prompts[3:])
    assert stats["output_tokens"] > 0
    assert stats["rejected"] == {
        "answer not in chunk": 1,
        "answer in question": 1,
        "unparsable reply": 1,
        "duplicate": 1,
    }
    assert all(p.fact_id == "doc#0/lm" and p.qa_id.startswith("doc#0:lm-") for p in pairs)


def test_lm_method_needs_a_generator_and_fails_if_every_call_fails():
    chunks = [chunk(PASSAGE)]
    with pytest.raises(ValueError, match="needs a generate"):
        synthesize_qa(chunks, "lm")
    with pytest.raises(RuntimeError, match="every one of 1 generation calls failed"):
        synthesize_qa(chunks, "lm", generate=FakeGenerator([ConnectionError("down")]))


def test_max_chunks_bounds_the_cost():
    chunks = [chunk(PASSAGE, f"doc#{i}") for i in range(10)]
    fake = FakeGenerator(["Q: Who founded Harbourview Labs?\nA: Ada Whitlock"] * 3)
    _, stats = synthesize_qa(chunks, "lm", generate=fake, max_chunks=3, seed=2)
    assert stats["chunks"] == stats["prompts"] == len(fake.prompts) == 3


def test_reply_parser_and_support_check():
    assert parse_qa_reply("Q: A?\nA: b.\nnoise\nq. C?\na. d") == [("A?", "b"), ("C?", "d")]
    assert supported("ada whitlock", PASSAGE) and supported("Ada Whitlock", PASSAGE)
    assert not supported("Whit", PASSAGE)  # whole words only after normalisation
