"""The built-in synthetic corpus: determinism, honest answers, held-out phrasings, distractors."""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from rag.core.types import Corpus
from rag.corpus import synthetic_templates as tpl
from rag.corpus.synthetic import corpus_stats, generate_corpus


@pytest.fixture(scope="module")
def corpus() -> Corpus:
    return generate_corpus()


def dump(corpus: Corpus) -> str:
    return json.dumps(
        {
            "name": corpus.name,
            "documents": [d.to_dict() for d in corpus.documents],
            "qa_pairs": [qa.to_dict() for qa in corpus.qa_pairs],
        },
        sort_keys=True,
    )


def biographies(corpus: Corpus, distractors: bool) -> list:
    return [
        d
        for d in corpus.documents
        if d.metadata["kind"] == "biography"
        and d.metadata["subject"].startswith("distractor-") == distractors
    ]


def subject_names(corpus: Corpus) -> dict[str, str]:
    """Entity id -> full name, read from the titles of biographies and profiles."""
    return {d.metadata["subject"]: d.title for d in corpus.documents if "subject" in d.metadata}


def sentences(text: str) -> list[str]:
    return [s for s in re.split(r"(?<=\.) ", text) if s]


def _text(corpus: Corpus, doc_id: str) -> str:
    return next(d.text for d in corpus.documents if d.doc_id == doc_id)


def test_same_seed_gives_byte_identical_output():
    assert dump(generate_corpus(seed=7)) == dump(generate_corpus(seed=7))


