"""Framework overhead per stage: our code path versus the bare library doing the same work in
the same process, interleaved (see ``bench.timing``). Each function returns one row:

- ``ours_s`` / ``bare_s``: median seconds per unit (text, query, token, step) over ``n`` rounds;
- ``ratio``: median over rounds of ours/bare (1.00 = no overhead; the target is <= 1.03).

The bare side gets exactly the inputs ours gets (same texts, vectors, token ids, batch) and the
outputs are compared, so a ratio never hides different work.
"""

from __future__ import annotations

import contextlib
import io
import logging
import random
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any
from unittest import mock

import numpy as np

from bench.timing import interleaved, paired_ratio, per_item

if TYPE_CHECKING:
    from finetune.settings import LoraSettings

logger = logging.getLogger(__name__)

# A prompt that makes a chat model write at length, so generation runs to max_new_tokens.
LONG_PROMPT = "Write a long, detailed story about a lighthouse keeper and a storm at sea."


def _row(
    stage: str, unit: str, ours: list[float], bare: list[float], paired: bool = True, **extra: Any
) -> dict:
    """``paired``: the two lists are the same rounds (ratio = median of per-round ratios);
    otherwise ratio = median(ours) / median(bare)."""
    import statistics

    ours_s, bare_s = statistics.median(ours), statistics.median(bare)
    return {
        "stage": stage,
        "unit": unit,
        "ours_s": ours_s,
        "bare_s": bare_s,
        "ratio": paired_ratio(ours, bare) if paired else ours_s / bare_s,
        "n": len(ours),
        **extra,
    }


def chunk_texts(count: int, seed: int = 0) -> list[str]:
    """Chunk-like texts of about 40-200 words (the default chunk is 120 words)."""
    from bench.ingest_bench import paragraph

    rng = random.Random(seed)
    return [f"{paragraph(rng, i)} {paragraph(rng, i + count)}" for i in range(count)]


def encode_overhead(
    model: str = "all-minilm-l6-v2",
    texts: int = 256,
    repeats: int = 5,
    batch_size: int = 64,
    corpus: list[str] | None = None,
) -> dict:
    """rag.retrieval.embedder.SentenceTransformerEmbedder.embed vs SentenceTransformer.encode
    (separately
    loaded, same batch size, normalised, numpy out) on ``corpus`` or ``texts`` chunk-like
    texts."""
    from sentence_transformers import SentenceTransformer

    from rag.core.models import resolve_embedder
    from rag.retrieval.embedder import SentenceTransformerEmbedder

    corpus = list(corpus) if corpus is not None else chunk_texts(texts)
    texts = len(corpus)
    ours = SentenceTransformerEmbedder(model, device="cpu", batch_size=batch_size)
    bare = SentenceTransformer(resolve_embedder(model), device="cpu")

    def bare_encode():
        return bare.encode(
            corpus, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True
        )

    samples = interleaved({"ours": lambda: ours.embed(corpus), "bare": bare_encode}, repeats)
    diff = float(np.abs(samples["ours"].values[-1] - samples["bare"].values[-1]).max())
    return _row(
        "encode",
        "text",
        per_item(samples["ours"].seconds, texts),
        per_item(samples["bare"].seconds, texts),
        items=texts,
        batch_size=batch_size,
        max_abs_diff=diff,
    )


class TableEmbedder:
    """Returns the stored vector of text ``v<i>``: lets the real index build path run on
    synthetic vectors."""

    def __init__(self, vectors: np.ndarray) -> None:
        self.vectors = vectors
        self.dimension = int(vectors.shape[1])
        self.identity = f"bench-table:{len(vectors)}x{self.dimension}"

    def embed(self, texts: list[str], progress: bool = False) -> np.ndarray:
        return self.vectors[[int(t[1:]) for t in texts]]


def search_overhead(
    vectors: int = 10_000,
    dim: int = 384,
    queries: int = 1000,
    top_k: int = 3,
    repeats: int = 5,
    factory: str = "Flat",
) -> dict:
    """rag.retrieval.index.search on a ChunkIndex built and loaded by
    rag.retrieval.index.build_or_load_index vs
    index.search on the same FAISS index object; batch-1 queries, one OpenMP thread."""
    import faiss

    from bench.index_scaling import sample_vectors
    from rag.core.types import Chunk
    from rag.retrieval.index import build_or_load_index, search

    data = sample_vectors(np.random.default_rng(0), vectors, dim, None)
    probes = sample_vectors(np.random.default_rng(1), queries, dim, None)
    chunks = [Chunk(f"c{i}", f"d{i}", f"v{i}", 0, 1) for i in range(vectors)]
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)  # batch-1 latency, as index_scaling measures it
    try:
        with tempfile.TemporaryDirectory(prefix="ragtune-bench-search-") as cache:
            chunk_index = build_or_load_index(
                chunks, TableEmbedder(data), Path(cache), factory, progress=False
            )
        raw = chunk_index.index

        def ours():
            return [search(chunk_index, q[None, :], top_k)[0][0][0] for q in probes]

        def bare():
            return [int(raw.search(q[None, :], top_k)[1][0][0]) for q in probes]

        samples = interleaved({"ours": ours, "bare": bare}, repeats)
    finally:
        faiss.omp_set_num_threads(threads)
    same = samples["ours"].values[-1] == samples["bare"].values[-1]
    return _row(
        f"faiss search ({factory}, {vectors:,} x {dim})",
        "query",
        per_item(samples["ours"].seconds, queries),
        per_item(samples["bare"].seconds, queries),
        items=queries,
        top_k=top_k,
        same_results=same,
    )


