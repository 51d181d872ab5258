"""Budget guard and dry run: each job's cost, estimated from the config alone, before anything runs.

The estimate is the costing model applied to modelled work, not a measurement:

- training: (4·N + 2·N_trainable)·D FLOPs for LoRA, 6·N·D for full fine-tuning (costing.formulas,
  costing/formulas.py), D = training tokens (corpus tokens x epochs, or max_steps x batch);
- evaluation: for every arm and query, prefill 2·N·T_in FLOPs (compute-bound) plus one read of
  the weights per further output token (memory-bound, batch 1), as in costing.requirements;
- indexing and query embedding: 2·N_embedder FLOPs per token.

Compute time is FLOPs / (peak FLOP/s x budget.utilization), decode time bytes / (bandwidth x
budget.utilization), both from the hardware catalog row of ``hardware.name``; device-hours are
priced with the run's own rates (price, power, PUE, grid). Caches are ignored (every job is costed
as if it built its index and adapter), output lengths are taken at generator.max_new_tokens and
the batched throughput measurement is costed at batch 1, so the estimate errs high.
"""

from __future__ import annotations

import functools
import logging
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from costing import formulas
from costing.catalog import Hardware, find_hardware, load_hardware_catalog
from costing.rates import measuring_rates
from evaluate.arms.registry import any_retrieves, any_tuned, is_composite
from evaluate.arms.registry import arm as arm_spec
from evaluate.backends.registry import is_remote
from evaluate.config.schema import Config, cost_settings
from rag.core.cache import count_parameters
from rag.core.errors import UserError

TERA = 1e12
BYTES_PER_PARAM = 4  # weights are float32 in-process (the GGUF model is dequantised to float32)
# "1 token is about 4 characters or 3/4 of a word of English text" (OpenAI, "What are tokens and
# how to count them?", help.openai.com); also costing.qoe.tokens_per_word's 1.33.
CHARS_PER_TOKEN = 4.0
TOKENS_PER_WORD = 1.33
# ChatML wraps each message in <|im_start|>role\n ... <|im_end|>\n: about 5 tokens per message.
CHATML_TOKENS_PER_MESSAGE = 5
# Own corpora have no questions to measure before the run: assumed lengths (short factoid QA).
ASSUMED_QUESTION_TOKENS = 24
ASSUMED_ANSWER_TOKENS = 8
# Parameter counts of the built-in aliases, counted from their weights: SmolLM2-135M-Instruct
# (30 layers, hidden 576, MLP 1536, 3 KV heads, tied 49,152 x 576 embedding) and rag/core/tiny.py's
# default tiny Llama (2 layers, hidden 32); all-MiniLM-L6-v2 has 22.7M (its model card).
ALIAS_PARAMS = {"smollm2-135m-instruct": 134_515_008, "tiny-random-llama": 34_528}
EMBEDDER_PARAMS = {"all-minilm-l6-v2": 22_700_000, "hashing": 0}
BERT_BASE_PARAMS = 110_000_000
logger = logging.getLogger(__name__)
_SIZE_IN_NAME = re.compile(r"(?<![0-9a-z])([0-9]+(?:\.[0-9]+)?)([mb])(?![a-z])", re.IGNORECASE)


class BudgetError(UserError, ValueError):
    """A budget would be exceeded, or the estimate a budget needs cannot be made."""


@dataclass
class JobEstimate:
    job: str  # the job's number in the sweep (or "run")
    overrides: str
    xpu_hours: float
    usd: float | None
    co2_kg: float | None  # operational, location-based
    stages_h: dict[str, float]  # device-hours per stage: index, train, eval


@dataclass
class Workload:
    """What a job will process, as far as the config alone says."""

    doc_tokens: float
    doc_examples: int  # training windows of finetune.max_length over the documents
    train_questions: int
    eval_questions: int
    question_tokens: float
    answer_tokens: float


