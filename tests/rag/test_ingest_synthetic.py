"""Knobs of the built-in corpus and its updated version (freshness scenario)."""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter

import pytest

from rag.corpus import synthetic_templates as tpl
from rag.corpus.synthetic import generate_corpus, generate_updated_corpus

SMALL = {"num_people": 8, "num_organisations": 3, "num_towns": 5, "num_distractors": 3}


def digest(corpus) -> str:
    rows = [d.to_dict() for d in corpus.documents] + [q.to_dict() for q in corpus.qa_pairs]
    return hashlib.sha256(json.dumps(rows).encode()).hexdigest()


def sentences(text: str) -> list[str]:
    return [s for s in re.split(r"(?<=\.) ", text) if s]


def test_default_output_is_unchanged_by_the_knobs():
    # Digest of the default generate_corpus(): the knobs must not move the default corpus.
    expected = "558185d321184eff4757c41db8c6eb20bebdb9559efda8878d9c951e91168190"
    assert digest(generate_corpus()) == expected
    explicit = generate_corpus(attributes_per_entity=None, news_per_entity=1, noise_sentences=0)
    assert digest(explicit) == expected


def assert_answers_in_support(corpus):
    texts = {d.doc_id: d.text for d in corpus.documents}
    for qa in corpus.qa_pairs:
        assert qa.supporting_doc_ids, qa.qa_id
        for doc_id in qa.supporting_doc_ids:
            assert all(answer in texts[doc_id] for answer in qa.answers), (qa.qa_id, doc_id)


def test_attributes_per_entity_states_and_asks_only_a_subset():
    corpus = generate_corpus(seed=2, attributes_per_entity=2, **SMALL)
    facts = Counter(qa.fact_id.split("/")[0] for qa in corpus.split("eval"))
    assert set(facts.values()) == {2} and len(facts) == 8 + 3
    assert_answers_in_support(corpus)
    default = {qa.fact_id: qa.answers[0] for qa in generate_corpus(seed=2, **SMALL).qa_pairs}
    for doc in corpus.documents:
        if doc.metadata["kind"] != "biography" or doc.doc_id.startswith("distractor"):
            continue
        asked = {qa.fact_id for qa in corpus.qa_pairs if qa.fact_id.startswith(doc.doc_id + "/")}
        assert set(doc.metadata["fact_ids"]) == asked
        for fact_id in set(default) - asked:
            if fact_id.startswith(doc.doc_id + "/") and not fact_id.endswith("employer"):
                assert default[fact_id] not in doc.text, fact_id  # unstated attribute
    single = generate_corpus(seed=2, attributes_per_entity=1, **SMALL)
    assert len(single.split("eval")) == 8 + 3
    assert_answers_in_support(single)


def test_news_per_entity_adds_mentions():
    corpus = generate_corpus(seed=1, news_per_entity=3, **SMALL)
    names = {d.doc_id: d.title for d in corpus.documents if "subject" in d.metadata}
    news = [d for d in corpus.documents if d.metadata["kind"] == "news"]
    assert len({d.doc_id for d in news}) == len(news)
    for entity_id, name in names.items():
        assert sum(name in d.text for d in news) >= 3, entity_id
    base = generate_corpus(seed=1, **SMALL)
    more = sum(len(q.supporting_doc_ids) for q in corpus.qa_pairs)
    assert more > sum(len(q.supporting_doc_ids) for q in base.qa_pairs)
    assert_answers_in_support(corpus)


def test_noise_sentences_only_add_fact_free_sentences():
    base = {d.doc_id: d.text for d in generate_corpus(seed=4, **SMALL).documents}
    noisy = generate_corpus(seed=4, noise_sentences=3, **SMALL)
    for doc in noisy.documents:
        if doc.metadata["kind"] == "news":
            assert doc.text == base[doc.doc_id]
            continue
        added = Counter(sentences(doc.text)) - Counter(sentences(base[doc.doc_id]))
        assert sum(added.values()) == 3, doc.doc_id
        assert not any(re.search(r"\d", s) for s in added)
        assert Counter(sentences(base[doc.doc_id])) <= Counter(sentences(doc.text))
    assert_answers_in_support(noisy)


