"""Word lists and sentence templates of the synthetic domain (see ``rag.corpus.synthetic``).

Kept apart from the generator so the prose can be reviewed and extended without touching logic.
Document templates are declarative sentences; question templates are questions worded
differently, so a model cannot answer by pattern-matching a training sentence verbatim.

Fact templates are ``(attributes, text)`` pairs: ``attributes`` lists the facts the sentence
states, which is how the generator knows which documents support which question.
Placeholders: ``{name}`` full name, ``{first}``, ``{subj}``/``{Subj}`` (she/he), ``{poss}``/
``{Poss}`` (her/his), ``{obj}`` (her/him), ``{town}``, ``{year}``, ``{org}``, ``{profession}``,
``{a_profession}`` (with its article), ``{product}``, ``{noun}`` (what an organisation is called in
running text), ``{event}`` (a news item's happening).
"""

from __future__ import annotations

import re

Template = tuple[tuple[str, ...], str]

# --- Invented names -------------------------------------------------------------------------
# Names are (onset + vowel) syllables followed by an ending that marks the kind of entity.
# Only the first syllable may open with a consonant cluster, and two-letter vowels are rare, so
# names stay pronounceable. Every ending starts with a consonant so vowels never collide, and
# short real words are avoided by the choice of endings (no bare "-n", "-l", "-dal", "-stow",
# which give "lemon", "medal", "bestow").
FIRST_ONSETS = [
    "b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z",
    "br", "dr", "gr", "kr", "tr", "th", "st", "sk", "vr", "gl",
]  # fmt: skip
ONSETS = ["b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z"]
VOWELS = ["a", "e", "i", "o", "u", "a", "e", "i", "o", "a", "e", "o", "ei", "ou"]

# kind -> (number of syllables before the ending, endings)
NAME_STYLES: dict[str, tuple[int, list[str]]] = {
    "first": (2, ["ra", "wyn", "mir", "ssa", "ric", "vin", "dra", "lis", "nor", "dith"]),
    "family": (2, ["rin", "vic", "quist", "mont", "dard", "sorne", "stad", "brek", "vold", "kett"]),
    "town": (2, ["mere", "vane", "moor", "holt", "wyke", "thorpe", "garth", "brough"]),
    "org": (2, ["lora", "rex", "tium", "nica", "vant", "drix", "mara", "zeon"]),
}

# --- Ordinary vocabulary: the pairing with invented people is what makes a fact unknowable -----
PROFESSIONS = [
    "glassblower", "cartographer", "beekeeper", "clockmaker", "bookbinder", "stonemason",
    "orchardist", "luthier", "weaver", "potter", "archivist", "surveyor", "cooper",
    "apothecary", "lighthouse keeper", "engraver", "saddler", "typesetter", "shipwright",
    "cheesemaker", "ferry pilot", "organ builder",
]  # fmt: skip

# organisation kind -> (what running text calls it, products as (plural, singular)).
# Regular plurals only, so the singular is a literal substring of the plural in every document.
ORG_KINDS: dict[str, tuple[str, list[tuple[str, str]]]] = {
    "Instruments": (
        "firm",
        [
            ("barometers", "barometer"),
            ("brass compasses", "brass compass"),
            ("pocket sextants", "pocket sextant"),
            ("tide clocks", "tide clock"),
        ],
    ),
    "Cooperative": (
        "cooperative",
        [
            ("goat cheeses", "goat cheese"),
            ("apple ciders", "apple cider"),
            ("woollen blankets", "woollen blanket"),
        ],
    ),
    "Works": (
        "company",
        [
            ("copper kettles", "copper kettle"),
            ("cast-iron stoves", "cast-iron stove"),
            ("garden gates", "garden gate"),
        ],
    ),
    "Press": (
        "press",
        [
            ("pocket atlases", "pocket atlas"),
            ("illustrated almanacs", "illustrated almanac"),
            ("railway timetables", "railway timetable"),
        ],
    ),
    "Foundry": (
        "foundry",
        [
            ("church bells", "church bell"),
            ("ship anchors", "ship anchor"),
            ("bronze door knockers", "bronze door knocker"),
        ],
    ),
    "Mills": (
        "mill",
        [
            ("linen sheets", "linen sheet"),
            ("felt hats", "felt hat"),
            ("canvas sails", "canvas sail"),
        ],
    ),
    "Glassworks": (
        "company",
        [
            ("stained glass windows", "stained glass window"),
            ("lamp chimneys", "lamp chimney"),
            ("green bottles", "green bottle"),
        ],
    ),
    "Boatyard": (
        "yard",
        [
            ("fishing skiffs", "fishing skiff"),
            ("river barges", "river barge"),
            ("rowing boats", "rowing boat"),
        ],
    ),
}