def model_params(config: Config) -> int:
    """Generator parameters: budget.model_params, the alias table, the folder's weights, or a
    size in a hub id ("Qwen2.5-0.5B-Instruct" -> 5e8)."""
    name = config.generator.model
    if config.budget.model_params is not None:
        return int(config.budget.model_params)
    if name in ALIAS_PARAMS:
        return ALIAS_PARAMS[name]
    try:
        stored = count_parameters(Path(name).expanduser())
    except ValueError as err:
        raise BudgetError(f"generator.model={name!r}: {err}; re-download or re-save it") from None
    if stored:
        return stored
    match = _SIZE_IN_NAME.search(Path(name).name)
    if match:
        return int(float(match.group(1)) * (1e6 if match.group(2).lower() == "m" else 1e9))
    raise BudgetError(
        f"cannot tell how many parameters generator.model={name!r} has: set budget.model_params"
    )


def embedder_params(name: str) -> int:
    """Embedder parameters: the alias table or the folder's weights; else BERT-base's 110M
    (Devlin et al. 2019), the size of most sentence-transformers encoders or larger."""
    if name in EMBEDDER_PARAMS:
        return EMBEDDER_PARAMS[name]
    return count_parameters(Path(name).expanduser(), recursive=True) or BERT_BASE_PARAMS


def workload(config: Config) -> Workload:
    c, q, f = config.corpus, config.qa, config.finetune
    if c.source == "synthetic":
        return _builtin_workload(config)
    doc_tokens = config.budget.corpus_tokens
    if doc_tokens is None:
        if c.source != "files":
            raise BudgetError(
                f"cannot size corpus.source={c.source!r} before loading it: "
                "set budget.corpus_tokens"
            )
        from rag.corpus.formats import CorpusError
        from rag.corpus.ingest import corpus_files

        try:
            files = corpus_files(list(c.paths), c.recursive, c.max_files)
        except CorpusError as err:
            raise BudgetError(str(err)) from None
        doc_tokens = sum(p.stat().st_size for p in files) / CHARS_PER_TOKEN
    if q.source == "file":
        from rag.qa.sets import QAFileError, count_qa_rows

        try:
            pairs = count_qa_rows(Path(str(q.path)).expanduser())
        except QAFileError as err:
            raise BudgetError(str(err)) from None
    else:  # cloze / lm synthesis: qa.max_per_chunk per chunk of qa.chunk_words words
        chunks = math.ceil(doc_tokens / TOKENS_PER_WORD / q.chunk_words)
        pairs = min(chunks, q.max_chunks or chunks) * q.max_per_chunk
    held_out = math.ceil(pairs * q.eval_fraction)
    eval_n = held_out if q.max_eval_questions == -1 else min(held_out, q.max_eval_questions)
    return Workload(
        doc_tokens=float(doc_tokens),
        doc_examples=math.ceil(doc_tokens / f.max_length),
        train_questions=(pairs - held_out) * (1 + f.paraphrases),
        eval_questions=eval_n,
        question_tokens=ASSUMED_QUESTION_TOKENS,
        answer_tokens=ASSUMED_ANSWER_TOKENS,
    )


@functools.lru_cache(maxsize=8)  # the jobs of a sweep mostly share one corpus
def _synthetic_corpus(*args: int | None):
    from rag.corpus.synthetic import generate_corpus  # pure Python, milliseconds

    return generate_corpus(*args)


def _builtin_workload(config: Config) -> Workload:
    c, q, f = config.corpus, config.qa, config.finetune
    corpus = _synthetic_corpus(
        c.seed,
        c.num_people,
        c.num_organisations,
        c.num_towns,
        c.num_distractors,
        c.train_phrasings,
        c.attributes_per_entity,
        c.news_per_entity,
        c.noise_sentences,
    )
    doc_tokens = [len(d.text) / CHARS_PER_TOKEN for d in corpus.documents]
    pairs = corpus.qa_pairs
    held_out = len(corpus.split("eval"))
    eval_n = held_out if q.max_eval_questions == -1 else min(held_out, q.max_eval_questions)
    return Workload(
        doc_tokens=sum(doc_tokens),
        doc_examples=sum(math.ceil(t / f.max_length) for t in doc_tokens),
        train_questions=len(corpus.split("train")) * (1 + f.paraphrases),
        eval_questions=eval_n,
        question_tokens=sum(len(p.question) for p in pairs) / len(pairs) / CHARS_PER_TOKEN,
        answer_tokens=sum(len(p.answers[0]) for p in pairs) / len(pairs) / CHARS_PER_TOKEN,
    )


