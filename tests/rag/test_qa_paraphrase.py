"""Paraphrase augmentation: built-in templates, rules, a fake LM, and no path to leakage."""

from __future__ import annotations

from collections import defaultdict

import pytest

from rag.core.types import QAPair
from rag.corpus.synthetic import generate_corpus
from rag.qa.leakage import check_leakage, split_questions, training_texts
from rag.qa.paraphrase import builtin_extra_phrasings, paraphrase_questions, rule_paraphrases


@pytest.mark.parametrize("train_phrasings", [0, 2, 3])
def test_builtin_extras_use_unused_templates_never_the_eval_one(train_phrasings):
    corpus = generate_corpus(num_people=6, num_organisations=2, train_phrasings=train_phrasings)
    extra = builtin_extra_phrasings(corpus)
    held_out = {qa.fact_id: qa for qa in corpus.split("eval")}
    existing = defaultdict(set)
    for qa in corpus.qa_pairs:
        existing[qa.fact_id].add(qa.phrasing)
    per_fact = defaultdict(list)
    for qa in extra:
        per_fact[qa.fact_id].append(qa)
        assert qa.split == "train" and qa.phrasing not in existing[qa.fact_id]
        assert qa.question != held_out[qa.fact_id].question
        assert qa.answers == held_out[qa.fact_id].answers
        assert qa.qa_id == f"{qa.fact_id}#p{qa.phrasing}"
    unused = 5 - train_phrasings - 1
    assert all(unused - 1 <= len(v) <= unused for v in per_fact.values())
    evals = [qa.question for qa in corpus.split("eval")]
    before = check_leakage(training_texts(corpus.split("train")), evals)
    after = check_leakage(training_texts(corpus.split("train") + extra), evals)
    # The extras add no leak; the base corpus's own near-duplicates (a reordered birth-town
    # template) are what they are.
    assert after.exact == 0 and after.leaked == before.leaked
    assert len(builtin_extra_phrasings(corpus, max_per_fact=1)) <= len(held_out)


def test_builtin_extras_skip_reorderings_of_the_eval_question(monkeypatch):
    import rag.corpus.synthetic_templates as tpl

    # The shipped templates have no word-for-word reordering; plant one to test the filter.
    planted = dict(tpl.PERSON_QUESTIONS)
    planted["birth_town"] = [
        *planted["birth_town"][:3],
        "{name} was born in which town?",
        planted["birth_town"][4],
    ]
    monkeypatch.setattr(tpl, "PERSON_QUESTIONS", planted)
    corpus = generate_corpus(num_people=10, num_organisations=2, train_phrasings=0)
    reorder = {"In which town was {} born?", "{} was born in which town?"}
    names = {d.doc_id: d.title for d in corpus.documents}
    hits = 0
    for qa in corpus.split("eval"):
        name = names[qa.fact_id.split("/")[0]]
        if qa.question in {t.format(name) for t in reorder}:
            hits += 1
            extras = [
                e.question for e in builtin_extra_phrasings(corpus) if e.fact_id == qa.fact_id
            ]
            assert not {t.format(name) for t in reorder} & set(extras)
            unfiltered = builtin_extra_phrasings(corpus, near_threshold=None)
            assert {t.format(name) for t in reorder} & {e.question for e in unfiltered}
    assert hits


def test_builtin_extras_refuse_a_foreign_corpus():
    from rag.core.types import Corpus

    foreign = Corpus("x", [], [QAPair("a", "q", ["a"], [], fact_id="doc/whatever")])
    with pytest.raises(ValueError, match="not a fact of the built-in corpus"):
        builtin_extra_phrasings(foreign)


@pytest.mark.parametrize(
    "question, expected",
    [
        (
            "What is the capital of France?",
            [
                "The capital of France is what?",
                "Can you tell me what the capital of France is?",
                "What is France's capital?",
            ],
        ),
        ("The capital of France is what?", ["What is the capital of France?"]),
        ("Which organisation does Ada work for?", ["What organisation does Ada work for?"]),
        ("What job does Ada Whitlock have?", ["Which job does Ada Whitlock have?"]),
        ("In which year was the bridge opened?", ["In what year was the bridge opened?"]),
        ("The bridge was opened in which year?", ["In which year was the bridge opened?"]),
        ("Where was Ada Whitlock born?", ["In which place was Ada Whitlock born?"]),
        ("What is the birthplace of Ada Whitlock?", None),
        ("What happened in 1911?", []),  # no rule fits: nothing rather than nonsense
    ],
)
def test_rule_paraphrases(question, expected):
    found = rule_paraphrases(question)
    if expected is None:
        assert "What is Ada Whitlock's birthplace?" in found
    else:
        assert found == expected
    assert all(p.endswith("?") and p[0].isupper() for p in found)