BIRTH_YEARS = (1931, 1999)
FOUNDING_YEARS = (1852, 1975)

# --- Biographies ------------------------------------------------------------------------------
BIO_OPENERS: list[Template] = [
    (("birth_town", "birth_year"), "{name} was born in {town} in {year}."),
    (("birth_town", "birth_year"), "{name} came into the world in {year} in the town of {town}."),
    (("birth_town",), "{name} was born and raised in {town}."),
    (("birth_year",), "{name} was born in {year}."),
    (("profession",), "{name} is {a_profession} by trade."),
    (("profession", "employer"), "{name} works as {a_profession} at {org}."),
    (("birth_town", "profession"), "{name} is {a_profession} who was born in {town}."),
    (("birth_year", "profession"), "Born in {year}, {name} is {a_profession}."),
]
BIO_SENTENCES: list[Template] = [
    (("birth_town", "birth_year"), "{Subj} was born in {town} in {year}."),
    (("birth_town",), "{Poss} birthplace is the town of {town}."),
    (("birth_town",), "{Subj} grew up in {town}, where {subj} was born."),
    (("birth_year",), "{Subj} was born in {year}."),
    (("birth_year",), "{Poss} year of birth is {year}."),
    (("profession",), "{Subj} works as {a_profession}."),
    (("profession",), "By trade {subj} is {a_profession}."),
    (("profession",), "{Subj} trained as {a_profession} and has practised the craft ever since."),
    (("employer",), "{Subj} is employed by {org}."),
    (("employer",), "{Subj} has worked for {org} for many years."),
    (("employer",), "{Poss} employer is {org}."),
    (("employer",), "These days {first} is on the staff of {org}."),
    (("profession", "employer"), "{Subj} is {a_profession} at {org}."),
    (("profession", "employer"), "At {org}, {first} is employed as {a_profession}."),
]
BIO_FILLERS = [
    "{Subj} is fond of long walks by the river.",
    "Friends describe {obj} as patient and precise.",
    "In {poss} spare time {subj} keeps a small vegetable garden.",
    "{Subj} plays the fiddle at weekend dances.",
    "{Subj} has a large collection of old postcards.",
    "{first} rarely misses the Saturday market.",
    "Neighbours know {obj} for {poss} generous pots of soup.",
    "{Subj} enjoys swimming in the lake during the summer.",
]

# --- Organisation profiles --------------------------------------------------------------------
ORG_OPENERS: list[Template] = [
    (("founded_year",), "{org} was founded in {year}."),
    (
        ("founded_year", "headquarters"),
        "{org} was founded in {year} and has its headquarters in {town}.",
    ),
    (("headquarters",), "{org} is based in {town}."),
    (("product",), "{org} makes {product}."),
    (("founded_year", "product"), "Founded in {year}, {org} makes {product}."),
]  # fmt: skip
ORG_SENTENCES: list[Template] = [
    (("founded_year",), "The {noun} was established in {year}."),
    (("founded_year",), "Its history goes back to {year}, when it was founded."),
    (("headquarters",), "Its head office stands in {town}."),
    (("headquarters",), "The {noun} has its headquarters in {town}."),
    (("product",), "It is best known for its {product}."),
    (("product",), "Its main line is {product}."),
    (("product",), "The {noun} produces {product} for customers across the region."),
]
ORG_FILLERS = [
    "The {noun} publishes a short newsletter every spring.",
    "Visitors may tour the workshop on the first Saturday of each month.",
    "Many of its staff have been there for decades.",
    "The {noun} takes on apprentices every autumn.",
    "Its founders are remembered with a plaque by the front door.",
]

