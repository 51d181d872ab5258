"""Question/answer pairs synthesised from the chunks of a corpus.

- ``cloze`` (offline, no model): questions derived from sentences by rules: a year after a
  preposition ("... completed in 1932." -> "In which year was ... completed?"), a number with its
  unit ("holds 12,000 books" -> "holds how many books?"), a capitalised multi-word name
  ("Marie Curie won ..." -> "Who won ...?"). Sentences opening with a pronoun, and questions with
  no name or number left to anchor them, are dropped: nobody could answer them unseen.
- ``lm``: a generator is asked per chunk for pairs in a strict ``Q:``/``A:`` format, through
  ``generate(prompt) -> (text, input_tokens, output_tokens)`` so the configured generator or an
  OpenAI-compatible endpoint can serve it; the tokens spent are counted as a cost.

Every pair is validated (its answer occurs in its chunk, literally or after normalisation, and
not in its question) and deduplicated; a question asked twice with different answers is dropped
as ambiguous. ``qa_id`` is ``<chunk_id>:<method>-<n>`` (``source_chunk_id`` recovers the chunk),
``supporting_doc_ids`` is the chunk's document, ``split`` is left for ``split_questions``.
"""

from __future__ import annotations

import logging
import random
import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import zip_longest
from typing import Any

from rag.core.prompts import fill_template
from rag.core.types import Chunk, QAPair
from rag.corpus.chunking import sentence_spans
from rag.qa.leakage import UNASSIGNED, normalize

logger = logging.getLogger(__name__)

Generate = Callable[[str], tuple[str, int, int]]
METHODS = ("cloze", "lm")
MAX_ANSWER_WORDS = 12
QA_PROMPT = """Write up to {n} question-answer pairs about the passage below.
Rules: each answer is a short phrase copied exactly from the passage; each question names what
it is about, so it makes sense without the passage; no yes/no questions.
Reply with the pairs only, in exactly this format:
Q: <question>
A: <answer>

Passage:
{passage}
"""
_PAIR = re.compile(
    r"^\s*(?:\d+[.)]\s*)?(?:Q|Question)\s*[:.]\s*(?P<q>.+?)\s*\n\s*(?:A|Answer)\s*[:.]\s*(?P<a>.+?)\s*$",
    re.IGNORECASE | re.MULTILINE,
)


_PRONOUNS = set(
    "he she it they we i you this these those that his her its their our there here".split()
)
_PREPOSITIONS = "in|since|by|until|from|during|before|after|around"
_AUX = "was|were|is|are|has|have|had|will|would|can|could"
_DETERMINERS = set("the a an this that these those its their his her our some many most".split())
_LEADING = _DETERMINERS | set(
    "in on at by for from with after before during since when while according although however "
    "today then later early both all other another every each as".split()
)
_THINGS = set(
    "university college school institute company corporation inc ltd llc group bank museum "
    "river lake mountain mount sea ocean island islands street road avenue square park bridge "
    "tower hall church cathedral castle palace station airport city county state states kingdom "
    "republic empire union council committee ministry department agency society association "
    "foundation press mills works foundry cooperative instruments glassworks boatyard prize "
    "award war act treaty festival theatre theater hospital library centre center project "
    "programme program party club team valley gazette times journal review".split()
)
_YEAR = re.compile(rf"\b(?:(?P<prep>{_PREPOSITIONS})\s+)?(?P<year>1[5-9]\d\d|20\d\d)\b", re.I)
_NUMBER = re.compile(
    r"(?<![\w.,/-])(?P<n>(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?)(?![\w/-]|[.,]\d)"
    r"(?P<unit>\s*%|\s+per ?cent\b|\s+[a-z][a-z-]+)?"
)
_NAME = re.compile(
    r"\b[A-Z][\w'’-]*[a-z](?:\s+(?:(?:of|de|du|la|le|van|von|der|da|di|del|and|the|for)\s+)?"
    r"[A-Z][\w'’-]*[a-z])+"
)
_FRONTABLE = re.compile(rf"^(?P<subj>[^,]+?)\s+(?P<aux>{_AUX})\s+(?P<rest>.+)$")


@dataclass
class ClozeCandidate:
    question: str
    answer: str
    kind: str  # year | number | entity
    sentence_start: int  # offset of the source sentence in the text


def cloze_candidates(text: str) -> Iterator[ClozeCandidate]:
    """Rule-made questions for every declarative sentence of ``text``."""
    for start, end in sentence_spans(text):
        sentence = " ".join(text[start:end].split())
        words = sentence.split()
        if not (5 <= len(words) <= 40 and sentence[0].isupper() and sentence.endswith(".")):
            continue
        if words[0].lower() in _PRONOUNS or "?" in sentence:
            continue
        body = sentence[:-1]
        for question, answer, kind in [
            *_year_questions(body),
            *_number_questions(body),
            *_name_questions(body),
        ]:
            question = " ".join(question.split())
            anchors = [
                w for w in question.split()[1:] if w[0].isupper() or any(c.isdigit() for c in w)
            ]
            if anchors and len(question.split()) >= 4:
                yield ClozeCandidate(question[0].upper() + question[1:], answer, kind, start)


