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

Knobs (defaults reproduce the original corpus byte for byte): ``attributes_per_entity`` states
and asks only a subset of each entity's attributes, ``news_per_entity`` names every entity in
more gazette items, ``noise_sentences`` adds fact-free filler to each profile. Each knob draws
from its own seeded stream, so the main stream (and with it the default output) is untouched.
``generate_updated_corpus`` gives a later version of the same world (changed facts, new people)
for freshness experiments.
"""

from __future__ import annotations

import logging
import random
from collections import Counter
from dataclasses import dataclass, field

from rag.core.types import Corpus, Document, QAPair
from rag.corpus import synthetic_templates as tpl

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
# Fact-free filler for the ``noise_sentences`` knob: no digits, names, professions or products,
# so no answer string can occur in it.
_NOISE = [
    "The weather that season was mild and dry.",
    "Local records from those years are incomplete.",
    "The road into town was resurfaced not long ago.",
    "A new bakery opened on the corner of the square.",
    "The autumn fair drew visitors from the nearby valleys.",
    "Several old photographs of the harbour survive.",
    "The library keeps a folder of newspaper cuttings on the subject.",
    "Heavy rain flooded the lower meadows one spring.",
    "The market hall was repainted in a pale green.",
    "Few of the original windows remain today.",
]
_CHANGEABLE = {"person": ("employer", "profession"), "organisation": ("headquarters", "product")}


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


def _profile_document(rng, entity, town_ids, stated=None, noise=None) -> Document:
    """A biography (person) or profile (organisation) stating every attribute (or ``stated``),
    plus filler; ``noise`` is ``(rng, count)`` of extra fact-free sentences."""
    if isinstance(entity, _Person):
        openers, sentences, fillers = tpl.BIO_OPENERS, tpl.BIO_SENTENCES, tpl.BIO_FILLERS
        attributes, fields, kind = list(tpl.PERSON_QUESTIONS), _person_fields(entity), "biography"
    else:
        openers, sentences, fillers = tpl.ORG_OPENERS, tpl.ORG_SENTENCES, tpl.ORG_FILLERS
        attributes, fields, kind = list(tpl.ORG_QUESTIONS), _org_fields(entity), "profile"
    attributes = [a for a in attributes if stated is None or a in stated]
    # A neutral opener when the stated subset matches no opener (it never does by default).
    neutral = (
        (),
        "{name} is well known in the district."
        if kind == "biography"
        else "{org} is a local {noun}.",
    )
    covered, opener = rng.choice([o for o in openers if set(o[0]) <= set(attributes)] or [neutral])
    remaining = [a for a in attributes if a not in covered]
    body = []
    while remaining:
        covered, text = rng.choice([t for t in sentences if set(t[0]) <= set(remaining)])
        body.append(text)
        remaining = [a for a in remaining if a not in covered]
    body += rng.sample(fillers, rng.randint(1, 2))
    rng.shuffle(body)
    if noise and noise[1]:
        noise_rng, count = noise
        pool = [f for f in [*fillers, *_NOISE] if f not in body]
        for sentence in noise_rng.sample(pool, min(count, len(pool))):
            body.insert(noise_rng.randint(0, len(body)), sentence)
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


def _news_documents(rng, entities, town_ids, stated=None, first_number=1) -> list[Document]:
    """Gazette items, each naming 2-4 entities with one or two facts apiece; all entities once.

    ``stated`` (entity id -> attributes) limits which facts a sentence may state.
    """
    order = list(entities)
    rng.shuffle(order)
    documents, start = [], 0
    for number, size in enumerate(_group_sizes(rng, len(order)), start=first_number):
        group, start = order[start : start + size], start + size
        person_events = iter(rng.sample(tpl.PERSON_EVENTS, size))
        org_events = iter(rng.sample(tpl.ORG_EVENTS, size))
        sentences, mentions, fact_ids = [rng.choice(tpl.NEWS_INTROS)], {}, []
        for entity in group:
            allowed = (stated or {}).get(entity.entity_id)
            if isinstance(entity, _Person):
                covered, text = rng.choice(_allowed(tpl.NEWS_PERSON, allowed))
                fields = _person_fields(entity) | {"event": next(person_events)}
            else:
                covered, text = rng.choice(_allowed(tpl.NEWS_ORG, allowed))
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


def _allowed(templates, attributes):
    return (
        templates if attributes is None else [t for t in templates if set(t[0]) <= set(attributes)]
    )


def _qa_pairs(entities, questions, documents, train_phrasings, stated=None) -> list[QAPair]:
    """Train phrasings ``0..train_phrasings-1`` and one held-out phrasing per fact."""
    texts = {d.doc_id: d.text for d in documents}
    pairs = []
    for index, entity in enumerate(entities):
        for offset, (attribute, templates) in enumerate(questions.items()):
            if stated is not None and attribute not in stated[entity.entity_id]:
                continue
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
    _check_limits(limits)


def _check_limits(limits: dict[str, tuple[int, int, int]]) -> None:
    for key, (value, low, high) in limits.items():
        if not low <= value <= high:
            raise ValueError(f"synthetic corpus: {key}={value} must be between {low} and {high}")


@dataclass
class _World:
    rng: random.Random  # the main stream, positioned after the entities were drawn
    names: _NameMaker
    towns: list[str]
    town_ids: dict[str, str]
    orgs: list[_Organisation]
    people: list[_Person]
    distractors: list[_Person]
    namesakes: dict[str, list[_Person]] = field(default_factory=dict)  # person id -> distractors


def _build_world(seed, num_people, num_organisations, num_towns, num_distractors) -> _World:
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
    world = _World(rng, names, towns, town_ids, orgs, people, [])
    for i, namesake in enumerate(namesakes, start=1):
        # Alternate which half of the name is shared, so both kinds of confusion occur.
        first, family = (
            (namesake.first, names.make("family"))
            if i % 2
            else (names.make("first"), namesake.family)
        )
        distractor_id = f"distractor-{i:02d}"
        distractor = _new_person(rng, distractor_id, first, family, towns, orgs, namesake)
        world.distractors.append(distractor)
        world.namesakes.setdefault(namesake.entity_id, []).append(distractor)
    return world


def _stated_attributes(seed, entities, per_entity) -> dict[str, tuple[str, ...]] | None:
    """Entity id -> the attributes its documents state and questions ask (None: all)."""
    if per_entity is None:
        return None
    rng = random.Random(f"{seed}/attributes")
    stated = {}
    for entity in entities:
        every = list(tpl.PERSON_QUESTIONS if isinstance(entity, _Person) else tpl.ORG_QUESTIONS)
        chosen = rng.sample(every, min(per_entity, len(every)))
        stated[entity.entity_id] = tuple(a for a in every if a in chosen)
    return stated


def _documents(world, seed, stated, news_per_entity, noise_sentences) -> list[Document]:
    noise = (random.Random(f"{seed}/noise"), noise_sentences)
    rng, town_ids = world.rng, world.town_ids
    profiled = [*world.people, *world.distractors, *world.orgs]
    documents = [_profile_document(rng, e, town_ids, _get(stated, e), noise) for e in profiled]
    in_news = [*world.people, *world.orgs, *world.distractors]
    documents += _news_documents(rng, in_news, town_ids, stated)
    extra_rng = random.Random(f"{seed}/news")
    for _ in range(news_per_entity - 1):
        number = sum(d.metadata["kind"] == "news" for d in documents) + 1
        documents += _news_documents(extra_rng, in_news, town_ids, stated, number)
    return documents


def _get(stated, entity):
    return None if stated is None else stated[entity.entity_id]


def _check_knobs(attributes_per_entity, news_per_entity, noise_sentences) -> None:
    limits = {
        "news_per_entity": (news_per_entity, 1, 5),
        "noise_sentences": (noise_sentences, 0, 10),
    }
    if attributes_per_entity is not None:
        limits["attributes_per_entity"] = (attributes_per_entity, 1, len(tpl.PERSON_QUESTIONS))
    _check_limits(limits)


def generate_corpus(
    seed: int = 0,
    num_people: int = 30,
    num_organisations: int = 8,
    num_towns: int = 12,
    num_distractors: int = 10,
    train_phrasings: int = 2,
    attributes_per_entity: int | None = None,
    news_per_entity: int = 1,
    noise_sentences: int = 0,
) -> Corpus:
    """Generate the invented-domain corpus; the same arguments always give identical output.

    ``attributes_per_entity`` (None: all 4 of a person, 3 of an organisation) limits the facts
    stated and asked per entity; ``news_per_entity`` is how many gazette items name each entity;
    ``noise_sentences`` adds that many fact-free sentences to each biography and profile.
    """
    _check_sizes(num_people, num_organisations, num_towns, num_distractors, train_phrasings)
    _check_knobs(attributes_per_entity, news_per_entity, noise_sentences)
    world = _build_world(seed, num_people, num_organisations, num_towns, num_distractors)
    entities = [*world.people, *world.distractors, *world.orgs]
    stated = _stated_attributes(seed, entities, attributes_per_entity)
    documents = _documents(world, seed, stated, news_per_entity, noise_sentences)
    qa_pairs = _qa_pairs(world.people, tpl.PERSON_QUESTIONS, documents, train_phrasings, stated)
    qa_pairs += _qa_pairs(world.orgs, tpl.ORG_QUESTIONS, documents, train_phrasings, stated)
    corpus = Corpus(name=f"synthetic-seed{seed}", documents=documents, qa_pairs=qa_pairs)
    logger.info("generated %s: %s", corpus.name, corpus_stats(corpus))
    return corpus


@dataclass
class UpdatedCorpus:
    """A later version of a synthetic corpus and what changed since the base version."""

    corpus: Corpus
    changed_doc_ids: list[str]  # present in both versions, text differs
    added_doc_ids: list[str]
    changed_fact_ids: list[str]  # same question, new answer
    added_fact_ids: list[str]


def _change_fact(rng, world, entity, stated, used_products) -> str | None:
    """Give ``entity`` a new value for one changeable, stated attribute; returns the fact id."""
    is_person = isinstance(entity, _Person)
    kind = "person" if is_person else "organisation"
    options = [a for a in _CHANGEABLE[kind] if stated is None or a in stated[entity.entity_id]]
    # Avoid the old value and every namesake's, so a retrieval mix-up still gives a wrong answer.
    avoid = [entity, *world.namesakes.get(entity.entity_id, [])]
    choices = {
        "employer": world.orgs,
        "profession": tpl.PROFESSIONS,
        "headquarters": world.towns,
        # another product of the same kind of organisation, not made by anyone yet
        "product": [p for k, p in _PRODUCTS if not is_person and k == entity.kind],
    }
    candidates = {
        a: [
            c
            for c in choices[a]
            if (a != "product" or c not in used_products) and all(getattr(e, a) != c for e in avoid)
        ]
        for a in options
    }
    options = [a for a in options if candidates[a]]
    if not options:
        return None
    attribute = rng.choice(options)
    value = rng.choice(candidates[attribute])
    if attribute == "product":
        used_products.discard(entity.product)
        used_products.add(value)
    setattr(entity, attribute, value)
    return f"{entity.entity_id}/{attribute}"


def generate_updated_corpus(
    seed: int = 0,
    *,
    changed_fraction: float = 0.2,
    added_people: int = 5,
    update_seed: int = 1,
    **corpus_args,
) -> UpdatedCorpus:
    """The world of ``generate_corpus(seed, **corpus_args)`` some time later.

    About ``changed_fraction`` of the asked people and organisations have one fact changed (a
    person's employer or profession, an organisation's headquarters or product) and every
    document stating it says the new value; ``added_people`` new people get a biography and
    gazette items. Unchanged documents are byte-identical to the base version's.
    """
    if not 0.0 <= changed_fraction <= 1.0:
        raise ValueError(f"synthetic corpus: changed_fraction={changed_fraction} must be in [0, 1]")
    _check_limits({"added_people": (added_people, 0, 500)})
    base = generate_corpus(seed, **corpus_args)
    args = {**_defaults(), **corpus_args}
    sizes = [args[k] for k in ("num_people", "num_organisations", "num_towns", "num_distractors")]
    world = _build_world(seed, *sizes)
    entities = [*world.people, *world.distractors, *world.orgs]
    stated = _stated_attributes(seed, entities, args["attributes_per_entity"])
    rng = random.Random(f"{seed}/update/{update_seed}")
    used_products = {o.product for o in world.orgs}
    asked = [*world.people, *world.orgs]
    changed = [
        _change_fact(rng, world, entity, stated, used_products)
        for entity in rng.sample(asked, round(changed_fraction * len(asked)))
    ]
    documents = _documents(world, seed, stated, args["news_per_entity"], args["noise_sentences"])
    names = _NameMaker(rng)
    names.taken = list(world.names.taken)
    first_id = len(world.people) + 1
    new_people = [
        _new_person(
            rng,
            f"person-{first_id + i:03d}",
            names.make("first"),
            names.make("family"),
            world.towns,
            world.orgs,
        )
        for i in range(added_people)
    ]
    if new_people:
        new_stated = _stated_attributes(
            f"{seed}/update/{update_seed}", new_people, args["attributes_per_entity"]
        )
        if stated is not None:
            stated |= new_stated
        noise = (rng, args["noise_sentences"])
        documents += [
            _profile_document(rng, p, world.town_ids, _get(stated, p), noise) for p in new_people
        ]
        number = sum(d.metadata["kind"] == "news" for d in documents) + 1
        documents += _news_documents(rng, new_people, world.town_ids, stated, number)
    people = [*world.people, *new_people]
    qa_pairs = _qa_pairs(people, tpl.PERSON_QUESTIONS, documents, args["train_phrasings"], stated)
    qa_pairs += _qa_pairs(world.orgs, tpl.ORG_QUESTIONS, documents, args["train_phrasings"], stated)
    corpus = Corpus(f"synthetic-seed{seed}-update{update_seed}", documents, qa_pairs)
    before = {d.doc_id: d.text for d in base.documents}
    base_facts = {qa.fact_id for qa in base.qa_pairs}
    return UpdatedCorpus(
        corpus=corpus,
        changed_doc_ids=[d.doc_id for d in documents if before.get(d.doc_id, d.text) != d.text],
        added_doc_ids=[d.doc_id for d in documents if d.doc_id not in before],
        changed_fact_ids=sorted(f for f in changed if f),
        added_fact_ids=sorted({qa.fact_id for qa in qa_pairs} - base_facts),
    )


def _defaults() -> dict:
    import inspect

    return {
        name: p.default
        for name, p in inspect.signature(generate_corpus).parameters.items()
        if name != "seed"
    }


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
