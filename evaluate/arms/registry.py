"""The arms: what each one puts in front of the generator. Adding an arm is one entry here
(plus, if it needs new inputs, the stage that builds them).

Every generating arm answers the same held-out questions greedily; they differ only in whether
the prompt carries retrieved passages and whether the generator carries the fine-tuned adapter.

A composite arm generates nothing itself: it combines the answers of other arms (its parts) per
question. Its ``composer`` names a module with ``parts(config) -> tuple[str, ...]`` (the arms it
needs, which must run in the same experiment) and ``compose(config, predictions, questions,
retriever) -> list[Prediction]``; it is composed after every generating arm has answered.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from dataclasses import dataclass, replace
from types import ModuleType


@dataclass(frozen=True)
class Arm:
    name: str
    retrieves: bool  # the prompt carries the top-k retrieved chunks
    tuned: bool  # the generator carries the LoRA adapter (merged unless finetune.merge=false)
    description: str
    oracle: bool = False  # the context is the gold passage, not the retrieved ones (diagnosis)
    composer: str | None = None  # composite arms: the module that combines its parts' answers


ARMS: dict[str, Arm] = {
    arm.name: arm
    for arm in (
        Arm("closed_book", False, False, "the base model, no context"),
        Arm("rag", True, False, "the base model with retrieved context"),
        Arm("finetune", False, True, "the fine-tuned model, no context"),
        Arm("finetune_rag", True, True, "the fine-tuned model with retrieved context"),
        Arm(
            "oracle_context",
            True,
            False,
            "the base model with the gold passage: the reader's ceiling (diagnosis)",
            oracle=True,
        ),
        Arm(
            "cascade",
            False,
            False,
            "an edge arm answers; unsure answers escalate to a cloud arm (eval.cascade)",
            composer="evaluate.arms.cascade",
        ),
    )
}
ARM_NAMES = tuple(ARMS)
# The arms of the default experiment; oracle_context needs questions that name their documents
# and is added by the `diagnose` preset.
DEFAULT_ARMS = ("closed_book", "rag", "finetune", "finetune_rag")


def arm(name: str) -> Arm:
    return ARMS[name]


def composer(name: str) -> ModuleType | None:
    """The module that composes a composite arm; None for an arm that generates."""
    module = ARMS[name].composer
    return importlib.import_module(module) if module else None


def parts(name: str, config) -> tuple[str, ...]:
    """The arms a composite arm combines (() for a generating arm)."""
    module = composer(name)
    return tuple(module.parts(config)) if module else ()


def resolved(name: str, config) -> Arm:
    """The arm with ``retrieves``/``tuned`` covering its parts: what it depends on."""
    spec, needed = ARMS[name], parts(name, config)
    if not needed:
        return spec
    return replace(
        spec,
        retrieves=spec.retrieves or any(ARMS[p].retrieves for p in needed),
        tuned=spec.tuned or any(ARMS[p].tuned for p in needed),
    )


def is_composite(name: str) -> bool:
    return ARMS[name].composer is not None


def any_retrieves(names: Iterable[str]) -> bool:
    """Whether any of the arms needs the retriever (and so the index)."""
    return any(ARMS[n].retrieves for n in names)


def any_tuned(names: Iterable[str]) -> bool:
    """Whether any of the arms needs the fine-tuned adapter."""
    return any(ARMS[n].tuned for n in names)


def tuned_arms(names: Iterable[str]) -> list[str]:
    return sorted(n for n in names if ARMS[n].tuned)
