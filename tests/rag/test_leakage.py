"""Fact-grouped deterministic splits and the train/eval leakage check."""

from __future__ import annotations

import logging
import random
from collections import defaultdict

import pytest

from rag.core.types import QAPair
from rag.qa.leakage import (
    LeakageError,
    check_leakage,
    enforce_no_leakage,
    group_key,
    normalize,
    split_questions,
    training_texts,
)


def qa(qa_id, question, answer="x", fact_id="", split=""):
    return QAPair(qa_id, question, [answer], [], fact_id=fact_id, split=split)


def pool(n_facts=40, phrasings=3):
    return [
        qa(f"f{f}p{p}", f"Question {p} about fact {f}?", f"answer {f}", f"fact-{f}")
        for f in range(n_facts)
        for p in range(phrasings)
    ]


def test_normalize():
    assert normalize("  What's the  CAPITAL, of France?! ") == "what s the capital of france"
    assert normalize("Ｆｕｌｌ-width") == "full width"  # NFKC folds compatibility forms
    assert normalize("snake_case") == "snake case"


def test_split_keeps_fact_groups_together_and_is_deterministic():
    pairs = pool()
    first = split_questions(pairs, 0.25, seed=3)
    assert first == split_questions(pairs, 0.25, seed=3)
    assert all(qa.split == "" for qa in pairs)  # inputs untouched
    sides = defaultdict(set)
    for item in first:
        sides[item.fact_id].add(item.split)
    assert all(len(s) == 1 for s in sides.values())
    assert sum(s == {"eval"} for s in sides.values()) == 10  # round(0.25 * 40)
    other = split_questions(pairs, 0.25, seed=4)
    assert [q.split for q in other] != [q.split for q in first]


def test_split_groups_by_normalised_question_without_fact_id():
    pairs = [qa("a", "Who is X?"), qa("b", "who is x"), qa("c", "Where is Y?"), qa("d", "What?")]
    result = split_questions(pairs, 0.5, seed=0)
    assert result[0].split == result[1].split
    assert group_key(pairs[0]) == group_key(pairs[1]) == "q:who is x"


def test_split_is_stable_when_questions_are_added():
    base = pool(100, 1)
    before = {q.qa_id: q.split for q in split_questions(base, 0.2, seed=0)}
    after = {q.qa_id: q.split for q in split_questions(base + pool(110, 1)[100:], 0.2, seed=0)}
    moved = sum(before[k] != after[k] for k in before)
    assert moved <= 5


def test_split_respects_preset_sides():
    pairs = [
        qa("a1", "q a1", fact_id="A", split="eval"),
        qa("a2", "q a2", fact_id="A"),
        qa("b1", "q b1", fact_id="B", split="train"),
        qa("b2", "q b2", fact_id="B"),
        *[qa(f"c{i}", f"q c{i}", fact_id=f"C{i}") for i in range(10)],
    ]
    result = {q.qa_id: q.split for q in split_questions(pairs, 0.3, seed=1)}
    assert result["a1"] == result["a2"] == "eval"
    assert result["b1"] == result["b2"] == "train"
    assert sum(result[f"c{i}"] == "eval" for i in range(10)) == 3


def test_split_edges_and_errors():
    assert {q.split for q in split_questions(pool(5, 1), 1.0)} == {"eval"}
    tiny = split_questions(pool(2, 1), 0.01)
    assert sorted(q.split for q in tiny) == ["eval", "train"]  # at least one eval
    assert sorted(q.split for q in split_questions(pool(2, 1), 0.99)) == ["eval", "train"]
    with pytest.raises(ValueError, match=r"qa.eval_fraction must be in \(0, 1\], got 0"):
        split_questions(pool(), 0)
    with pytest.raises(ValueError, match="split must be train or eval, got 'test'"):
        split_questions([qa("a", "q", split="test")], 0.5)


def test_planted_leak_is_caught_after_normalisation():
    split = split_questions(pool(), 0.25, seed=0)
    train = [q for q in split if q.split == "train"]
    evals = [q.question for q in split if q.split == "eval"]
    clean = check_leakage(training_texts(train), evals)
    assert clean.overlap_count == 0 and clean.share == 0.0
    planted = evals[3].upper().replace("?", " !!")
    report = check_leakage([*training_texts(train), planted], evals)
    assert report.overlap_count == report.exact == 1 and report.near == 0
    assert report.share == pytest.approx(1 / len(evals))
    assert report.examples == [
        {"eval": evals[3], "train": planted, "kind": "exact", "jaccard": 1.0}
    ]
    with pytest.raises(LeakageError) as err:
        enforce_no_leakage(report)
    assert evals[3] in str(err.value) and "qa.allow_leakage=true" in str(err.value)


def test_near_duplicates_need_the_threshold():
    train = ["In which year did the old harbour of Kessel first open to ships?"]
    evals = [
        "In which year did the old harbour of Kessel first open to boats?"
    ]  # 12 of 14 words shared
    assert check_leakage(train, evals, near_threshold=None).overlap_count == 0
    assert check_leakage(train, evals, near_threshold=0.9).overlap_count == 0
    report = check_leakage(train, evals, near_threshold=0.8)
    assert report.near == 1 and report.examples[0]["jaccard"] == pytest.approx(12 / 14, abs=1e-3)
    ten = "a b c d e f g h i j"
    assert check_leakage([ten], [ten + " k"]).near == 1  # 10/11 >= 0.9
    with pytest.raises(ValueError, match="leakage_threshold"):
        check_leakage(train, evals, near_threshold=1.5)


def test_prefix_filter_finds_exactly_what_brute_force_finds():
    rng = random.Random(0)
    vocabulary = [f"w{i}" for i in range(30)]
    train = [" ".join(rng.sample(vocabulary, rng.randint(3, 12))) for _ in range(300)]
    evals = []
    for _ in range(300):  # near copies of training texts with a word changed, added or dropped
        words = rng.choice(train).split()
        edit = rng.choice(["swap", "add", "drop", "none"])
        if edit == "swap":
            words[rng.randrange(len(words))] = rng.choice(vocabulary)
        elif edit == "add":
            words.append(rng.choice(vocabulary))
        elif edit == "drop" and len(words) > 1:
            words.pop()
        evals.append(" ".join(words))
    for threshold in (0.6, 0.75, 0.9):
        sets = [set(t.split()) for t in train]
        expected = sum(
            any(len(set(e.split()) & s) / len(set(e.split()) | s) >= threshold for s in sets)
            for e in evals
        )
        assert check_leakage(train, evals, threshold).overlap_count == expected > 0


def test_examples_are_capped_and_allow_only_warns(caplog):
    evals = [f"question number {i}" for i in range(8)]
    report = check_leakage(evals, evals)
    assert report.overlap_count == 8 and len(report.examples) == 5 and len(report.leaked) == 8
    with caplog.at_level(logging.WARNING, logger="rag.qa.leakage"):
        enforce_no_leakage(report, allow=True)
    assert "8 of 8 eval questions (100.0%)" in caplog.text
    enforce_no_leakage(check_leakage(["other text"], evals))  # nothing leaked: no error
    assert report.to_dict()["overlap_count"] == 8


def test_training_texts_are_questions_and_answers():
    pairs = [QAPair("a", "Q1?", ["A1", "alias"], [], split="train")]
    assert training_texts(pairs) == ["Q1?", "A1", "alias"]
