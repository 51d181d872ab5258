"""The arms: what each one puts in front of the generator. Adding an arm is one entry here
(plus, if it needs new inputs, the stage that builds them).

Every arm answers the same held-out questions greedily; they differ only in whether the prompt
carries retrieved passages and whether the generator carries the fine-tuned adapter.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Arm:
    name: str
    retrieves: bool  # the prompt carries the top-k retrieved chunks
    tuned: bool  # the generator carries the LoRA adapter (merged unless finetune.merge=false)
    description: str
    oracle: bool = False  # the context is the gold passage, not the retrieved ones (diagnosis)


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
    )
}
ARM_NAMES = tuple(ARMS)
# The arms of the default experiment; oracle_context needs questions that name their documents
# and is added by the `diagnose` preset.
DEFAULT_ARMS = ("closed_book", "rag", "finetune", "finetune_rag")


def arm(name: str) -> Arm:
    return ARMS[name]


def any_retrieves(names: Iterable[str]) -> bool:
    """Whether any of the arms needs the retriever (and so the index)."""
    return any(ARMS[n].retrieves for n in names)


def any_tuned(names: Iterable[str]) -> bool:
    """Whether any of the arms needs the fine-tuned adapter."""
    return any(ARMS[n].tuned for n in names)


def tuned_arms(names: Iterable[str]) -> list[str]:
    return sorted(n for n in names if ARMS[n].tuned)
