"""Training examples for the LoRA arm, built from the same corpus and QA set as the RAG arm.

Two kinds of example:
- ``doc`` (continued pre-training): a document's text as plain causal-LM data, every token
  labelled, cut into ``max_length`` windows, the last one ending with the end-of-sequence token.
- ``qa`` (supervised fine-tuning): a training question rendered with the exact closed-book chat
  prompt the evaluation uses, loss only on the answer and the end-of-turn token after it.

Packing (``finetune.packing``, applied by ``pack_examples`` at training time) concatenates the
``doc`` examples into exactly ``max_length``-token blocks so no compute is spent on padding;
``qa`` examples are left whole, one per sequence, with their prompt masking unchanged.
"""

from __future__ import annotations

import hashlib
import logging
import random
from array import array
from dataclasses import dataclass

from rag.core.cache import content_key
from rag.core.errors import UserError
from rag.core.prompts import closed_book_messages
from rag.core.types import Document, QAPair

logger = logging.getLogger(__name__)

MODES = ("cpt", "qa_sft", "mixed")
IGNORE_INDEX = -100  # label value the causal-LM loss skips (torch CrossEntropyLoss default)
# Characters of a document tokenized in one call: 1 MB keeps a fast tokenizer's encoding (token
# strings, offsets) to tens of MB while calls stay few.
PIECE_CHARS = 1_000_000


@dataclass
class TrainExample:
    input_ids: list[int] | array  # document windows: 32-bit arrays (4 bytes per token)
    labels: list[int] | array
    kind: str  # "doc" or "qa"


class ChatTemplateError(UserError, ValueError):
    """The tokenizer's chat template cannot separate the prompt from the answer."""


class NoTrainingDataError(UserError, ValueError):
    """The configured ``finetune.mode`` finds nothing to train on."""


def build_examples(
    documents: list[Document],
    qa_pairs: list[QAPair],
    tokenizer,
    mode: str = "qa_sft",
    max_length: int = 256,
) -> list[TrainExample]:
    """Examples for ``mode`` (``cpt``, ``qa_sft`` or ``mixed``); ``qa_pairs`` is the train split."""
    if mode not in MODES:
        raise ValueError(f"finetune.mode must be one of {', '.join(MODES)}, got {mode!r}")
    if max_length < 2:
        raise ValueError(f"finetune.max_length must be >= 2, got {max_length}")
    examples: list[TrainExample] = []
    if mode in ("cpt", "mixed"):
        for document in documents:
            examples.extend(document_examples(document.text, tokenizer, max_length))
    if mode in ("qa_sft", "mixed"):
        skipped = 0
        for qa in qa_pairs:
            example = qa_example(qa, tokenizer)
            if len(example.input_ids) > max_length:
                skipped += 1
                continue
            examples.append(example)
        if skipped:
            logger.warning("%d QA examples longer than max_length=%d skipped", skipped, max_length)
    if not examples:
        hint = (
            "; qa_sft trains on training questions only (none when qa.eval_fraction=1.0): "
            "use finetune.mode=cpt or mixed to train on the documents"
            if mode == "qa_sft" and documents and not qa_pairs
            else ""
        )
        raise NoTrainingDataError(
            f"no training example from {len(documents)} documents and {len(qa_pairs)} QA pairs "
            f"in finetune.mode={mode!r} (max_length={max_length}){hint}"
        )
    return examples


def document_examples(
    text: str, tokenizer, max_length: int, piece_chars: int = PIECE_CHARS
) -> list[TrainExample]:
    """Non-overlapping ``max_length`` windows over the text's tokens, followed by eos.

    Memory stays near 4 bytes per token: the text is tokenized in pieces of at most
    ``piece_chars`` characters (a fast tokenizer's encoding of a whole 200 MB file holds tens of
    GB of token strings and offsets), ids are kept as 32-bit arrays, and a window's labels are
    its ids (one array, not a copy)."""
    ids = token_ids(text, tokenizer, piece_chars)
    if tokenizer.eos_token_id is not None and (not ids or ids[-1] != tokenizer.eos_token_id):
        ids.append(tokenizer.eos_token_id)
    windows = (ids[start : start + max_length] for start in range(0, len(ids), max_length))
    # A one-token window has nothing to predict (labels are shifted inside the model).
    return [TrainExample(w, w, "doc") for w in windows if len(w) >= 2]


def token_ids(text: str, tokenizer, piece_chars: int = PIECE_CHARS) -> array:
    """``tokenizer(text).input_ids`` as a 32-bit array, tokenized piece by piece.

    Pieces end just before a line break (or a space) that follows a non-space character, where
    byte-level BPE pre-tokenizers (GPT-2, Llama 3, SmolLM) always start a new pre-token, so the
    ids equal those of one call (tests/finetune check it). The special tokens the tokenizer adds
    around a text (BOS, EOS) are added once, around the whole."""
    if len(text) <= piece_chars:
        return array("i", tokenizer(text).input_ids)
    pieces = list(_pieces(text, piece_chars))
    logger.info(
        "tokenizing a %.1f MB document in %d pieces of <= %d characters",
        len(text.encode("utf-8", "surrogatepass")) / 1e6,
        len(pieces),
        piece_chars,
    )
    framed = tokenizer(pieces[0]).input_ids
    plain = tokenizer(pieces[0], add_special_tokens=False).input_ids
    start = next(
        i for i in range(len(framed) - len(plain) + 1) if framed[i : i + len(plain)] == plain
    )
    ids = array("i", framed[: start + len(plain)])
    for piece in pieces[1:]:
        ids.extend(tokenizer(piece, add_special_tokens=False).input_ids)
    ids.extend(framed[start + len(plain) :])
    return ids