def _lower_determiner(subject: str) -> str:
    first, _, rest = subject.partition(" ")
    return f"{first.lower()} {rest}".strip() if first.lower() in _DETERMINERS else subject


def _year_questions(body: str) -> Iterator[tuple[str, str, str]]:
    for m in _YEAR.finditer(body):
        if not m["prep"]:
            continue  # "the 1911 prize" has no natural question
        prep, year = m["prep"].lower(), m["year"]
        before, after = body[: m.start()].rstrip(), body[m.end() :]
        if not before:  # "In 1911, Curie won the prize" -> "Curie won the prize in which year?"
            rest = after.lstrip(" ,")
            yield f"{rest[:1].upper()}{rest[1:]} {prep} which year?", year, "year"
            continue
        fronted = _FRONTABLE.match(before + after)
        if fronted and len(fronted["subj"]) < m.start():
            subject = _lower_determiner(fronted["subj"])
            yield (
                f"{prep.capitalize()} which year {fronted['aux']} {subject} {fronted['rest']}?",
                year,
                "year",
            )
        else:
            yield f"{body[: m.start('year')]}which year{after}?", year, "year"


def _number_questions(body: str) -> Iterator[tuple[str, str, str]]:
    for m in _NUMBER.finditer(body):
        unit = (m["unit"] or "").strip()
        if not unit or _YEAR.fullmatch(m["n"]):
            continue
        if unit == "%" or unit.startswith("per"):
            question = f"{body[: m.start()]}what percentage{body[m.end() :]}?"
        else:
            question = f"{body[: m.start()]}how many{body[m.end('n') :]}?"
        yield question, m["n"], "number"


def _name_questions(body: str) -> Iterator[tuple[str, str, str]]:
    for m in _NAME.finditer(body):
        words = m.group(0).split()
        while words and words[0].lower() in _LEADING:
            words = words[1:]
        if len(words) < 2 or words[-1].endswith(("'s", "’s")):
            continue
        name = " ".join(words)
        start = m.end() - len(name)
        wh = "What" if any(w.lower() in _THINGS for w in words) else "Who"
        prefix, after = body[:start], body[start + len(name) :]
        if prefix.strip().lower() in ("", "the"):  # the subject: "Marie Curie won ..."
            if re.match(r"\s+[a-z]", after):
                yield f"{wh}{after}?", name, "entity"
        elif not after.startswith(("'", "’")):
            prefix = re.sub(r"\bthe\s+$", "", prefix)
            follows_preposition = re.search(
                rf"\b(?:{_PREPOSITIONS}|with|to|for|at|of|on)\s+$", prefix
            )
            pronoun = wh.lower() if wh == "What" or not follows_preposition else "whom"
            yield f"{prefix}{pronoun}{after}?", name, "entity"


def source_chunk_id(qa_id: str) -> str:
    return qa_id.rsplit(":", 1)[0]


def parse_qa_reply(text: str) -> list[tuple[str, str]]:
    """(question, answer) pairs of a reply in the ``Q:``/``A:`` format; anything else is ignored."""
    return [(m["q"].strip(), _clean_answer(m["a"])) for m in _PAIR.finditer(text)]


def _clean_answer(text: str) -> str:
    return text.strip().rstrip(".").strip("\"'“”‘’").rstrip(".").strip()


def supported(answer: str, passage: str) -> bool:
    """The answer occurs in the passage as whole words, literally or after normalisation."""
    if re.search(rf"(?<!\w){re.escape(answer)}(?!\w)", passage):
        return True
    norm = normalize(answer)
    return bool(norm) and f" {norm} " in f" {normalize(passage)} "


def _reject_reason(question: str, answer: str, passage: str) -> str | None:
    if not question or not answer:
        return "empty"
    if len(answer.split()) > MAX_ANSWER_WORDS:
        return "answer too long"
    if not supported(answer, passage):
        return "answer not in chunk"
    if f" {normalize(answer)} " in f" {normalize(question)} ":
        return "answer in question"
    return None


