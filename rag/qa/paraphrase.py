"""More training phrasings of the training questions (fine-tuning data augmentation).

- Built-in corpus: the unused question templates of each fact (``builtin_extra_phrasings``);
  the held-out eval phrasing is never among them.
- User corpora: ``paraphrase_questions`` with rule-based rewrites (``rule_paraphrases``:
  "What is X?" <-> "X is what?", "Which N ..." <-> "What N ...", "the A of B" <-> "B's A", ...)
  or an LM behind ``generate(prompt) -> (text, input_tokens, output_tokens)``.

Only ``train`` questions are paraphrased, a paraphrase keeps its origin's fact group (so
``split_questions`` and the leakage check treat it as the same fact), and a paraphrase equal to
any existing question after normalisation is dropped.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from rag.core.prompts import fill_template
from rag.core.types import Corpus, QAPair
from rag.corpus import synthetic_templates as tpl
from rag.qa.leakage import check_leakage, group_key, normalize

logger = logging.getLogger(__name__)

Generate = Callable[[str], tuple[str, int, int]]
METHODS = ("rules", "lm")
PARAPHRASE_PROMPT = """Rewrite the question below in {n} different ways. Keep the meaning and the
answer exactly the same and keep every name. Reply with one rewrite per line, each starting
with "Q: ", and nothing else.