def _pieces(text: str, piece_chars: int):
    start = 0
    while len(text) - start > piece_chars:
        end = start + piece_chars
        cut = _cut_before_space(text, start, end, "\n")
        if cut is None:
            cut = _cut_before_space(text, start, end, " ")
        if cut is None:
            cut = end  # no break at all in the piece: cut anyway (a boundary token may differ)
        yield text[start:cut]
        start = cut
    yield text[start:]


def _cut_before_space(text: str, start: int, end: int, space: str) -> int | None:
    """The last position in (start, end] holding ``space`` right after a non-space character."""
    position = text.rfind(space, start + 1, end + 1)
    while position > start:
        if not text[position - 1].isspace():
            return position
        position = text.rfind(space, start + 1, position)
    return None


def qa_example(qa: QAPair, tokenizer) -> TrainExample:
    """Closed-book prompt + first gold answer; only answer tokens and end-of-turn are labelled."""
    messages = closed_book_messages(qa.question)
    prompt = _chat_ids(tokenizer, messages, add_generation_prompt=True)
    full = _chat_ids(tokenizer, [*messages, {"role": "assistant", "content": qa.answers[0]}])
    if full[: len(prompt)] != prompt:
        raise ChatTemplateError(
            f"the chat template of {tokenizer.name_or_path!r} does not render the prompt as a "
            f"prefix of the answered conversation (QA {qa.qa_id!r}), so prompt tokens cannot be "
            "masked; use a tokenizer whose template supports add_generation_prompt"
        )
    completion = full[len(prompt) :]
    special = set(tokenizer.all_special_ids)
    end = next((i for i, tok in enumerate(completion) if tok in special), None)
    if end is None:
        raise ChatTemplateError(
            f"the chat template of {tokenizer.name_or_path!r} closes the assistant turn without "
            f"a special end-of-turn token after the answer (QA {qa.qa_id!r})"
        )
    if end == 0:
        raise ValueError(f"QA {qa.qa_id!r} has an empty answer {qa.answers[0]!r}")
    # Tokens after the end-of-turn (e.g. a trailing newline) stay in the input, unlabelled.
    labels = [IGNORE_INDEX] * len(prompt) + completion[: end + 1]
    labels += [IGNORE_INDEX] * (len(full) - len(labels))
    return TrainExample(full, labels, "qa")


def _chat_ids(tokenizer, messages: list[dict[str, str]], add_generation_prompt=False) -> list[int]:
    ids = tokenizer.apply_chat_template(
        messages, add_generation_prompt=add_generation_prompt, tokenize=True, return_dict=False
    )
    if hasattr(ids, "keys"):  # older releases ignore return_dict=False in some code paths
        ids = ids["input_ids"]
    return [int(tok) for tok in ids]


def pack_examples(examples: list[TrainExample], max_length: int) -> list[TrainExample]:
    """Concatenate ``doc`` examples into ``max_length`` blocks; keep ``qa`` examples whole.

    Documents: their token streams are joined in order (each document already ends with the
    end-of-sequence token, which marks the boundary) and cut into blocks of exactly
    ``max_length`` tokens; only the last block may be shorter (kept if it has >= 2 tokens).
    A block can start mid-document and hold the end of one document and the start of the next;
    attention is not reset at the boundary (GPT-style packing), so a token may attend to the
    previous document's tail. Every token stays labelled, as before packing.

    QA examples: unchanged and unpacked, one per sequence, so a question never attends to
    another example's text and the loss stays on the answer tokens only.
    """
    if max_length < 2:
        raise ValueError(f"finetune.max_length must be >= 2, got {max_length}")
    ids = array("i")
    labels = array("i")
    others: list[TrainExample] = []
    for example in examples:
        if example.kind == "doc":
            ids.extend(example.input_ids)
            labels.extend(example.labels)
        else:
            others.append(example)
    blocks = [
        TrainExample(ids[start : start + max_length], labels[start : start + max_length], "doc")
        for start in range(0, len(ids), max_length)
    ]
    return [b for b in blocks if len(b.input_ids) >= 2] + others


def split_for_eval(
    examples: list[TrainExample], fraction: float, seed: int
) -> tuple[list[TrainExample], list[TrainExample]]:
    """``(train, held_out)``: a seeded shuffle puts ``round(fraction * n)`` examples (at least
    one when ``fraction > 0``) in the held-out set; both keep their original relative order."""
    if fraction <= 0:
        return list(examples), []
    n_eval = max(1, round(fraction * len(examples)))
    if n_eval >= len(examples):
        raise ValueError(
            f"finetune.eval_fraction={fraction} holds out {n_eval} of {len(examples)} training "
            "sequences and leaves none to train on; lower finetune.eval_fraction (or set it to 0) "
            "or provide more training data"
        )
    held_out = set(random.Random(seed).sample(range(len(examples)), n_eval))
    train = [e for i, e in enumerate(examples) if i not in held_out]
    return train, [e for i, e in enumerate(examples) if i in held_out]


def examples_fingerprint(examples: list[TrainExample]) -> str:
    """Content hash of the token ids, labels and kinds, for adapter cache keys; streamed as
    32-bit arrays (a JSON text of a 200 MB corpus's tokens would take gigabytes)."""
    digest = hashlib.sha256(content_key("train-examples", 2).encode())
    for e in examples:
        for part in (
            e.kind.encode(),
            array("i", e.input_ids).tobytes(),
            array("i", e.labels).tobytes(),
        ):
            digest.update(len(part).to_bytes(8, "little"))
            digest.update(part)
    return digest.hexdigest()