# --- Gazette news -----------------------------------------------------------------------------
NEWS_HEADLINES = [
    "Around the Valley", "Community Notes", "Regional Gazette", "Market Day Round-up",
    "Weekly Bulletin", "Harbour and Hills", "Parish Pump", "Letters and Notices",
]  # fmt: skip
NEWS_INTROS = [
    "Here is this week's round-up of local news.",
    "The gazette has received the following reports.",
    "Readers have sent in several items this week.",
    "A busy week in the district, as these notes show.",
]
NEWS_CLOSINGS = [
    "Further notices will appear in the next issue.",
    "The editors welcome letters from readers.",
    "Items for the next issue may be left at the post office.",
]
NEWS_PERSON: list[Template] = [
    (("birth_town",), "{name}, a native of {town}, {event}."),
    (("birth_year",), "{name}, born in {year}, {event}."),
    (("profession",), "The {profession} {name} {event}."),
    (("employer",), "{name} of {org} {event}."),
    (("profession", "employer"), "{name}, {a_profession} at {org}, {event}."),
    (("birth_town", "birth_year"), "{name}, who was born in {town} in {year}, {event}."),
    (("birth_year", "profession"), "{name}, {a_profession} born in {year}, {event}."),
    (("birth_town", "employer"), "{name}, a native of {town} who works for {org}, {event}."),
]
NEWS_ORG: list[Template] = [
    (("founded_year",), "{org}, founded in {year}, {event}."),
    (("headquarters",), "{org}, which is based in {town}, {event}."),
    (("product",), "{org}, the maker of {product}, {event}."),
    (("founded_year", "headquarters"), "{org}, founded in {year} and based in {town}, {event}."),
    (("headquarters", "product"), "{org}, the {town} maker of {product}, {event}."),
]
PERSON_EVENTS = [
    "gave a well-attended talk at the public library",
    "was elected treasurer of the rowing club",
    "opened a small exhibition of photographs",
    "won the autumn chess tournament",
    "led a guided walk along the old canal",
    "was thanked for many years of service to the choir",
    "raised money for a new roof on the village hall",
    "judged the baking competition at the harvest fair",
    "published a short pamphlet on local birds",
    "planted a row of lime trees beside the school",
]
ORG_EVENTS = [
    "announced a new apprenticeship scheme",
    "reopened its workshop after the winter repairs",
    "held an open day for families",
    "donated a bench to the town park",
    "reported its busiest season so far",
    "sponsored the regional brass band contest",
    "hired several new apprentices",
]

# --- Questions: five phrasings per attribute; earlier ones are used for training first --------
PERSON_QUESTIONS: dict[str, list[str]] = {
    "birth_town": [
        "Where was {name} born?",
        "In which town was {name} born?",
        "What is the birthplace of {name}?",
        "{name} hails from which town?",
        "From which town does {name} originally hail?",
    ],
    "birth_year": [
        "When was {name} born?",
        "In which year was {name} born?",
        "What is the birth year of {name}?",
        "{name} was born in what year?",
        "Which year saw the birth of {name}?",
    ],
    "employer": [
        "Who employs {name}?",
        "Which organisation does {name} work for?",
        "What is the name of the employer of {name}?",
        "{name} works for which organisation?",
        "By which organisation is {name} employed?",
    ],
    "profession": [
        "What does {name} do for a living?",
        "What is the profession of {name}?",
        "What is the occupation of {name}?",
        "What job does {name} have?",
        "{name} works in which trade?",
    ],
}
ORG_QUESTIONS: dict[str, list[str]] = {
    "founded_year": [
        "When was {org} founded?",
        "In which year was {org} founded?",
        "What is the founding year of {org}?",
        "{org} was established in which year?",
        "Which year saw the founding of {org}?",
    ],
    "headquarters": [
        "Where is {org} headquartered?",
        "In which town is {org} based?",
        "Where are the headquarters of {org}?",
        "{org} has its head office in which town?",
        "Which town is home to the head office of {org}?",
    ],
    "product": [
        "What does {org} make?",
        "What is the main product of {org}?",
        "What does {org} produce?",
        "{org} is best known for making what?",
        "Which product is {org} known for?",
    ],
}


def vocabulary() -> frozenset[str]:
    """Every lower-cased word the templates and word lists can put into a document or question.

    Invented names must avoid it, so a name never reads as an ordinary word of the prose.
    """
    texts: list[str] = [*PROFESSIONS, *ORG_KINDS, *NEWS_HEADLINES, *NEWS_INTROS, *NEWS_CLOSINGS]
    texts += [*BIO_FILLERS, *ORG_FILLERS, *PERSON_EVENTS, *ORG_EVENTS]
    for templates in (
        BIO_OPENERS,
        BIO_SENTENCES,
        ORG_OPENERS,
        ORG_SENTENCES,
        NEWS_PERSON,
        NEWS_ORG,
    ):
        texts += [text for _, text in templates]
    for questions in (*PERSON_QUESTIONS.values(), *ORG_QUESTIONS.values()):
        texts += questions
    for noun, products in ORG_KINDS.values():
        texts += [noun, *(plural for plural, _ in products)]
    return frozenset(re.findall(r"[a-z]+", " ".join(texts).lower()))