def _hours_stage(config: Config, hw: Hardware, n: int, work: Workload) -> dict[str, float]:
    """Device-hours per stage on ``hw`` (see the module docstring for the model)."""
    if hw.peak_tflops is None or hw.bandwidth_tb_s is None:
        raise BudgetError(
            f"hardware.name={hw.name!r} has no peak_tflops or bandwidth_tb_s in the catalog: "
            "override the row (costing/data/hardware.yaml) or pick another device"
        )
    util = config.budget.utilization
    peak, bandwidth = hw.peak_tflops * TERA, hw.bandwidth_tb_s * TERA

    def compute_h(flops: float) -> float:
        return formulas.hours_from_flops(flops, peak, util)

    e, r, g = config.eval, config.retriever, config.generator
    arms = set(e.arms)
    n_embed = 0 if r.mode == "bm25" else embedder_params(r.embedder.model)
    stages = {"index": 0.0, "train": 0.0, "eval": 0.0}
    if any_retrieves(arms):
        overlap = r.chunk_size / (r.chunk_size - r.chunk_overlap)  # tokens embedded more than once
        stages["index"] = compute_h(formulas.forward_flops(n_embed, work.doc_tokens * overlap))
    if any_tuned(arms):
        stages["train"] = compute_h(_training_flops(config, n, work))
    queries = work.eval_questions + e.warmup_requests
    if e.throughput_batch_size:
        queries += e.throughput_questions
    base_prompt = work.question_tokens + 3 * CHATML_TOKENS_PER_MESSAGE + 12  # + system prompt
    chunk_tokens = r.chunk_size * (TOKENS_PER_WORD if r.chunk_strategy == "words" else 1.0)
    context = r.top_k * min(chunk_tokens, work.doc_tokens / max(work.doc_examples, 1))
    if r.context_budget_tokens is not None:
        context = min(context, r.context_budget_tokens)
    decode_s = formulas.decode_seconds_per_token(n * BYTES_PER_PARAM, bandwidth, util)
    for arm in arms:
        if is_remote(g.backend) or is_composite(arm):  # remote, or nothing generated here
            continue
        prompt = base_prompt + (context if arm_spec(arm).retrieves else 0.0)
        prefill_h = compute_h(formulas.forward_flops(n, prompt))
        decode_h = (g.max_new_tokens - 1) * decode_s / formulas.SECONDS_PER_HOUR
        stages["eval"] += queries * (prefill_h + decode_h)
        if arm_spec(arm).retrieves:  # the question is embedded for retrieval
            question_tokens = queries * work.question_tokens
            stages["index"] += compute_h(formulas.forward_flops(n_embed, question_tokens))
    return stages


def _training_flops(config: Config, n: int, work: Workload) -> float:
    f = config.finetune
    qa_tokens = work.question_tokens + work.answer_tokens + 3 * CHATML_TOKENS_PER_MESSAGE + 12
    tokens = examples = 0.0
    if f.mode in ("cpt", "mixed"):
        tokens, examples = work.doc_tokens, float(work.doc_examples)
    if f.mode in ("qa_sft", "mixed"):
        tokens += work.train_questions * qa_tokens
        examples += work.train_questions
    if f.max_steps > 0:  # whole batches of average-length examples
        tokens = f.max_steps * f.batch_size * f.grad_accum * tokens / max(examples, 1.0)
    else:
        tokens *= f.epochs
    if f.method == "full":
        return formulas.training_flops_dense(n, tokens)
    # The adapter's own weight gradients (2·N_trainable·D, about 1% more for rank 8 on SmolLM2)
    # are left out: their size depends on the architecture, which is not loaded here.
    return formulas.lora_training_flops(n, 0, tokens)


