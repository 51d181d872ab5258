"""The built-in domain corpus: an invented world generated deterministically from a seed.

People, organisations and towns with invented names carry facts no pretrained model can know, so
closed-book accuracy is near zero and a correct answer can only come from injected knowledge
(retrieval or fine-tuning). Documents are one biography per person, one profile per organisation
and gazette news items naming two to four entities each, so every asked entity is named in at
least two documents. Distractor people share a first or family name with a real person but have
other attributes and no questions: they make retrieval harder.

Each fact has several question phrasings. The first ``train_phrasings`` are for training and
exactly one other, rotating across entities, is held out, so evaluation always asks a wording
that training never showed.
"""

from __future__ import annotations

import logging
import random
from collections import Counter
from dataclasses import dataclass

from rag import synthetic_templates as tpl
from rag.types import Corpus, Document, QAPair

logger = logging.getLogger(__name__)

PHRASINGS_PER_FACT = min(
    len(q) for q in (*tpl.PERSON_QUESTIONS.values(), *tpl.ORG_QUESTIONS.values())
)
# pronoun -> (subject, possessive, object) forms
_PRONOUNS = {"she": ("she", "her", "her"), "he": ("he", "his", "him")}
_PRODUCTS = [
    (kind, product) for kind, (_, products) in tpl.ORG_KINDS.items() for product in products
]
_RESERVED_WORDS = tpl.vocabulary()


@dataclass
class _Organisation:
    entity_id: str
    stem: str
    kind: str
    founded_year: int
    headquarters: str
    product: tuple[str, str]  # (plural, singular)

    @property
    def name(self) -> str:
        return f"{self.stem} {self.kind}"


@dataclass
class _Person:
    entity_id: str
    first: str
    family: str
    pronoun: str
    birth_town: str
    birth_year: int
    employer: _Organisation
    profession: str

    @property
    def name(self) -> str:
        return f"{self.first} {self.family}"


class _NameMaker:
    """Invents capitalised names from syllables, none equal to or containing another."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.taken: list[str] = []

    def make(self, style: str) -> str:
        syllables, endings = tpl.NAME_STYLES[style]
        for _ in range(10_000):
            onsets = [tpl.FIRST_ONSETS] + [tpl.ONSETS] * (syllables - 1)
            stem = "".join(self.rng.choice(o) + self.rng.choice(tpl.VOWELS) for o in onsets)
            name = (stem + self.rng.choice(endings)).capitalize()
            if self._is_free(name.lower()):
                self.taken.append(name.lower())
                return name
        raise ValueError(
            f"cannot invent {len(self.taken) + 1} distinct names; ask for fewer entities"
        )

    def _is_free(self, low: str) -> bool:
        # Containment is refused both ways so that a contains-answer score can never match the
        # wrong entity (a town "Vel" inside an organisation "Velmora").
        return low not in _RESERVED_WORDS and all(low not in t and t not in low for t in self.taken)


def _pick(rng: random.Random, options: list, avoid: object = None):
    """Choose from ``options``, avoiding ``avoid`` when there is any other choice."""
    return rng.choice([o for o in options if o != avoid] or options)


def _new_person(rng, entity_id, first, family, towns, orgs, namesake=None) -> _Person:
    """A person with random attributes, each different from ``namesake``'s when possible."""
    years = list(range(tpl.BIRTH_YEARS[0], tpl.BIRTH_YEARS[1] + 1))
    return _Person(
        entity_id=entity_id,
        first=first,
        family=family,
        pronoun=rng.choice(list(_PRONOUNS)),
        birth_town=_pick(rng, towns, namesake and namesake.birth_town),
        birth_year=_pick(rng, years, namesake and namesake.birth_year),
        employer=_pick(rng, orgs, namesake and namesake.employer),
        profession=_pick(rng, tpl.PROFESSIONS, namesake and namesake.profession),
    )


def _person_fields(p: _Person) -> dict[str, str]:
    subj, poss, obj = _PRONOUNS[p.pronoun]
    article = "an" if p.profession[0] in "aeiou" else "a"
    return {
        "name": p.name,
        "first": p.first,
        "subj": subj,
        "Subj": subj.capitalize(),
        "poss": poss,
        "Poss": poss.capitalize(),
        "obj": obj,
        "town": p.birth_town,
        "year": str(p.birth_year),
        "org": p.employer.name,
        "profession": p.profession,
        "a_profession": f"{article} {p.profession}",
    }


def _org_fields(o: _Organisation) -> dict[str, str]:
    noun = tpl.ORG_KINDS[o.kind][0]
    return {
        "org": o.name,
        "noun": noun,
        "year": str(o.founded_year),
        "town": o.headquarters,
        "product": o.product[0],
    }