Question: {question}
"""
_AUX = "is|was|are|were"
_VERB_AUX = "is|was|are|were|does|did|do|has|have|had"
_PREPOSITIONS = set("to for by in at from with of on about into".split())


def _noun_phrase(text: str) -> bool:
    """Whether ``text`` reads as a definite description ("the capital of France"), the only
    case where "What is X?" <-> "X is what?" stays grammatical."""
    words = text.split()
    return (
        len(words) >= 2
        and words[0].lower() in ("the", "a", "an")
        and words[-1].lower() not in _PREPOSITIONS
        and not words[-1].lower().endswith("ed")
    )


def _lower_first(text: str) -> str:
    first, _, rest = text.partition(" ")
    return f"{first.lower()} {rest}".strip() if first in ("The", "A", "An", "This", "Its") else text


Rule = tuple[re.Pattern, Callable[[re.Match], str | None]]
# Patterns apply to the question without its "?"; a rewrite returning None does not apply.
_RULES: list[Rule] = [
    (
        re.compile(rf"^(what|who) ({_AUX}) (.+)$", re.I),
        lambda m: f"{m[3]} {m[2].lower()} {m[1].lower()}" if _noun_phrase(m[3]) else None,
    ),
    (
        re.compile(rf"^(what|who) ({_AUX}) (.+)$", re.I),
        lambda m: (
            f"Can you tell me {m[1].lower()} {m[3]} {m[2].lower()}" if _noun_phrase(m[3]) else None
        ),
    ),
    (
        re.compile(rf"^(.+) ({_AUX}) (what|who)$", re.I),
        lambda m: f"{m[3].capitalize()} {m[2]} {_lower_first(m[1])}",
    ),
    (
        re.compile(rf"^which (\w+) ({_VERB_AUX}) (.+)$", re.I),
        lambda m: f"What {m[1]} {m[2]} {m[3]}",
    ),
    (
        re.compile(rf"^what (\w+) ({_VERB_AUX}) (.+)$", re.I),
        lambda m: f"Which {m[1]} {m[2]} {m[3]}",
    ),
    (re.compile(r"^in which year (.+)$", re.I), lambda m: f"In what year {m[1]}"),
    (re.compile(r"^in what year (.+)$", re.I), lambda m: f"In which year {m[1]}"),
    (
        re.compile(rf"^(.+?) ({_AUX}) (.+?) in (which|what) year$", re.I),
        lambda m: f"In {m[4].lower()} year {m[2]} {_lower_first(m[1])} {m[3]}",
    ),
    (
        re.compile(rf"^(.+?) ({_AUX}) (.+?) in (which|what) (town|city|country|place)$", re.I),
        lambda m: f"In {m[4].lower()} {m[5]} {m[2]} {_lower_first(m[1])} {m[3]}",
    ),
    (
        re.compile(rf"^where ({_AUX}) (.+) (born|based|founded|located|built|held)$", re.I),
        lambda m: f"In which place {m[1].lower()} {m[2]} {m[3]}",
    ),
    (
        re.compile(rf"^(?i:what) ({_AUX}) the (\w+(?: \w+)?) of ([A-Z][^']+)$"),
        lambda m: f"What {m[1]} {m[3]}'s {m[2]}",
    ),
    (
        re.compile(rf"^(?i:what) ({_AUX}) ([A-Z][^']+)'s (.+)$"),
        lambda m: f"What {m[1]} the {m[3]} of {m[2]}",
    ),
]


def rule_paraphrases(question: str) -> list[str]:
    """Rewrites of ``question`` by the template rules, distinct after normalisation."""
    core = question.strip().rstrip("?").strip()
    seen = {normalize(question)}
    found = []
    for pattern, rewrite in _RULES:
        match = pattern.match(core)
        rewritten = rewrite(match) if match else None
        if not rewritten:
            continue
        text = " ".join(rewritten.split())
        text = f"{text[:1].upper()}{text[1:]}?"
        if normalize(text) not in seen:
            seen.add(normalize(text))
            found.append(text)
    return found


def parse_paraphrase_reply(text: str) -> list[str]:
    lines = [
        re.sub(r"^\s*(?:\d+[.)]\s*)?(?:Q\s*:)?\s*", "", line).strip() for line in text.splitlines()
    ]
    return [line if line.endswith("?") else f"{line}?" for line in lines if len(line.split()) >= 3]


def paraphrase_questions(
    qa_pairs: list[QAPair],
    method: str = "rules",
    per_question: int = 2,
    generate: Generate | None = None,
    prompt: str = PARAPHRASE_PROMPT,
    near_threshold: float | None = 0.9,
) -> tuple[list[QAPair], dict[str, Any]]:
    """New ``train`` pairs paraphrasing the ``train`` pairs of ``qa_pairs``.

    Eval pairs are never paraphrased; they only veto a paraphrase equal to one of them after
    normalisation or nearly equal (token Jaccard >= ``near_threshold``; None: exact only).
    """
    if method not in METHODS:
        raise ValueError(
            f"finetune.paraphrase_method must be one of {', '.join(METHODS)}, got {method!r}"
        )
    if per_question < 0:
        raise ValueError(f"finetune.paraphrases must be >= 0, got {per_question}")
    if method == "lm" and generate is None:
        raise ValueError("finetune.paraphrase_method=lm needs a generate(prompt) function")
    stats: Counter[str] = Counter()
    proposals = []  # (origin, candidates)
    for qa in qa_pairs:
        if qa.split != "train" or per_question == 0:
            stats["not_train" if qa.split != "train" else "disabled"] += 1
        elif method == "rules":
            proposals.append((qa, rule_paraphrases(qa.question)))
        else:
            proposals.append(
                (qa, _lm_paraphrases(qa.question, per_question, generate, prompt, stats))
            )
    evals = [qa.question for qa in qa_pairs if qa.split != "train"]
    candidates = [text for _, texts in proposals for text in texts]
    near_eval = set(check_leakage(evals, candidates, near_threshold).leaked) if evals else set()
    taken = {normalize(qa.question) for qa in qa_pairs}
    new = []
    for qa, texts in proposals:
        answers = [normalize(a) for a in qa.answers]
        kept = 0
        for text in texts:
            norm = normalize(text)
            if norm in taken:
                stats["duplicate"] += 1
            elif text in near_eval:
                stats["near_eval_question"] += 1
            elif any(a and f" {a} " in f" {norm} " for a in answers):
                stats["answer_in_question"] += 1
            elif kept < per_question:
                taken.add(norm)
                kept += 1
                new.append(
                    replace(
                        qa,
                        qa_id=f"{qa.qa_id}~para{kept}",
                        question=text,
                        fact_id=group_key(qa),
                        phrasing=qa.phrasing + kept,
                    )
                )
        stats["paraphrased"] += bool(kept)
    stats["added"] = len(new)
    logger.info("added %d paraphrased training questions (%s)", len(new), method)
    return new, dict(stats)


def _lm_paraphrases(question, n, generate, prompt, stats) -> list[str]:
    stats["prompts"] += 1
    text = fill_template(prompt, n=n, question=question)  # a bad template raises, not counted
    try:
        reply, input_tokens, output_tokens = generate(text)
    except Exception as err:  # one failed call (timeout, refusal) must not lose the rest
        stats["generation_errors"] += 1
        logger.warning("paraphrase generation failed for %r: %s", question, err)
        return []
    stats["input_tokens"] += int(input_tokens)
    stats["output_tokens"] += int(output_tokens)
    return parse_paraphrase_reply(reply)


def builtin_extra_phrasings(
    corpus: Corpus, max_per_fact: int | None = None, near_threshold: float | None = 0.9
) -> list[QAPair]:
    """Extra ``train`` pairs of the built-in corpus from each fact's unused question templates.

    Phrasings already used by any pair of the fact (train or eval) are skipped, so the held-out
    wording never becomes training data, and so is any template whose words nearly equal the
    held-out question's (token Jaccard >= ``near_threshold``: "In which town was X born?" is a
    reordering of "X was born in which town?"). At most ``max_per_fact`` per fact (None: all).
    """
    names = {d.doc_id: d.title for d in corpus.documents}
    used: dict[str, set[int]] = {}
    held_out: dict[str, list[str]] = {}
    first: dict[str, QAPair] = {}
    for qa in corpus.qa_pairs:
        used.setdefault(qa.fact_id, set()).add(qa.phrasing)
        first.setdefault(qa.fact_id, qa)
        if qa.split == "eval":
            held_out.setdefault(qa.fact_id, []).append(qa.question)
    extra = []
    for fact_id, qa in first.items():
        entity_id, _, attribute = fact_id.partition("/")
        templates = tpl.PERSON_QUESTIONS.get(attribute) or tpl.ORG_QUESTIONS.get(attribute)
        if not templates or entity_id not in names:
            raise ValueError(f"{fact_id}: not a fact of the built-in corpus")
        added = 0
        for phrasing in range(len(templates)):
            if phrasing in used[fact_id] or (max_per_fact is not None and added >= max_per_fact):
                continue
            question = templates[phrasing].format(name=names[entity_id], org=names[entity_id])
            if (
                near_threshold is not None
                and check_leakage(
                    [question], held_out.get(fact_id, []), near_threshold
                ).overlap_count
            ):
                continue
            added += 1
            extra.append(
                replace(
                    qa,
                    qa_id=f"{fact_id}#p{phrasing}",
                    question=question,
                    phrasing=phrasing,
                    split="train",
                )
            )
    return extra