def estimate_job(config: Config, job: str = "run", overrides: str = "") -> JobEstimate:
    """Device-hours, USD and operational kg CO2e of one run of ``config``."""
    catalog = load_hardware_catalog()
    hw = find_hardware(catalog, config.hardware.name)
    stages = _hours_stage(config, hw, model_params(config), workload(config))
    rates = measuring_rates(cost_settings(config), config.costing, catalog)
    cost = rates.cost_hours(sum(stages.values()))
    return JobEstimate(job, overrides, cost.xpu_hours, cost.usd, cost.co2_operational_kg, stages)


LIMITS = (("max_xpu_hours", "xpu_hours", "xPU-hours"), ("max_usd", "usd", "USD"),
          ("max_kg_co2", "co2_kg", "kg CO2e"))  # fmt: skip


def check_limits(config: Config, jobs: list[JobEstimate]) -> None:
    """Raise BudgetError naming the first job whose cumulative estimate crosses a limit."""
    for key, field_name, unit in LIMITS:
        limit = getattr(config.budget, key)
        if limit is None:
            continue
        total = 0.0
        for job in jobs:
            value = getattr(job, field_name)
            if value is None:
                raise BudgetError(
                    f"budget.{key} is set but job {job.job} has no {unit} estimate "
                    "(the catalog lacks a price or power figure): set hardware.usd_per_hour / "
                    "hardware.power_w or clear the limit"
                )
            total += value
            if total > limit:
                where = f" ({job.overrides})" if job.overrides else ""
                raise BudgetError(
                    f"budget.{key}={limit:g} would be exceeded by job {job.job}{where}: "
                    f"cumulative estimate {total:.3g} {unit}; raise budget.{key} or shrink "
                    "the sweep (nothing was run)"
                )


def guard(
    config: Config, estimate_jobs: Callable[[], list[JobEstimate]], show: Callable[[str], None]
) -> bool:
    """Estimate every job, show the table, enforce the limits before anything runs.

    Returns False for a dry run (run nothing). Raises BudgetError when a limit would be exceeded
    or when a limit is set and the estimate cannot be made; without limits an estimate that
    cannot be made is only a warning.
    """
    b = config.budget
    enforced = b.dry_run or any(getattr(b, key) is not None for key, _, _ in LIMITS)
    try:
        jobs = estimate_jobs()
    except BudgetError as err:
        if enforced:
            raise
        logger.warning("no cost estimate: %s", err)
        return True
    show(render_table(jobs))
    if not b.dry_run:
        check_limits(config, jobs)
        return True
    try:
        check_limits(config, jobs)
    except BudgetError as err:
        show(f"over budget: {err}")
    show(f"dry run: {len(jobs)} job(s) estimated, nothing was run (budget.dry_run=true)")
    return False


def render_table(jobs: list[JobEstimate]) -> str:
    """One row per job with running totals (estimates, see evaluate/pipeline/budget.py)."""
    head = ("job", "overrides", "xPU-h", "USD", "kg CO2", "cum xPU-h", "cum USD", "cum kg CO2")
    rows, totals = [], [0.0, 0.0, 0.0]
    for job in jobs:
        values = (job.xpu_hours, job.usd, job.co2_kg)
        totals = [_add(t, v) for t, v in zip(totals, values, strict=True)]
        cells = [_num(v) for v in (*values, *totals)]
        rows.append((job.job, job.overrides or "-", *cells))
    widths = [max(len(str(r[i])) for r in (head, *rows)) for i in range(len(head))]
    lines = [
        "  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True))
        for row in (head, *rows)
    ]
    lines = [line.rstrip() for line in lines]
    return "cost estimate before running (budget guard):\n" + "\n".join(lines)


def _add(total: float | None, value: float | None) -> float | None:
    return None if total is None or value is None else total + value


def _num(value: float | None) -> str:
    return "unknown" if value is None else f"{value:.3g}"