def _answers(entity: _Person | _Organisation, attribute: str) -> list[str]:
    """Canonical answer first, then aliases a correct reply might use instead."""
    value = getattr(entity, attribute)
    if isinstance(value, _Organisation):
        return [value.name, value.stem]
    if isinstance(value, tuple):
        return list(value)
    return [str(value)]


def _mentions(entity, attributes, town_ids) -> dict[str, str]:
    """Entity id -> kind for everything a sentence about ``entity`` stating ``attributes`` names."""
    is_person = isinstance(entity, _Person)
    found = {entity.entity_id: "person" if is_person else "organisation"}
    if "employer" in attributes:
        found[entity.employer.entity_id] = "organisation"
    for attribute in ("birth_town", "headquarters"):
        if attribute in attributes:
            found[town_ids[getattr(entity, attribute)]] = "town"
    return found


def _profile_document(rng, entity, town_ids) -> Document:
    """A biography (person) or profile (organisation) stating every attribute, plus filler."""
    if isinstance(entity, _Person):
        openers, sentences, fillers = tpl.BIO_OPENERS, tpl.BIO_SENTENCES, tpl.BIO_FILLERS
        attributes, fields, kind = list(tpl.PERSON_QUESTIONS), _person_fields(entity), "biography"
    else:
        openers, sentences, fillers = tpl.ORG_OPENERS, tpl.ORG_SENTENCES, tpl.ORG_FILLERS
        attributes, fields, kind = list(tpl.ORG_QUESTIONS), _org_fields(entity), "profile"
    covered, opener = rng.choice(openers)
    remaining = [a for a in attributes if a not in covered]
    body = []
    while remaining:
        covered, text = rng.choice([t for t in sentences if set(t[0]) <= set(remaining)])
        body.append(text)
        remaining = [a for a in remaining if a not in covered]
    body += rng.sample(fillers, rng.randint(1, 2))
    rng.shuffle(body)
    return Document(
        doc_id=entity.entity_id,
        title=entity.name,
        text=" ".join(t.format(**fields) for t in [opener, *body]),
        metadata={
            "kind": kind,
            "subject": entity.entity_id,
            "entities": _mentions(entity, attributes, town_ids),
            "fact_ids": [f"{entity.entity_id}/{a}" for a in attributes],
        },
    )


def _group_sizes(rng: random.Random, total: int) -> list[int]:
    """Random group sizes of 2 to 4 summing to ``total`` (a lone 1 only if ``total`` is 1)."""
    sizes = []
    while total > 4:
        size = rng.randint(2, 4)
        size = size - 1 if total - size == 1 else size
        sizes.append(size)
        total -= size
    return [*sizes, total] if total else sizes


def _news_documents(rng, entities, town_ids) -> list[Document]:
    """Gazette items, each naming 2-4 entities with one or two facts apiece; all entities once."""
    order = list(entities)
    rng.shuffle(order)
    documents, start = [], 0
    for number, size in enumerate(_group_sizes(rng, len(order)), start=1):
        group, start = order[start : start + size], start + size
        person_events = iter(rng.sample(tpl.PERSON_EVENTS, size))
        org_events = iter(rng.sample(tpl.ORG_EVENTS, size))
        sentences, mentions, fact_ids = [rng.choice(tpl.NEWS_INTROS)], {}, []
        for entity in group:
            if isinstance(entity, _Person):
                covered, text = rng.choice(tpl.NEWS_PERSON)
                fields = _person_fields(entity) | {"event": next(person_events)}
            else:
                covered, text = rng.choice(tpl.NEWS_ORG)
                fields = _org_fields(entity) | {"event": next(org_events)}
            sentences.append(text.format(**fields))
            mentions |= _mentions(entity, covered, town_ids)
            fact_ids += [f"{entity.entity_id}/{a}" for a in covered]
        sentences.append(rng.choice(tpl.NEWS_CLOSINGS))
        documents.append(
            Document(
                doc_id=f"news-{number:02d}",
                title=f"{rng.choice(tpl.NEWS_HEADLINES)}, no. {number}",
                text=" ".join(sentences),
                metadata={"kind": "news", "entities": mentions, "fact_ids": fact_ids},
            )
        )
    return documents