def test_output_does_not_depend_on_string_hashing():
    # Iterating a set of strings would make the corpus differ between interpreter runs.
    code = (
        "import hashlib, json; from rag.corpus.synthetic import generate_corpus; "
        "c = generate_corpus(seed=2); "
        "d = [x.to_dict() for x in c.documents] + [q.to_dict() for q in c.qa_pairs]; "
        "print(hashlib.sha256(json.dumps(d).encode()).hexdigest())"
    )
    digests = {
        subprocess.run(
            [sys.executable, "-c", code],
            env={**os.environ, "PYTHONHASHSEED": str(hash_seed)},
            cwd=Path(__file__).resolve().parents[2],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for hash_seed in (1, 2)
    }
    corpus = generate_corpus(seed=2)
    here = [x.to_dict() for x in corpus.documents] + [q.to_dict() for q in corpus.qa_pairs]
    assert digests == {hashlib.sha256(json.dumps(here).encode()).hexdigest() + "\n"}


def test_generation_leaves_global_random_state_alone():
    random.seed(123)
    expected = random.random()
    random.seed(123)
    generate_corpus(seed=3)
    assert random.random() == expected


def test_different_seeds_give_different_names_and_facts():
    a, b = generate_corpus(seed=0), generate_corpus(seed=1)
    assert a.name == "synthetic-seed0" and b.name == "synthetic-seed1"
    assert not set(subject_names(a).values()) & set(subject_names(b).values())
    answers_a = {qa.fact_id: qa.answers[0] for qa in a.qa_pairs}
    answers_b = {qa.fact_id: qa.answers[0] for qa in b.qa_pairs}
    assert answers_a.keys() == answers_b.keys()
    differing = sum(answers_a[f] != answers_b[f] for f in answers_a)
    assert differing > len(answers_a) // 2


def test_every_answer_occurs_in_every_supporting_document(corpus):
    texts = {d.doc_id: d.text for d in corpus.documents}
    for qa in corpus.qa_pairs:
        assert qa.supporting_doc_ids, qa.qa_id
        for doc_id in qa.supporting_doc_ids:
            for answer in qa.answers:
                assert answer in texts[doc_id], (qa.qa_id, answer, doc_id)


def test_supporting_documents_start_with_the_entity_document_and_list_every_statement(corpus):
    names = subject_names(corpus)
    for qa in corpus.qa_pairs:
        entity_id = qa.fact_id.split("/")[0]
        assert qa.supporting_doc_ids[0] == entity_id
        assert all(names[entity_id] in _text(corpus, d) for d in qa.supporting_doc_ids)
        if entity_id.startswith("person-"):
            # Every sentence naming a person is about that person alone, so any document with
            # the name and the answer in one sentence states the fact and must be listed.
            stating = [
                d.doc_id
                for d in corpus.documents
                if any(names[entity_id] in s and qa.answers[0] in s for s in sentences(d.text))
            ]
            assert set(stating) <= set(qa.supporting_doc_ids), qa.qa_id
    assert any(len(qa.supporting_doc_ids) > 1 for qa in corpus.qa_pairs)


def test_every_asked_entity_is_named_in_at_least_two_documents(corpus):
    names = subject_names(corpus)
    asked = {qa.fact_id.split("/")[0] for qa in corpus.qa_pairs}
    assert len(asked) == 30 + 8
    for entity_id in asked:
        hits = [d.doc_id for d in corpus.documents if names[entity_id] in d.text]
        assert len(hits) >= 2, (entity_id, hits)


@pytest.mark.parametrize("train_phrasings", [0, 2, 4])
def test_each_fact_has_its_train_phrasings_and_one_unseen_eval_phrasing(train_phrasings):
    corpus = generate_corpus(num_people=6, num_organisations=3, train_phrasings=train_phrasings)
    by_fact = defaultdict(list)
    for qa in corpus.qa_pairs:
        by_fact[qa.fact_id].append(qa)
        assert qa.qa_id == f"{qa.fact_id}#p{qa.phrasing}"
    assert len(by_fact) == 6 * 4 + 3 * 3
    eval_phrasings = defaultdict(set)
    for fact_id, pairs in by_fact.items():
        train = [qa for qa in pairs if qa.split == "train"]
        (held_out,) = [qa for qa in pairs if qa.split == "eval"]
        assert len(pairs) == train_phrasings + 1
        assert sorted(qa.phrasing for qa in train) == list(range(train_phrasings))
        assert held_out.phrasing >= train_phrasings
        assert held_out.question not in {qa.question for qa in train}
        assert all(qa.answers == held_out.answers for qa in train)
        eval_phrasings[fact_id.split("/")[1]].add(held_out.phrasing)
    if train_phrasings < 4:  # the held-out phrasing rotates across entities
        assert all(len(used) > 1 for used in eval_phrasings.values())


def test_questions_are_questions_not_copies_of_document_sentences(corpus):
    texts = [d.text for d in corpus.documents]
    for qa in corpus.qa_pairs:
        assert qa.question.endswith("?")
        assert not any(qa.question[:-1] in text for text in texts), qa.question


def test_distractors_share_a_name_part_have_own_facts_and_no_questions(corpus):
    real = {d.metadata["subject"]: d.title for d in biographies(corpus, distractors=False)}
    fakes = biographies(corpus, distractors=True)
    assert len(fakes) == 10
    real_firsts = {name.split()[0]: pid for pid, name in real.items()}
    real_families = {name.split()[1]: pid for pid, name in real.items()}
    shared = Counter()
    for bio in fakes:
        first, family = bio.title.split()
        assert bio.title not in real.values()
        namesake = real_firsts.get(first) or real_families.get(family)
        assert namesake, bio.title
        shared["first" if first in real_firsts else "family"] += 1
        assert sum(bio.title in d.text for d in corpus.documents) >= 2
        assert not any(bio.title in qa.question for qa in corpus.qa_pairs)
        # Attributes differ from the namesake's, so a retrieval mix-up gives a wrong answer.
        for qa in corpus.qa_pairs:
            if qa.fact_id.startswith(f"{namesake}/"):
                assert qa.answers[0] not in bio.text, (bio.title, qa.fact_id)
    assert shared["first"] and shared["family"]
    assert not any(qa.fact_id.startswith("distractor-") for qa in corpus.qa_pairs)


def test_names_are_unique_capitalised_invented_words(corpus):
    titles = [d.title for d in corpus.documents if "subject" in d.metadata]
    assert len(titles) == len(set(titles))
    parts = {w for t in titles for w in t.split() if w not in tpl.ORG_KINDS}
    parts |= {qa.answers[0] for qa in corpus.qa_pairs if qa.fact_id.endswith(("_town", "quarters"))}
    vocabulary = tpl.vocabulary()
    for part in parts:
        assert re.fullmatch(r"[A-Z][a-z]{4,}", part), part
        assert part.lower() not in vocabulary
        assert not any(part != other and part.lower() in other.lower() for other in parts), part


def test_ids_are_unique_and_readable(corpus):
    doc_ids = [d.doc_id for d in corpus.documents]
    assert len(doc_ids) == len(set(doc_ids))
    assert len({qa.qa_id for qa in corpus.qa_pairs}) == len(corpus.qa_pairs)
    assert all(
        re.fullmatch(r"(person-\d{3}|distractor-\d{2}|org-\d{2}|news-\d{2})", i) for i in doc_ids
    )
    assert "person-003" in doc_ids and "org-02" in doc_ids and "news-05" in doc_ids


def test_document_shapes(corpus):
    kinds = Counter(d.metadata["kind"] for d in corpus.documents)
    assert kinds["biography"] == 40 and kinds["profile"] == 8 and kinds["news"] >= 10
    answers = _answers_by_entity(corpus)
    for doc in corpus.documents:
        if doc.metadata["kind"] == "news":
            subjects = {fact.split("/")[0] for fact in doc.metadata["fact_ids"]}
            assert 2 <= len(subjects) <= 4, doc.doc_id
            continue
        assert 3 <= len(sentences(doc.text)) <= 6, (doc.doc_id, doc.text)
        facts = answers.get(doc.doc_id)
        if facts:  # every fact is stated, and some sentence is filler stating none of them
            assert all(answer in doc.text for answer in facts)
            assert any(not any(a in s for a in facts) for s in sentences(doc.text)), doc.text


def test_biographies_vary_their_sentence_templates(corpus):
    forms = Counter()
    for entity_id, answers in _answers_by_entity(corpus).items():
        doc = next(d for d in corpus.documents if d.doc_id == entity_id)
        text = doc.text.replace(doc.title, "NAME")
        for answer in sorted(answers, key=len, reverse=True):
            text = text.replace(answer, "VALUE")
        first, *rest = sentences(text)
        forms[("opener", first)] += 1
        forms.update(("body", s) for s in rest)
    assert len([f for f in forms if f[0] == "opener"]) >= 5
    assert len(forms) >= 25


def _answers_by_entity(corpus: Corpus) -> dict[str, set[str]]:
    answers = defaultdict(set)
    for qa in corpus.qa_pairs:
        answers[qa.fact_id.split("/")[0]].add(qa.answers[0])
    return answers


def test_small_corpus_and_stats():
    small = generate_corpus(
        seed=5, num_people=3, num_organisations=1, num_towns=2, num_distractors=1
    )
    assert corpus_stats(small) == {
        "documents": 3 + 1 + 1 + len([d for d in small.documents if d.doc_id.startswith("news")]),
        "words": sum(len(d.text.split()) for d in small.documents),
        "facts": 3 * 4 + 1 * 3,
        "qa_train": 2 * 15,
        "qa_eval": 15,
    }
    assert len(small.split("eval")) == 15


def test_default_stats(corpus):
    stats = corpus_stats(corpus)
    assert (stats["facts"], stats["qa_train"], stats["qa_eval"]) == (144, 288, 144)
    assert (
        stats["documents"]
        == 30 + 10 + 8 + Counter(d.metadata["kind"] for d in corpus.documents)["news"]
    )
    assert 1500 < stats["words"] < 5000


@pytest.mark.parametrize(
    "kwargs, key",
    [
        ({"num_people": 0}, "num_people"),
        ({"num_organisations": 999}, "num_organisations"),
        ({"train_phrasings": 5}, "train_phrasings"),
        ({"num_distractors": -1}, "num_distractors"),
    ],
)
def test_bad_sizes_name_the_argument(kwargs, key):
    with pytest.raises(ValueError, match=key):
        generate_corpus(**kwargs)
