"""Tokenizing a long document piece by piece (bounded memory) gives exactly the ids of one
call, for the tiny test tokenizer and for the default model's (SmolLM2) tokenizer."""

from __future__ import annotations

import random

import pytest
from transformers import AutoTokenizer

from finetune.data import document_examples, token_ids


def _text(chars: int) -> str:
    """Paragraphs, runs of blank lines and spaces, digits and non-ASCII, as real files have."""
    rng = random.Random(0)
    words = ["harbour", "Ledger", "1871", "café", "naïve", "—", "x2", "(pier)", "tide,", "Mara"]
    parts = []
    while sum(map(len, parts)) < chars:
        line = " ".join(rng.choices(words, k=rng.randint(1, 14)))
        parts.append(line + rng.choice(["\n", "\n\n", "\n\n\n", "  \n", ". ", " "]))
    return "".join(parts)


def _tokenizers(tiny_model_dir: str, real_model_cache):
    found = [AutoTokenizer.from_pretrained(tiny_model_dir)]
    real = real_model_cache / "models" / "smollm2-135m-instruct"
    if (real / "tokenizer.json").is_file():  # provisioned by `ragtune-models` / `make run`
        found.append(AutoTokenizer.from_pretrained(real))
    return found


@pytest.mark.parametrize("piece_chars", [50, 333, 4096])
def test_pieces_give_the_ids_of_one_call(piece_chars, tiny_model_dir, real_model_cache):
    text = _text(8_000)
    for tokenizer in _tokenizers(tiny_model_dir, real_model_cache):
        whole = list(tokenizer(text).input_ids)
        assert list(token_ids(text, tokenizer, piece_chars)) == whole, tokenizer.name_or_path
        windows = document_examples(text, tokenizer, 64, piece_chars)
        expected = document_examples(text, tokenizer, 64, piece_chars=len(text))
        assert [list(w.input_ids) for w in windows] == [list(w.input_ids) for w in expected]
        assert all(w.labels is w.input_ids for w in windows)  # one array, not a copy