def _qa_pairs(entities, questions, documents, train_phrasings) -> list[QAPair]:
    """Train phrasings ``0..train_phrasings-1`` and one held-out phrasing per fact."""
    texts = {d.doc_id: d.text for d in documents}
    pairs = []
    for index, entity in enumerate(entities):
        for offset, (attribute, templates) in enumerate(questions.items()):
            fact_id = f"{entity.entity_id}/{attribute}"
            support = [d.doc_id for d in documents if fact_id in d.metadata["fact_ids"]]
            canonical, *aliases = _answers(entity, attribute)
            # An alias is kept only if every supporting document spells it out literally.
            answers = [canonical] + [a for a in aliases if all(a in texts[d] for d in support)]
            spare = len(templates) - train_phrasings
            held_out = train_phrasings + (index + offset) % spare
            for phrasing in [*range(train_phrasings), held_out]:
                question = templates[phrasing].format(name=entity.name, org=entity.name)
                pairs.append(
                    QAPair(
                        qa_id=f"{fact_id}#p{phrasing}",
                        question=question,
                        answers=list(answers),
                        supporting_doc_ids=list(support),
                        fact_id=fact_id,
                        phrasing=phrasing,
                        split="eval" if phrasing == held_out else "train",
                    )
                )
    return pairs


def _check_sizes(num_people, num_organisations, num_towns, num_distractors, train_phrasings):
    limits = {
        "num_people": (num_people, 1, 500),
        "num_organisations": (num_organisations, 1, len(_PRODUCTS)),
        "num_towns": (num_towns, 1, 500),
        "num_distractors": (num_distractors, 0, 500),
        "train_phrasings": (train_phrasings, 0, PHRASINGS_PER_FACT - 1),
    }
    for key, (value, low, high) in limits.items():
        if not low <= value <= high:
            raise ValueError(f"synthetic corpus: {key}={value} must be between {low} and {high}")


def generate_corpus(
    seed: int = 0,
    num_people: int = 30,
    num_organisations: int = 8,
    num_towns: int = 12,
    num_distractors: int = 10,
    train_phrasings: int = 2,
) -> Corpus:
    """Generate the invented-domain corpus; the same arguments always give identical output."""
    _check_sizes(num_people, num_organisations, num_towns, num_distractors, train_phrasings)
    rng = random.Random(seed)
    names = _NameMaker(rng)
    towns = [names.make("town") for _ in range(num_towns)]
    town_ids = {town: f"town-{i:02d}" for i, town in enumerate(towns, start=1)}
    orgs = [
        _Organisation(
            f"org-{i:02d}",
            names.make("org"),
            kind,
            rng.randint(*tpl.FOUNDING_YEARS),
            rng.choice(towns),
            product,
        )
        for i, (kind, product) in enumerate(rng.sample(_PRODUCTS, num_organisations), start=1)
    ]
    people = [
        _new_person(rng, f"person-{i:03d}", names.make("first"), names.make("family"), towns, orgs)
        for i in range(1, num_people + 1)
    ]
    namesakes = [people[i % num_people] for i in range(num_distractors)]
    rng.shuffle(namesakes)
    distractors = []
    for i, namesake in enumerate(namesakes, start=1):
        # Alternate which half of the name is shared, so both kinds of confusion occur.
        first, family = (
            (namesake.first, names.make("family"))
            if i % 2
            else (names.make("first"), namesake.family)
        )
        distractor_id = f"distractor-{i:02d}"
        distractors.append(_new_person(rng, distractor_id, first, family, towns, orgs, namesake))
    documents = [_profile_document(rng, e, town_ids) for e in [*people, *distractors, *orgs]]
    documents += _news_documents(rng, [*people, *orgs, *distractors], town_ids)
    qa_pairs = _qa_pairs(people, tpl.PERSON_QUESTIONS, documents, train_phrasings)
    qa_pairs += _qa_pairs(orgs, tpl.ORG_QUESTIONS, documents, train_phrasings)
    corpus = Corpus(name=f"synthetic-seed{seed}", documents=documents, qa_pairs=qa_pairs)
    logger.info("generated %s: %s", corpus.name, corpus_stats(corpus))
    return corpus


def corpus_stats(corpus: Corpus) -> dict[str, int]:
    """Flat counts for logging: documents, words, distinct facts and QA pairs per split."""
    splits = Counter(qa.split for qa in corpus.qa_pairs)
    stats = {
        "documents": len(corpus.documents),
        "words": sum(len(d.text.split()) for d in corpus.documents),
        "facts": len({qa.fact_id or qa.qa_id for qa in corpus.qa_pairs}),
        "qa_train": splits.pop("train", 0),
        "qa_eval": splits.pop("eval", 0),
    }
    stats |= {f"qa_{name}": count for name, count in sorted(splits.items())}
    return stats