@pytest.mark.parametrize(
    "kwargs, key",
    [
        ({"attributes_per_entity": 0}, "attributes_per_entity"),
        ({"attributes_per_entity": 5}, "attributes_per_entity"),
        ({"news_per_entity": 0}, "news_per_entity"),
        ({"noise_sentences": 11}, "noise_sentences"),
    ],
)
def test_bad_knob_values_name_the_argument(kwargs, key):
    with pytest.raises(ValueError, match=key):
        generate_corpus(**kwargs)


def test_updated_corpus_changes_facts_and_adds_people():
    base = generate_corpus(seed=3, **SMALL)
    update = generate_updated_corpus(seed=3, changed_fraction=0.5, added_people=2, **SMALL)
    assert update == generate_updated_corpus(seed=3, changed_fraction=0.5, added_people=2, **SMALL)
    new = update.corpus
    assert new.name == "synthetic-seed3-update1"
    assert len(update.changed_fact_ids) == round(0.5 * (8 + 3))
    before = {qa.qa_id: qa for qa in base.qa_pairs}
    after = {qa.qa_id: qa for qa in new.qa_pairs}
    for qa_id, qa in after.items():
        if qa.fact_id in update.changed_fact_ids:
            assert qa.answers[0] != before[qa_id].answers[0]
        elif qa_id in before:
            assert qa.answers == before[qa_id].answers and qa.split == before[qa_id].split
    assert {f.split("/")[1] for f in update.changed_fact_ids} <= {
        "employer", "profession", "headquarters", "product",
    }  # fmt: skip
    old_texts = {d.doc_id: d.text for d in base.documents}
    changed = set(update.changed_doc_ids)
    for doc in new.documents:
        if doc.doc_id in old_texts and doc.doc_id not in changed:
            assert doc.text == old_texts[doc.doc_id]
    for fact_id in update.changed_fact_ids:  # every document stating a changed fact changed
        entity_id = fact_id.split("/")[0]
        assert entity_id in changed
        stating = [d.doc_id for d in new.documents if fact_id in d.metadata["fact_ids"]]
        assert set(stating) <= changed
    assert update.added_doc_ids[:2] == ["person-009", "person-010"]
    assert all(d.startswith("news-") for d in update.added_doc_ids[2:])
    assert len(update.added_fact_ids) == 2 * len(tpl.PERSON_QUESTIONS)
    assert_answers_in_support(new)
    names = [d.title for d in new.documents if "subject" in d.metadata]
    assert len(names) == len(set(names))


def test_an_update_without_changes_is_the_base_corpus():
    base = generate_corpus(seed=0, **SMALL)
    update = generate_updated_corpus(seed=0, changed_fraction=0.0, added_people=0, **SMALL)
    assert [d.to_dict() for d in update.corpus.documents] == [d.to_dict() for d in base.documents]
    assert update.changed_doc_ids == update.added_doc_ids == update.changed_fact_ids == []


def test_updated_corpus_honours_the_knobs_and_checks_values():
    update = generate_updated_corpus(
        seed=5,
        changed_fraction=0.4,
        added_people=3,
        attributes_per_entity=2,
        news_per_entity=2,
        noise_sentences=1,
        **SMALL,
    )
    assert_answers_in_support(update.corpus)
    facts = Counter(qa.fact_id.split("/")[0] for qa in update.corpus.split("eval"))
    assert set(facts.values()) == {2} and len(facts) == 8 + 3 + 3
    with pytest.raises(ValueError, match="changed_fraction"):
        generate_updated_corpus(changed_fraction=1.5)
    with pytest.raises(ValueError, match="added_people"):
        generate_updated_corpus(added_people=-1)