def synthesize_qa(
    chunks: list[Chunk],
    method: str = "cloze",
    *,
    max_per_chunk: int = 3,
    seed: int = 0,
    generate: Generate | None = None,
    max_chunks: int | None = None,
    prompt: str = QA_PROMPT,
) -> tuple[list[QAPair], dict[str, Any]]:
    """Validated, deduplicated QA pairs from ``chunks`` and statistics (counts, tokens spent).

    ``max_chunks`` draws that many chunks (seeded) to bound an LM's cost. ``fact_id`` groups
    the pairs of one sentence (cloze) or one chunk (lm), so ``split_questions`` never separates
    two questions that reveal each other's answer.
    """
    if method not in METHODS:
        raise ValueError(
            f"qa.source must be one of {', '.join(METHODS)} to synthesise, got {method!r}"
        )
    if max_per_chunk < 1:
        raise ValueError(f"qa.max_per_chunk must be >= 1, got {max_per_chunk}")
    if method == "lm" and generate is None:
        raise ValueError("qa.source=lm needs a generate(prompt) -> (text, in_tokens, out_tokens)")
    chosen = list(chunks)
    if max_chunks is not None and max_chunks < len(chosen):
        keep = set(random.Random(seed).sample(range(len(chosen)), max_chunks))
        chosen = [c for i, c in enumerate(chosen) if i in keep]
    stats: dict[str, Any] = {"method": method, "chunks": len(chosen), "candidates": 0}
    stats |= {"prompts": 0, "input_tokens": 0, "output_tokens": 0, "generation_errors": 0}
    rejected: Counter[str] = Counter()
    proposals: list[tuple[QAPair, str]] = []  # (pair, kind)
    for chunk in chosen:
        if method == "cloze":
            found = _cloze_pairs(chunk, max_per_chunk, seed, rejected)
        else:
            found = _lm_pairs(chunk, max_per_chunk, generate, prompt, stats, rejected)
        stats["candidates"] += len(found)
        proposals += found
    if method == "lm" and stats["prompts"] and stats["generation_errors"] == stats["prompts"]:
        raise RuntimeError(f"every one of {stats['prompts']} generation calls failed; see the log")
    pairs, kinds = _deduplicate(proposals, rejected)
    stats |= {"accepted": len(pairs), "rejected": dict(rejected), "by_kind": dict(kinds)}
    logger.info("synthesised %d QA pairs (%s) from %d chunks", len(pairs), method, len(chosen))
    return pairs, stats


def _cloze_pairs(
    chunk: Chunk, limit: int, seed: int, rejected: Counter
) -> list[tuple[QAPair, str]]:
    found = []
    for candidate in cloze_candidates(chunk.text):
        reason = _reject_reason(candidate.question, candidate.answer, chunk.text)
        if reason:
            rejected[reason] += 1
            continue
        found.append(candidate)
    # A seeded pick per chunk, interleaving kinds so one kind does not crowd out the rest.
    rng = random.Random(f"{seed}/{chunk.chunk_id}")
    rng.shuffle(found)
    by_kind: dict[str, list] = {}
    for candidate in found:
        by_kind.setdefault(candidate.kind, []).append(candidate)
    ordered = [c for group in zip_longest(*by_kind.values()) for c in group if c]
    if len(ordered) > limit:
        rejected["over max_per_chunk"] += len(ordered) - limit
    pairs = []
    for n, candidate in enumerate(ordered[:limit]):
        fact_id = f"{chunk.doc_id}@{chunk.char_start + candidate.sentence_start}/cloze"
        pairs.append(
            (
                _pair(chunk, "cloze", n, candidate.question, candidate.answer, fact_id),
                candidate.kind,
            )
        )
    return pairs


def _lm_pairs(chunk, limit, generate, prompt, stats, rejected) -> list[tuple[QAPair, str]]:
    stats["prompts"] += 1
    text = fill_template(prompt, n=limit, passage=chunk.text)  # a bad template raises
    try:
        reply, input_tokens, output_tokens = generate(text)
    except Exception as err:  # one failed call (timeout, refusal) must not lose the rest
        stats["generation_errors"] += 1
        logger.warning("generation failed for chunk %s: %s", chunk.chunk_id, err)
        return []
    stats["input_tokens"] += int(input_tokens)
    stats["output_tokens"] += int(output_tokens)
    parsed = parse_qa_reply(reply)
    if not parsed:
        rejected["unparsable reply"] += 1
    pairs = []
    for question, answer in parsed:
        question = question if question.endswith("?") else f"{question.rstrip('.')}?"
        reason = _reject_reason(question, answer, chunk.text)
        if reason:
            rejected[reason] += 1
        elif len(pairs) >= limit:
            rejected["over max_per_chunk"] += 1
        else:
            n = len(pairs)
            pairs.append((_pair(chunk, "lm", n, question, answer, f"{chunk.chunk_id}/lm"), "lm"))
    return pairs


def _pair(chunk: Chunk, method: str, n: int, question: str, answer: str, fact_id: str) -> QAPair:
    return QAPair(
        qa_id=f"{chunk.chunk_id}:{method}-{n}",
        question=question,
        answers=[answer],
        supporting_doc_ids=[chunk.doc_id],
        fact_id=fact_id,
        split=UNASSIGNED,
    )


def _deduplicate(proposals, rejected: Counter) -> tuple[list[QAPair], Counter]:
    """First occurrence of each normalised question; a question with two answers is dropped."""
    first: dict[str, tuple[QAPair, str]] = {}
    ambiguous: set[str] = set()
    for qa, kind in proposals:
        key = normalize(qa.question)
        if key not in first:
            first[key] = (qa, kind)
        elif normalize(first[key][0].answers[0]) != normalize(qa.answers[0]):
            ambiguous.add(key)
        else:
            rejected["duplicate"] += 1
    rejected["ambiguous"] += sum(1 for qa, _ in proposals if normalize(qa.question) in ambiguous)
    kept = [(qa, kind) for key, (qa, kind) in first.items() if key not in ambiguous]
    if not rejected["ambiguous"]:
        del rejected["ambiguous"]
    return [qa for qa, _ in kept], Counter(kind for _, kind in kept)