def user_pairs():
    return [
        QAPair("t1", "What is the capital of Norland?", ["Kessel"], ["d1"], split="train"),
        QAPair(
            "t2", "What is the motto of Norland?", ["Onward"], ["d1"], fact_id="F2", split="train"
        ),
        QAPair(
            "e1", "The motto of Norland is what?", ["Onward"], ["d1"], fact_id="F3", split="eval"
        ),
        QAPair("e2", "Which river crosses Kessel?", ["Amber"], ["d2"], split="eval"),
    ]


def test_rule_paraphrasing_only_touches_train_and_never_copies_an_eval_question():
    near = "Can you tell me what the capital of Norland is, please?"  # 10 of 11 words
    pairs = [*user_pairs(), QAPair("e3", near, ["Kessel"], [], fact_id="F4", split="eval")]
    new, stats = paraphrase_questions(pairs, "rules", per_question=2)
    assert [q.question for q in new] == [
        "The capital of Norland is what?",
        "What is Norland's capital?",
        "Can you tell me what the motto of Norland is?",
        "What is Norland's motto?",
    ]
    assert stats["duplicate"] == 1  # "The motto of Norland is what?" is eval question e1
    assert stats["near_eval_question"] == 1  # nearly e3
    assert stats["not_train"] == 3 and all(q.split == "train" for q in new)
    assert new[0].fact_id == "q:what is the capital of norland" and new[3].fact_id == "F2"
    assert new[0].qa_id == "t1~para1" and new[0].answers == ["Kessel"]
    evals = [q.question for q in pairs if q.split == "eval"]
    base = [q for q in pairs if q.split == "train"]
    before = check_leakage(training_texts(base), evals)
    after = check_leakage(training_texts(base + new), evals)
    # The fixture itself leaks (t2 is a reordering of e1, under another fact id): the check
    # sees it, and paraphrasing adds nothing to it.
    assert before.leaked == after.leaked == ["The motto of Norland is what?"]
    relaxed, _ = paraphrase_questions(pairs, "rules", per_question=2, near_threshold=None)
    assert "Can you tell me what the capital of Norland is?" in [q.question for q in relaxed]


def test_paraphrases_stay_with_their_fact_when_split_afterwards():
    pairs = [
        QAPair(f"q{i}", f"What is the capital of Land{i}?", [f"City{i}"], []) for i in range(20)
    ]
    for qa in pairs:
        qa.split = "train"
    new, _ = paraphrase_questions(pairs, "rules", per_question=2)
    unsplit = [QAPair(q.qa_id, q.question, q.answers, [], q.fact_id, split="") for q in pairs + new]
    assert len(new) == 40
    result = split_questions(unsplit, 0.3, seed=5)
    by_origin = defaultdict(set)
    for qa in result:
        by_origin[qa.qa_id.split("~")[0]].add(qa.split)
    assert all(len(s) == 1 for s in by_origin.values())  # never split from its origin
    assert sum(s == {"eval"} for s in by_origin.values()) == 6


def test_lm_paraphrasing_with_a_fake_generator():
    calls = []

    def fake(prompt: str) -> tuple[str, int, int]:
        calls.append(prompt)
        return (
            "Q: Which city is the capital of Norland?\n"
            "Q: Norland's capital is Kessel, right?\n"  # gives the answer away
            "2. Name the capital city of Norland\n"
            "Q: What is the capital of Norland?\n",  # the original
            40,
            25,
        )

    pairs = user_pairs()[:1]
    new, stats = paraphrase_questions(pairs, "lm", per_question=3, generate=fake)
    assert [q.question for q in new] == [
        "Which city is the capital of Norland?",
        "Name the capital city of Norland?",
    ]
    assert "What is the capital of Norland?" in calls[0] and "3 different ways" in calls[0]
    assert stats["input_tokens"] == 40 and stats["output_tokens"] == 25
    assert stats["answer_in_question"] == 1 and stats["duplicate"] == 1


def test_paraphrase_arguments_are_checked():
    with pytest.raises(ValueError, match="paraphrase_method must be one of rules, lm"):
        paraphrase_questions([], "synonyms")
    with pytest.raises(ValueError, match="needs a generate"):
        paraphrase_questions([], "lm")
    with pytest.raises(ValueError, match="paraphrases must be >= 0"):
        paraphrase_questions([], "rules", per_question=-1)
