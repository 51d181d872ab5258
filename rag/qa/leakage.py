"""Deterministic train/eval splits by fact, and the check that no eval question leaks into training.

A fact's phrasings and paraphrases share a group (``fact_id``, else the normalised question), and
a group is never split across sides. ``check_leakage`` then compares every eval question with the
training questions and answers (documents are excluded: they contain the answers by design) after
normalisation, exactly and, optionally, as near-duplicates (token Jaccard >= 0.9).
"""

from __future__ import annotations

import hashlib
import logging
import math
import re
import unicodedata
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from rag.core.errors import UserError
from rag.core.types import QAPair

logger = logging.getLogger(__name__)

SPLITS = ("train", "eval")
UNASSIGNED = ""  # split of a pair that ``split_questions`` has not placed yet
ALLOW_KEY = "qa.allow_leakage"
_NON_WORD = re.compile(r"[^\w\s]|_")


class LeakageError(UserError, ValueError):
    """Eval questions also occur in the training data; the message lists them and the way out."""


def normalize(text: str) -> str:
    """Lower-case, punctuation removed, whitespace collapsed (Unicode-aware)."""
    text = unicodedata.normalize("NFKC", text).lower()
    return " ".join(_NON_WORD.sub(" ", text).split())


def group_key(qa: QAPair) -> str:
    """What ties the phrasings of one fact together: ``fact_id``, else the normalised question."""
    return qa.fact_id or f"q:{normalize(qa.question)}"


def _rank(seed: int, key: str) -> str:
    return hashlib.sha256(f"{seed}\0{key}".encode()).hexdigest()


def split_questions(qa_pairs: list[QAPair], eval_fraction: float, seed: int = 0) -> list[QAPair]:
    """Copies of ``qa_pairs`` with every ``split`` set, whole fact groups on one side.

    Pairs that already carry ``train`` or ``eval`` keep it, and unassigned members of their group
    follow them (``eval`` wins in a mixed group). The other groups are ordered by a hash of
    (seed, group) and the first ``round(eval_fraction * groups)`` go to eval (at least one, and
    at least one left for training when ``eval_fraction < 1``). Adding questions later moves few
    existing ones.
    """
    if not 0.0 < eval_fraction <= 1.0:
        raise ValueError(f"qa.eval_fraction must be in (0, 1], got {eval_fraction}")
    groups: dict[str, list[QAPair]] = defaultdict(list)
    for qa in qa_pairs:
        if qa.split not in (*SPLITS, UNASSIGNED):
            raise ValueError(f"question {qa.qa_id}: split must be train or eval, got {qa.split!r}")
        groups[group_key(qa)].append(qa)
    side: dict[str, str] = {}
    free = []
    for key, members in groups.items():
        preset = {qa.split for qa in members} - {UNASSIGNED}
        if preset:
            side[key] = "eval" if "eval" in preset else "train"
        else:
            free.append(key)
    free.sort(key=lambda k: _rank(seed, k))
    wanted = round(eval_fraction * len(free))
    if free and eval_fraction < 1.0 and len(free) > 1:
        wanted = min(wanted, len(free) - 1)
    if free and "eval" not in side.values():
        wanted = max(wanted, 1)
    side |= {key: "eval" if i < wanted else "train" for i, key in enumerate(free)}
    return [replace(qa, split=qa.split or side[group_key(qa)]) for qa in qa_pairs]


def training_texts(train_pairs: list[QAPair]) -> list[str]:
    """The texts fine-tuning sees besides the documents: questions and their answers."""
    return [text for qa in train_pairs for text in (qa.question, *qa.answers)]


@dataclass
class LeakageReport:
    """How many eval questions occur in the training texts (exactly or nearly)."""

    eval_questions: int
    overlap_count: int
    share: float
    exact: int
    near: int
    threshold: float | None
    examples: list[dict[str, Any]] = field(default_factory=list)  # at most 5
    leaked: list[str] = field(default_factory=list)  # every leaked eval question

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _prefix_length(size: int, threshold: float) -> int:
    # Two sets with Jaccard >= t share a token among the first |x| - ceil(t|x|) + 1 tokens of
    # each, in one global order (prefix filtering, Chaudhuri et al., ICDE 2006).
    return size - math.ceil(threshold * size - 1e-9) + 1


def check_leakage(
    train_texts: list[str], eval_questions: list[str], near_threshold: float | None = 0.9
) -> LeakageReport:
    """Eval questions equal (after ``normalize``) or near-equal to a training text.

    ``near_threshold=None`` checks exact matches only.
    """
    if near_threshold is not None and not 0.0 < near_threshold <= 1.0:
        raise ValueError(f"qa.leakage_threshold must be in (0, 1], got {near_threshold}")
    exact = {}
    for text in train_texts:
        exact.setdefault(normalize(text), text)
    train_sets = [frozenset(n.split()) for n in exact if n]
    train_originals = [exact[n] for n in exact if n]
    frequency = Counter(token for tokens in train_sets for token in tokens)

    def ordered(tokens: frozenset[str]) -> list[str]:
        return sorted(tokens, key=lambda t: (frequency[t], t))  # rare tokens first

    index: dict[str, list[int]] = defaultdict(list)
    if near_threshold is not None:
        for i, tokens in enumerate(train_sets):
            for token in ordered(tokens)[: _prefix_length(len(tokens), near_threshold)]:
                index[token].append(i)
    report = LeakageReport(len(eval_questions), 0, 0.0, 0, 0, near_threshold)
    for question in eval_questions:
        norm = normalize(question)
        match, similarity = exact.get(norm), 1.0
        if match is None and near_threshold is not None and norm:
            tokens = frozenset(norm.split())
            candidates = {
                i
                for token in ordered(tokens)[: _prefix_length(len(tokens), near_threshold)]
                for i in index.get(token, ())
            }
            best = max(
                (
                    (len(tokens & train_sets[i]) / len(tokens | train_sets[i]), i)
                    for i in candidates
                ),
                default=(0.0, -1),
            )
            if best[0] >= near_threshold:
                match, similarity = train_originals[best[1]], best[0]
        if match is None:
            continue
        kind = "exact" if similarity == 1.0 and normalize(match) == norm else "near"
        setattr(report, kind, getattr(report, kind) + 1)
        report.leaked.append(question)
        if len(report.examples) < 5:
            report.examples.append(
                {"eval": question, "train": match, "kind": kind, "jaccard": round(similarity, 3)}
            )
    report.overlap_count = report.exact + report.near
    report.share = report.overlap_count / len(eval_questions) if eval_questions else 0.0
    return report


def enforce_no_leakage(report: LeakageReport, allow: bool = False) -> None:
    """Raise ``LeakageError`` when any eval question leaked, unless ``allow`` (then warn)."""
    if not report.overlap_count:
        return
    listed = "\n".join(
        f"  - {e['eval']!r} ({e['kind']} match of training text {e['train']!r})"
        for e in report.examples
    )
    message = (
        f"{report.overlap_count} of {report.eval_questions} eval questions "
        f"({report.share:.1%}) also occur in the fine-tuning data after normalisation:\n{listed}"
    )
    if allow:
        logger.warning("%s\ncontinuing because %s=true", message, ALLOW_KEY)
        return
    raise LeakageError(
        f"{message}\nRemove them from the training questions, "
        f"or set {ALLOW_KEY}=true to run anyway."
    )
