"""A tiny random Llama-architecture model and a byte-level tokenizer, built in-process.

Used by the ``smoke`` experiment and the tests: no download, a few MB, deterministic for a
given seed. Its answers are noise; it exists to exercise every code path in seconds.
"""

from __future__ import annotations

import logging
from pathlib import Path

from rag.core.prompts import SYSTEM_PROMPT

logger = logging.getLogger(__name__)

# ChatML, the same template family SmolLM2-Instruct uses, so prompts look the same for both.
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

# Text the byte-level BPE merges are learned from. Any string still encodes (bytes fall back),
# this only keeps sequences short for typical English prompts.
_TOKENIZER_TRAINING_TEXT = """
system user assistant Answer the question briefly. Use the context. Context: Question: Answer:
Where was born in the year which town what company does work for founded headquartered
The of and a to in is was for on that with as by at from it an be this which or are
0 1 2 3 4 5 6 7 8 9 10 100 1000 1900 1950 1960 1970 1980 1990 2000 2010 2020
"""


def build_tiny_tokenizer(vocab_size: int = 512):
    """Train a small byte-level BPE tokenizer with ChatML special tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    core.train_from_iterator([_TOKENIZER_TRAINING_TEXT, SYSTEM_PROMPT] * 4, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core,
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        pad_token="<|im_end|>",
        unk_token="<|endoftext|>",
    )
    tokenizer.chat_template = CHATML_TEMPLATE
    tokenizer.padding_side = "left"
    return tokenizer


def build_tiny_llama(
    out_dir: Path,
    seed: int = 0,
    hidden_size: int = 32,
    num_layers: int = 2,
    num_heads: int = 4,
) -> Path:
    """Build a randomly initialised Llama model + tokenizer and save both to ``out_dir``.

    The caller is responsible for atomicity (``rag.core.models`` writes to a temp dir and renames).
    """
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = build_tiny_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_heads,
        max_position_embeddings=2048,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    n_params = sum(p.numel() for p in model.parameters())
    logger.info("built tiny random Llama (%d parameters) in %s", n_params, out_dir)
    return out_dir
