"""Batched throughput, measured apart from batch-1 latency.

TTFT and TPOT come from batch-1 streaming (``evaluate.backends.transformers``); serving capacity
comes from
batches, where one forward pass advances every request in the batch. The serving benchmarks keep
the two apart (see README "Latency"), and so does this module: same prompts, same greedy decoding,
same ``max_new_tokens``, but requests are padded on the left into batches and only wall time and
token counts are recorded.

A generated token counts up to and including the first end-of-sequence token of its row, like
the batch-1 path (whose streamer sees the EOS token too); what ``generate`` appends after it is
padding and does not count.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence

from tqdm.auto import tqdm

from evaluate.backends.transformers import ChatGenerator, eos_token_ids

logger = logging.getLogger(__name__)

Messages = list[dict[str, str]]


def count_generated(row: Iterable[int], eos_ids: set[int]) -> int:
    """Tokens of one generated row up to and including the first EOS; all of them if none."""
    count = 0
    for token in row:
        count += 1
        if int(token) in eos_ids:
            break
    return count


def generate_batch(generator: ChatGenerator, batch: Sequence[Messages]) -> list[list[int]]:
    """Greedy generation for a batch of chats, left-padded; the generated ids of each request,
    cut after its first EOS."""
    return _generate(generator, batch)[0]


def answer_batches(
    generator: ChatGenerator,
    messages_list: Sequence[Messages],
    batch_size: int,
    progress: bool = False,
    desc: str = "answers",
) -> list[tuple[str, int, int, list[float]]]:
    """``(text, input_tokens, output_tokens, token_logprobs)`` per chat, in the given order,
    from greedy generation in left-padded batches of ``batch_size``.

    Chats are grouped by prompt length (sorted) before batching, so a batch pads its prompts
    to a similar length instead of to the longest of a random mix. Text and token counts follow
    the batch-1 path (``ChatGenerator.generate``): the generated ids up to and including the
    first EOS, decoded without special tokens and stripped."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    order = sorted(
        range(len(messages_list)), key=lambda i: generator.prompt_tokens(messages_list[i])
    )
    results: list[tuple[str, int, int, list[float]] | None] = [None] * len(messages_list)
    starts = range(0, len(order), batch_size)
    for start in tqdm(starts, desc=desc, unit="batch", disable=not progress):
        rows = order[start : start + batch_size]
        ids, input_tokens, logprobs = _generate(
            generator, [messages_list[i] for i in rows], logprobs=True
        )
        for i, new_ids, n_in, lp in zip(rows, ids, input_tokens, logprobs, strict=True):
            text = generator.tokenizer.decode(new_ids, skip_special_tokens=True).strip()
            results[i] = (text, n_in, len(new_ids), lp)
    return results  # type: ignore[return-value]


def _generate(generator: ChatGenerator, batch: Sequence[Messages], logprobs: bool = False):
    """The generated ids of each chat (cut after its first EOS), its prompt tokens, and with
    ``logprobs`` each generated token's log-probability (the cascade's confidence; otherwise
    None, so the throughput measurement keeps no logits)."""
    import torch

    tokenizer = generator.tokenizer
    if tokenizer.padding_side != "left":
        raise ValueError("batched generation needs tokenizer.padding_side == 'left'")
    inputs = tokenizer.apply_chat_template(
        list(batch),
        add_generation_prompt=True,
        padding=True,
        return_tensors="pt",
        return_dict=True,
    ).to(generator.model.device)
    with torch.inference_mode():
        output = generator.model.generate(
            **inputs,
            max_new_tokens=generator.max_new_tokens,
            do_sample=False,
            num_beams=1,
            pad_token_id=tokenizer.pad_token_id,
            return_dict_in_generate=logprobs,
            output_logits=logprobs,
        )
    sequences = output.sequences if logprobs else output
    generated = sequences[:, inputs["input_ids"].shape[1] :]
    eos_ids = eos_token_ids(generator)
    prompt_tokens = [int(n) for n in inputs["attention_mask"].sum(dim=1).tolist()]
    rows = [row[: count_generated(row, eos_ids)] for row in generated.tolist()]
    if not logprobs:
        return rows, prompt_tokens, None
    from evaluate.backends.transformers import token_logprobs

    scored = [
        token_logprobs(output.logits, generated[r, : len(ids)], row=r) for r, ids in enumerate(rows)
    ]
    return rows, prompt_tokens, scored


def measure_throughput(
    generator: ChatGenerator,
    messages_list: Sequence[Messages],
    batch_size: int,
    warmup_batches: int = 1,
    progress: bool = False,
) -> dict[str, float | int]:
    """Answer every chat in batches of ``batch_size`` and report the sustained rate.

    ``warmup_batches`` leading batches are run once untimed first (one-off allocation and kernel
    selection would otherwise count). Wall time covers tokenisation and generation of every
    batch, not decoding ids to text. Returns ``tokens_per_s`` (generated tokens over wall time),
    ``requests_per_s``, ``batch_size``, ``wall_s``, ``output_tokens`` and ``requests``.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if not messages_list:
        raise ValueError("measure_throughput needs at least one request")
    batches = [messages_list[i : i + batch_size] for i in range(0, len(messages_list), batch_size)]
    for batch in batches[:warmup_batches]:
        generate_batch(generator, batch)
    output_tokens = 0
    started = time.perf_counter()
    for batch in tqdm(batches, desc=f"throughput bs={batch_size}", disable=not progress):
        output_tokens += sum(len(ids) for ids in generate_batch(generator, batch))
    wall_s = time.perf_counter() - started
    return _rate(len(messages_list), batch_size, output_tokens, wall_s)


def throughput_of_batches(batches: Sequence[dict], batch_size: int) -> dict | None:
    """The sustained rate read off batches already answered (the accuracy pass logs each as
    ``requests``, ``output_tokens`` and ``wall_s``): its full batches of ``batch_size`` after
    the first, which warms the model up as ``measure_throughput``'s untimed batch does. None
    when there is no such batch (then a separate measurement is needed)."""
    timed = [b for b in batches[1:] if b["requests"] == batch_size]
    if not timed:
        return None
    return _rate(
        sum(b["requests"] for b in timed),
        batch_size,
        sum(b["output_tokens"] for b in timed),
        sum(b["wall_s"] for b in timed),
    )


def _rate(requests: int, batch_size: int, output_tokens: int, wall_s: float) -> dict:
    logger.info(
        "throughput: %d requests, batch %d, %d tokens in %.2f s",
        requests,
        batch_size,
        output_tokens,
        wall_s,
    )
    return {
        "tokens_per_s": output_tokens / wall_s,
        "requests_per_s": requests / wall_s,
        "batch_size": batch_size,
        "wall_s": wall_s,
        "output_tokens": output_tokens,
        "requests": requests,
    }