def generate_overhead(model_path: str, max_new_tokens: int = 64, repeats: int = 5) -> list[dict]:
    """evaluate.backends.transformers.ChatGenerator.generate (chat template, token clock, decode) vs
    model.generate on the pre-tokenised prompt, greedy, no streamer, under inference_mode as
    ours; a third candidate adds the token clock to the bare call, to show the streamer's own
    cost. Per generated token."""
    import torch

    from evaluate.backends.transformers import ChatGenerator, _TokenClock

    generator = ChatGenerator.load(model_path, max_new_tokens=max_new_tokens)
    model, tokenizer = generator.model, generator.tokenizer
    messages = [{"role": "user", "content": LONG_PROMPT}]
    inputs = tokenizer.apply_chat_template(
        messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    prompt_len = int(inputs["input_ids"].shape[1])
    settings = {
        "max_new_tokens": max_new_tokens,
        "do_sample": False,
        "num_beams": 1,
        "pad_token_id": tokenizer.pad_token_id,
    }

    def bare(streamer=None):
        with torch.inference_mode():  # as ours: the comparison is of the wrapper alone
            output = model.generate(**inputs, **settings, streamer=streamer)
        return output[0][prompt_len:].tolist()

    def ours():
        return generator.generate(messages).output_tokens

    samples = interleaved(
        {"ours": ours, "bare": bare, "bare_streamer": lambda: bare(_TokenClock())}, repeats
    )
    tokens = len(samples["bare"].values[-1])
    if set(samples["ours"].values) != {tokens}:
        raise RuntimeError(f"ours generated {samples['ours'].values} tokens, bare {tokens}")
    ours_s = per_item(samples["ours"].seconds, tokens)
    bare_s = per_item(samples["bare"].seconds, tokens)
    streamer_s = per_item(samples["bare_streamer"].seconds, tokens)
    common = {"items": tokens, "prompt_tokens": prompt_len}
    return [
        _row("generate", "token", ours_s, bare_s, **common, tokens_per_s=1 / min(ours_s)),
        _row("generate: token clock alone", "token", streamer_s, bare_s, **common),
    ]


def step_timer():
    """A Trainer callback recording when each optimizer step ended (``.ends``), the trainable
    weights at the start (``.initial``) and the loss logged at each step (``.losses``)."""
    import time

    from transformers import TrainerCallback

    class StepTimes(TrainerCallback):
        def __init__(self) -> None:
            self.ends: list[float] = []
            self.losses: list[float] = []
            self.initial: dict[str, Any] = {}

        def on_train_begin(self, args, state, control, model=None, **kwargs):
            self.initial = {
                n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad
            }

        def on_step_end(self, args, state, control, **kwargs):
            self.ends.append(time.perf_counter())

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "loss" in logs:
                self.losses.append(float(logs["loss"]))

    return StepTimes()


def timed_training(model_path: str, examples: list, settings: LoraSettings):
    """``finetune.training.run_training`` in a temporary cache with a ``step_timer`` attached;
    returns its result and the timer."""
    import finetune.training as training

    timer = step_timer()
    original = training.build_callbacks
    with (
        tempfile.TemporaryDirectory(prefix="ragtune-bench-lora-") as root,
        mock.patch.object(training, "build_callbacks", lambda s: [*original(s), timer]),
        contextlib.redirect_stdout(io.StringIO()),
    ):
        result = training.run_training(
            model_path, examples, settings, Path(root) / "work", Path(root) / "final", False
        )
    return result, timer


def lora_settings_from_config(config_path: Path) -> LoraSettings:
    """The LoRA settings of conf/finetune/lora.yaml (the default experiment's)."""
    from dataclasses import fields

    from omegaconf import OmegaConf

    from finetune.settings import LoraSettings as Settings

    values = OmegaConf.to_container(OmegaConf.load(config_path), resolve=True)
    known = {f.name for f in fields(Settings)}
    return Settings(**{k: v for k, v in values.items() if k in known})


def training_examples(count: int, length: int, vocab: int, seed: int = 0) -> list:
    from finetune.data import TrainExample

    rng = np.random.default_rng(seed)
    rows = rng.integers(10, vocab, size=(count, length)).tolist()
    return [TrainExample(input_ids=row, labels=row, kind="doc") for row in rows]


# Losses the Trainer logs are rounded to 4 decimals (Trainer._maybe_log_save_evaluate);
# the same steps agree within that rounding plus float32 reduction-order noise.
LOSS_TOLERANCE = 2e-3


def lora_step_overhead(
    model_path: str,
    settings: LoraSettings,
    seq_len: int = 128,
    steps_per_block: int = 4,
    blocks: int = 3,
) -> dict:
    """One optimizer step of finetune.training.run_training (our Trainer set-up, run for real
    in a temporary cache) vs a bare peft + torch loop doing the same steps: the same starting
    adapter weights (taken from ours at train begin), the same batches in the same order, the
    optimizer and learning-rate schedule the Trainer builds from the same arguments
    (``Trainer.get_optimizer_cls_and_kwargs``, ``transformers.get_scheduler``), gradient
    clipping at 1.0 and the loss read every step. LoRA dropout is set to 0 on both sides so the
    two computations are deterministic and their losses comparable step by step (dropout on the
    adapter input is a small elementwise cost either way). Each block restarts both from the
    same weights; ``same_results`` is true only if every step's loss agrees within
    ``LOSS_TOLERANCE``, and a ratio from unlike work is not reported as a verdict (``ratio`` is
    then None). Per-step times are the intervals between step ends (a block's first step, which
    includes the data loader's start, is not counted)."""
    import time

    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoConfig, AutoModelForCausalLM, Trainer, get_scheduler

    import finetune.training as training
    from finetune.targets import resolve_target_modules
    from finetune.trainer_parts import RightPadCollator, SeededLengthGroupedSampler

    settings = replace(
        settings, max_steps=steps_per_block, checkpoint_steps=0, eval_fraction=0.0, dropout=0.0
    )
    vocab = int(AutoConfig.from_pretrained(model_path).vocab_size)
    size = settings.batch_size * settings.grad_accum
    count = size * steps_per_block
    examples = training_examples(count, seq_len, vocab)
    ours_s: list[float] = []
    bare_s: list[float] = []
    ours_losses: list[float] = []
    bare_losses: list[float] = []

    bare_model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32),
        LoraConfig(
            r=settings.rank,
            lora_alpha=settings.alpha,
            lora_dropout=settings.dropout,
            target_modules=resolve_target_modules(settings.target_modules),
            bias="none",
            task_type="CAUSAL_LM",
        ),
    ).train()
    named = {n: p for n, p in bare_model.named_parameters() if p.requires_grad}
    params = list(named.values())
    # the order our Trainer draws (epoch 0 of its seeded sampler), grouped into its batches
    order = list(SeededLengthGroupedSampler([seq_len] * count, size, settings.seed))
    collate = RightPadCollator(0)
    batches = [
        collate([{"input_ids": examples[i].input_ids, "labels": examples[i].labels} for i in rows])
        for rows in (order[j : j + size] for j in range(0, count, size))
    ]
    with tempfile.TemporaryDirectory(prefix="ragtune-bench-args-") as root:
        args = training.training_arguments(settings, Path(root), False, has_eval=False)
    optimizer_cls, optimizer_kwargs = Trainer.get_optimizer_cls_and_kwargs(args, bare_model)
    state: dict[str, Any] = {}

    def bare_block() -> list[float]:
        with torch.no_grad():  # restart from the weights ours started from
            for name, value in state["initial"].items():
                named[name].copy_(value)
        optimizer = optimizer_cls(
            [{"params": params, "weight_decay": args.weight_decay}], **optimizer_kwargs
        )
        schedule = get_scheduler(
            args.lr_scheduler_type,
            optimizer,
            num_warmup_steps=args.get_warmup_steps(steps_per_block),
            num_training_steps=steps_per_block,
        )
        ends, losses = [], []
        for batch in batches:
            loss = bare_model(**batch).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, args.max_grad_norm)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(loss.detach().item())  # the Trainer reads the loss every step
            ends.append(time.perf_counter())
        bare_losses.extend(losses)
        return np.diff(ends).tolist()

    def ours_block() -> list[float]:
        _, timer = timed_training(model_path, examples, settings)
        state["initial"] = timer.initial
        ours_losses.extend(timer.losses)
        return np.diff(timer.ends).tolist()

    for block in range(blocks):
        # ours first in the first block: the bare side needs ours' starting weights
        first, second = (ours_block, bare_block) if block % 2 == 0 else (bare_block, ours_block)
        for run in (first, second):
            (ours_s if run is ours_block else bare_s).extend(run())
    same = len(ours_losses) == len(bare_losses) and all(
        abs(a - b) <= LOSS_TOLERANCE for a, b in zip(ours_losses, bare_losses, strict=True)
    )
    if not same:
        logger.warning("LoRA step: ours and bare losses differ: %s vs %s", ours_losses, bare_losses)
    row = _row(
        "LoRA training step",
        "step",
        ours_s,
        bare_s,
        paired=False,
        items=1,
        batch=f"{settings.batch_size} x {seq_len} tokens",
        rank=settings.rank,
        target_modules=str(settings.target_modules),
        same_results=same,
        losses_ours=ours_losses,
        losses_bare=bare_losses,
        optimizer=optimizer_cls.__name__,
    )
    if not same:
        row["ratio_unlike_work"], row["ratio"] = row["ratio"], None
    return row
