"""Chat prompts shared by every arm and by fine-tuning.

The fine-tuned model is trained on exactly the closed-book prompt it is evaluated with, and the
RAG prompt differs from it only by the context block, so arms differ in knowledge, not wording.
"""

from __future__ import annotations

import string
from collections.abc import Sequence
from dataclasses import dataclass

# Short on purpose: it is part of every training example, so each token of it costs training
# time, and the small default model follows a terse instruction as well as a long one.
SYSTEM_PROMPT = "Answer with a few words only, no full sentence."


@dataclass(frozen=True)
class PromptStyle:
    """The instruction every arm's prompt starts with, and worked examples after it.

    ``shots`` are (question, answer) pairs from the training questions, shown as earlier user and
    assistant turns so a small model sees how short an answer should be (few-shot prompting,
    Brown et al. 2020, arXiv 2005.14165). The default has none: it is the prompt the fine-tuned
    arms are trained on.
    """

    instruction: str = SYSTEM_PROMPT
    shots: tuple[tuple[str, str], ...] = ()

    def head(self) -> list[dict[str, str]]:
        turns = [{"role": "system", "content": self.instruction}]
        for question, answer in self.shots:
            turns += [
                {"role": "user", "content": question},
                {"role": "assistant", "content": answer},
            ]
        return turns


DEFAULT_STYLE = PromptStyle()


def closed_book_messages(question: str, style: PromptStyle = DEFAULT_STYLE) -> list[dict[str, str]]:
    return [*style.head(), {"role": "user", "content": question}]


def context_block(passages: Sequence[str], labels: Sequence[str] | None = None) -> str:
    """Passages as ``[label] text`` paragraphs; labels default to 1, 2, 3 ..."""
    if labels is None:
        labels = [str(i + 1) for i in range(len(passages))]
    if len(labels) != len(passages):
        raise ValueError(f"{len(labels)} labels for {len(passages)} passages")
    return "\n\n".join(
        f"[{label}] {text.strip()}" for label, text in zip(labels, passages, strict=True)
    )


def rag_messages(
    question: str,
    passages: Sequence[str],
    labels: Sequence[str] | None = None,
    style: PromptStyle = DEFAULT_STYLE,
) -> list[dict[str, str]]:
    """Messages with retrieved passages placed before the question, each cited by its label
    (a chunk id such as ``person-003#0`` when given, else its position)."""
    context = context_block(passages, labels)
    user = f"Context:\n{context}\n\nUsing the context, answer briefly.\nQuestion: {question}"
    return [*style.head(), {"role": "user", "content": user}]


class PromptTemplateError(ValueError):
    """A prompt template uses a field other than the plain ``{name}`` ones it is given."""


def fill_template(template: str, **values: object) -> str:
    """``template`` with each ``{name}`` replaced by ``str(values[name])``.

    Unlike ``str.format`` this never evaluates a field: attribute and index access
    (``{question.__class__}``, ``{n[0]}``), conversions (``!r``) and format specs are refused,
    so a template from a file or a user cannot read objects' internals. ``{{`` and ``}}`` are
    literal braces; braces inside the values are never interpreted.
    """
    parts = []
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as err:
        raise PromptTemplateError(
            f"prompt template is malformed ({err}); escape braces as {{{{ }}}}"
        ) from None
    for literal, field, spec, conversion in parsed:
        parts.append(literal)
        if field is None:
            continue
        if field not in values or conversion or spec:
            shown = (
                "{"
                + field
                + (f"!{conversion}" if conversion else "")
                + (f":{spec}" if spec else "")
                + "}"
            )
            raise PromptTemplateError(
                f"prompt template field {shown} is not allowed: use only "
                f"{', '.join('{' + name + '}' for name in sorted(values))}"
            )
        parts.append(str(values[field]))
    return "".join(parts)
