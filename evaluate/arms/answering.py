"""Run one arm over the evaluation questions and score every answer.

An arm is a generator (base or fine-tuned) with or without a retriever; all arms share the
questions, the prompt wording and greedy decoding.

A request that fails on its own (endpoint error or timeout, malformed response, a prompt over the
context window) makes a failed prediction: ``error`` set, every score 0, left out of the latency
statistics, counted per reason. Above ``max_failure_rate`` the arm stops with
``TooManyFailuresError``. Answers are journaled (``evaluate.arms.journal``) and reused on a re-run.
"""

from __future__ import annotations

import logging
import math
import time
from collections import Counter
from dataclasses import asdict, dataclass, field, fields

from tqdm.auto import tqdm

from evaluate.backends.base import GenerationFailure
from evaluate.backends.transformers import ChatGenerator
from evaluate.scoring.metrics import contains_answer, exact_match, rouge_l, token_f1
from evaluate.scoring.retrieval import retrieval_scores
from rag.core.errors import UserError
from rag.core.prompts import DEFAULT_STYLE, PromptStyle, closed_book_messages
from rag.core.types import QAPair
from rag.retrieval.context import build_context
from rag.retrieval.retriever import Retriever

logger = logging.getLogger(__name__)

# Failures that mean the whole set-up is broken, not one question: fatal before any success.
_FATAL_AT_START = ("unreachable", "configuration")


class TooManyFailuresError(UserError, RuntimeError):
    """More questions of an arm failed than ``eval.max_failure_rate`` allows."""


@dataclass
class Prediction:
    arm: str
    qa_id: str
    question: str
    answers: list[str]
    prediction: str
    exact_match: float
    token_f1: float
    contains: float
    input_tokens: int
    output_tokens: int
    ttft_s: float  # tokenisation + prefill to the first token (retrieval excluded)
    tpot_s: float
    e2e_s: float  # generation only: ttft_s + tpot_s * (output_tokens - 1)
    retrieval_embed_s: float = 0.0
    retrieval_search_s: float = 0.0  # dense + bm25 + fusion
    retrieval_dense_search_s: float = 0.0
    retrieval_bm25_search_s: float = 0.0
    retrieval_fusion_s: float = 0.0
    retrieval_rerank_s: float = 0.0
    prompt_build_s: float = 0.0
    request_s: float = 0.0  # what the user waits: retrieval + prompt build + generation
    recall_at_k: float | None = None  # share of the supporting documents retrieved
    hit_rate_at_k: float | None = None  # 1 if any supporting document was retrieved
    mrr: float | None = None
    ndcg_at_k: float | None = None
    context_chunk_ids: list[str] = field(default_factory=list)  # in prompt order
    context_tokens: int | None = None
    truncated_chunk_id: str | None = None
    rouge_l: float = 0.0
    semantic_similarity: float | None = None  # filled after the run (needs the embedder)
    tokens_from_usage: bool = True  # False: an endpoint sent no usage (see token_source)
    token_source: str = "model"  # model (in-process) | usage | tokenizer | chunks (endpoint)
    ttft_measured: bool = True  # False: e2e-only backend (vLLM offline), ttft_s is e2e_s
    retrieved_doc_ids: list[str] = field(default_factory=list)
    retrieved_chunk_ids: list[str] = field(default_factory=list)
    error: str | None = None  # why this question failed (scores 0, no latency); None: answered
    failure_reason: str | None = None  # e.g. timeout, http_error, context_overflow
    reused: bool = False  # answer (and its timings) taken from the evaluation journal
    # False: answered in a batch for accuracy only (eval.answer_batch_size); ttft_s, tpot_s and
    # e2e_s are 0 and stay out of the latency statistics. True: timed batch-1 request.
    latency_measured: bool = True
    # For a timed question when batching: did the batched greedy answer equal this batch-1
    # answer (same text)? None: not compared.
    batched_answer_matches: bool | None = None
    judge: float | None = None  # LLM judge verdict: 1 correct, 0 wrong, None unparseable/off
    judge_input_tokens: int = 0
    judge_output_tokens: int = 0
    judge_s: float = 0.0
    # token-level confidence of the answer (natural-log probability per generated token); None:
    # the backend reported no log-probs
    logprob_mean: float | None = None
    logprob_min: float | None = None
    cascade: dict | None = None  # the cascade arm's per-question record (evaluate.arms.cascade)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, row: dict) -> Prediction:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in row.items() if k in names})


@dataclass
class ContextSettings:
    budget_tokens: int | None = None  # cap on context tokens; None: every retrieved chunk
    ordering: str = "best_first"
    style: PromptStyle = DEFAULT_STYLE  # instruction and few-shot examples (every arm)


def messages_for(qa: QAPair, retrieval, generator=None, context: ContextSettings | None = None):
    """The arm's chat messages and the built context (None for closed-book arms)."""
    context = context or ContextSettings()
    if retrieval is None:
        return closed_book_messages(qa.question, context.style), None
    tokenizer = getattr(generator, "tokenizer", None) if context.budget_tokens else None
    built = build_context(
        qa.question, retrieval, tokenizer, context.budget_tokens, context.ordering, context.style
    )
    return built.messages, built


def _none_if_nan(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


def answer(
    arm: str,
    qa: QAPair,
    generator: ChatGenerator,
    retriever: Retriever | None,
    context: ContextSettings | None = None,
) -> Prediction:
    """One question through the arm; a ``GenerationFailure`` makes a failed prediction."""
    retrieval = retriever.retrieve(qa.question) if retriever is not None else None
    messages, built = messages_for(qa, retrieval, generator, context)
    return _generated(arm, qa, generator, retriever, messages, retrieval, built)


def _generated(arm, qa, generator, retriever, messages, retrieval, built) -> Prediction:
    """The batch-1, timed answer to already built messages."""
    started = time.perf_counter()
    try:
        gen = generator.generate(messages)
    except GenerationFailure as err:
        prediction = _failed(arm, qa, err)
        # Costed, not free: the time until the failure and the prompt tokens sent (a prompt
        # refused as too long was not processed). Latency statistics still leave it out.
        prediction.request_s = time.perf_counter() - started
        if err.reason != "context_overflow":
            prediction.input_tokens = max(0, generator.prompt_tokens(messages))
    else:
        prediction = Prediction(
            arm=arm,
            qa_id=qa.qa_id,
            question=qa.question,
            answers=list(qa.answers),
            prediction=gen.text,
            exact_match=0.0,
            token_f1=0.0,
            contains=0.0,
            tokens_from_usage=bool(getattr(gen, "tokens_from_usage", True)),
            token_source=str(getattr(gen, "token_source", "model")),
            ttft_measured=bool(getattr(gen, "ttft_measured", True)),
            input_tokens=gen.input_tokens,
            output_tokens=gen.output_tokens,
            ttft_s=gen.ttft_s,
            tpot_s=gen.tpot_s,
            e2e_s=gen.e2e_s,
            request_s=gen.e2e_s,
        )
        set_confidence(prediction, getattr(gen, "token_logprobs", None))
        score(prediction, qa)
    if retrieval is not None:
        _add_retrieval(prediction, qa, retrieval, built, retriever.top_k)
    return prediction


def score(p: Prediction, qa: QAPair) -> None:
    """Fill the answer's accuracy scores against the gold answers (0 for a failed question)."""
    p.answers = list(qa.answers)
    ok = p.error is None
    p.exact_match = exact_match(p.prediction, qa.answers) if ok else 0.0
    p.token_f1 = token_f1(p.prediction, qa.answers) if ok else 0.0
    p.contains = contains_answer(p.prediction, qa.answers) if ok else 0.0
    p.rouge_l = rouge_l(p.prediction, qa.answers) if ok else 0.0


def _failed(arm: str, qa: QAPair, err: GenerationFailure) -> Prediction:
    message = " ".join(str(err).split())  # one line
    logger.warning("arm %s question %s failed (%s): %s", arm, qa.qa_id, err.reason, message)
    return Prediction(
        arm=arm,
        qa_id=qa.qa_id,
        question=qa.question,
        answers=list(qa.answers),
        prediction="",
        exact_match=0.0,
        token_f1=0.0,
        contains=0.0,
        input_tokens=0,
        output_tokens=0,
        ttft_s=0.0,
        tpot_s=0.0,
        e2e_s=0.0,
        error=message,
        failure_reason=err.reason,
    )


def _add_retrieval(p: Prediction, qa: QAPair, retrieval, built, top_k: int) -> None:
    p.retrieval_embed_s = retrieval.embed_s
    p.retrieval_search_s = retrieval.search_s
    p.retrieval_dense_search_s = retrieval.dense_search_s
    p.retrieval_bm25_search_s = retrieval.bm25_search_s
    p.retrieval_fusion_s = retrieval.fusion_s
    p.retrieval_rerank_s = retrieval.rerank_s
    p.prompt_build_s = built.build_s
    generation_s = p.e2e_s if p.error is None else p.request_s  # until the failure
    p.request_s = retrieval.total_s + built.build_s + generation_s
    scores = retrieval_scores(retrieval.doc_ids, qa.supporting_doc_ids, top_k)
    p.recall_at_k = _none_if_nan(scores["recall_at_k"])
    p.hit_rate_at_k = _none_if_nan(scores["hit_rate_at_k"])
    p.mrr = _none_if_nan(scores["mrr"])
    p.ndcg_at_k = _none_if_nan(scores["ndcg_at_k"])
    p.retrieved_doc_ids = retrieval.doc_ids
    p.retrieved_chunk_ids = [c.chunk_id for c in retrieval.chunks]
    p.context_chunk_ids = list(built.chunk_ids)
    p.context_tokens = None if built.context_tokens < 0 else built.context_tokens
    p.truncated_chunk_id = built.truncated_chunk_id


def run_arm(
    arm: str,
    questions: list[QAPair],
    generator: ChatGenerator,
    retriever: Retriever | None,
    warmup_requests: int = 1,
    progress: bool = True,
    context: ContextSettings | None = None,
    max_failure_rate: float = 1.0,
    journal=None,
    batch_size: int = 1,
    latency_questions: int | None = None,
    compare_batched: bool = False,
    batch_log: list[dict] | None = None,
) -> list[Prediction]:
    """Answer every question once, after ``warmup_requests`` discarded requests. Answers found
    in ``journal`` (an ``evaluate.arms.journal.AnswerJournal``) are reused; new ones are added to
    it.
    Warm-up happens only if something has to be generated.

    With ``batch_size`` > 1 and an in-process generator, accuracy and latency are separated
    (``_run_batched``): the first ``latency_questions`` questions are answered batch-1 and timed,
    and every other question is answered in batches, untimed; with ``compare_batched`` the timed
    questions are answered in batches too, and the two answers compared. ``batch_log``, when
    given, receives each batch's ``requests``, ``output_tokens`` and ``wall_s`` (the run reads
    the arm's batched throughput off them)."""
    if (
        batch_size > 1
        and _to_generate(journal, questions, latency_questions, compare_batched)
        and _can_batch(generator)
    ):
        return _run_batched(
            arm,
            questions,
            generator,
            retriever,
            warmup_requests,
            progress,
            context,
            max_failure_rate,
            journal,
            batch_size,
            len(questions) if latency_questions is None else latency_questions,
            compare_batched,
            batch_log,
        )
    reused = [_from_journal(journal, arm, qa, retriever) for qa in questions]
    n_reused = sum(p is not None for p in reused)
    if journal is not None:
        logger.info(
            "arm %s: reused %d of %d answers from the evaluation journal",
            arm,
            n_reused,
            len(questions),
        )
    answered = False
    if n_reused < len(questions):
        for qa in questions[:warmup_requests]:
            answered |= _warm_up(arm, qa, generator, retriever, context)
    allowed = max_failure_rate * len(questions)
    failures: Counter[str] = Counter()
    predictions = []
    for qa, kept in tqdm(
        list(zip(questions, reused, strict=True)),
        desc=f"arm {arm}",
        unit="q",
        disable=not progress,
    ):
        if kept is not None:
            predictions.append(kept)
            continue
        p = answer(arm, qa, generator, retriever, context)
        if p.error is None:
            answered = True
            if journal is not None:
                journal.record(qa, p.to_dict())
        else:
            if not answered and p.failure_reason in _FATAL_AT_START:
                raise _fatal(p)
            failures[p.failure_reason] += 1
            if sum(failures.values()) > allowed:
                raise TooManyFailuresError(
                    _too_many(arm, failures, len(questions), p, max_failure_rate)
                )
        predictions.append(p)
    return predictions


def _warm_up(arm, qa, generator, retriever, context) -> bool:
    """One discarded request; True if it was answered. A fatal failure ends the run here."""
    p = answer(arm, qa, generator, retriever, context)
    if p.error is not None and p.failure_reason in _FATAL_AT_START:
        raise _fatal(p)
    return p.error is None


def _fatal(p: Prediction) -> GenerationFailure:
    from evaluate.backends.openai import EndpointError

    return EndpointError(p.error or "", p.failure_reason or "unreachable")


def _too_many(arm: str, failures: Counter[str], n: int, last: Prediction, rate: float) -> str:
    count = sum(failures.values())
    reasons = ", ".join(f"{reason}: {k}" for reason, k in failures.most_common())
    return (
        f"arm {arm}: {count} of {n} questions failed ({reasons}), more than "
        f"eval.max_failure_rate={rate} allows; its scores would be meaningless. Last error: "
        f"{last.error}. Fix the generator or endpoint, or raise eval.max_failure_rate"
    )


def _from_journal(journal, arm: str, qa: QAPair, retriever: Retriever | None):
    row = journal.lookup(qa) if journal is not None else None
    if row is None:
        return None
    p = Prediction.from_dict(row)
    p.arm, p.qa_id, p.question, p.reused = arm, qa.qa_id, qa.question, True
    p.judge, p.judge_input_tokens, p.judge_output_tokens, p.judge_s = None, 0, 0, 0.0
    p.semantic_similarity = None
    score(p, qa)  # the gold answers may have been corrected since
    if retriever is not None:
        scores = retrieval_scores(p.retrieved_doc_ids, qa.supporting_doc_ids, retriever.top_k)
        p.recall_at_k = _none_if_nan(scores["recall_at_k"])
        p.hit_rate_at_k = _none_if_nan(scores["hit_rate_at_k"])
        p.mrr = _none_if_nan(scores["mrr"])
        p.ndcg_at_k = _none_if_nan(scores["ndcg_at_k"])
    return p


def _to_generate(
    journal, questions: list[QAPair], latency_questions: int | None, compare_batched: bool = False
) -> bool:
    """Whether any answer is missing from the journal, or lacks the batch-1 timing the latency
    sample needs, or (``compare_batched``) its batched comparison (a fully journaled arm loads no
    model)."""
    if journal is None:
        return True
    sample = len(questions) if latency_questions is None else latency_questions
    for i, qa in enumerate(questions):
        row = journal.lookup(qa)
        if row is None:
            return True
        timed, matches = row.get("latency_measured", True), row.get("batched_answer_matches")
        if i < sample and not _sample_complete(timed, matches, compare_batched):
            return True
    return False


def _sample_complete(timed: bool, matches: bool | None, compare_batched: bool) -> bool:
    """A journaled answer serves the latency sample: timed batch-1, and compared with its
    batched answer (``matches`` not None) when the comparison is asked for."""
    return timed and (not compare_batched or matches is not None)


def _can_batch(generator) -> bool:
    """In-process transformers generators batch; endpoints and vLLM answer one request each."""
    unwrap = getattr(generator, "get", None)  # execution's lazy wrapper
    return isinstance(unwrap() if callable(unwrap) else generator, ChatGenerator)


class _Failures:
    """Counts failed questions and stops the arm above ``max_failure_rate``."""

    def __init__(self, arm: str, n: int, max_failure_rate: float) -> None:
        self.arm, self.n, self.rate = arm, n, max_failure_rate
        self.counts: Counter[str] = Counter()

    def add(self, p: Prediction) -> None:
        self.counts[p.failure_reason] += 1
        if sum(self.counts.values()) > self.rate * self.n:
            raise TooManyFailuresError(_too_many(self.arm, self.counts, self.n, p, self.rate))


def _run_batched(
    arm: str,
    questions: list[QAPair],
    generator: ChatGenerator,
    retriever: Retriever | None,
    warmup_requests: int,
    progress: bool,
    context: ContextSettings | None,
    max_failure_rate: float,
    journal,
    batch_size: int,
    latency_questions: int,
    compare_batched: bool = False,
    batch_log: list[dict] | None = None,
) -> list[Prediction]:
    """Accuracy: every question still to answer outside the latency sample, greedy, in batches
    (the untimed answers are journaled batch by batch). Latency: then the first
    ``latency_questions`` questions batch-1, sequentially, after the warm-up (the documented
    TTFT/TPOT protocol). A timed question keeps its batch-1 answer (so e2e = TTFT + TPOT * (N - 1)
    holds for its N tokens) and is journaled once, as soon as it is given. With
    ``compare_batched`` the timed questions are answered in the batches too, and each records
    whether its batched answer was the same text (``batched_answer_matches``)."""
    from evaluate.arms.throughput import answer_batches

    found = [_from_journal(journal, arm, qa, retriever) for qa in questions]
    for i, p in enumerate(found[:latency_questions]):
        if p is not None and not _sample_complete(
            p.latency_measured, p.batched_answer_matches, compare_batched
        ):
            found[i] = None  # journaled untimed (now in the sample) or not yet compared
    if journal is not None:
        n_reused = sum(p is not None for p in found)
        logger.info(
            "arm %s: reused %d of %d answers from the evaluation journal",
            arm,
            n_reused,
            len(questions),
        )
    todo = [i for i, p in enumerate(found) if p is None]
    failures = _Failures(arm, len(questions), max_failure_rate)
    prepared = {}
    for i in todo:
        qa = questions[i]
        retrieval = retriever.retrieve(qa.question) if retriever is not None else None
        messages, built = messages_for(qa, retrieval, generator, context)
        prepared[i] = (messages, retrieval, built)
    if not todo:
        return list(found)  # type: ignore[arg-type]
    window = generator.context_window or float("inf")
    length = {i: generator.prompt_tokens(prepared[i][0]) for i in todo}
    fits = sorted(
        (i for i in todo if length[i] + generator.max_new_tokens <= window), key=length.get
    )
    batched = [i for i in fits if compare_batched or i >= latency_questions]
    batched_text: dict[int, str] = {}
    # grouped by prompt length (fits is sorted), so a batch pads little
    starts = range(0, len(batched), batch_size)
    for start in tqdm(starts, desc=f"arm {arm} batched", unit="batch", disable=not progress):
        rows = batched[start : start + batch_size]
        began = time.perf_counter()
        answers = answer_batches(generator, [prepared[i][0] for i in rows], batch_size)
        if batch_log is not None:
            batch_log.append(
                {
                    "requests": len(rows),
                    "output_tokens": sum(a[2] for a in answers),
                    "wall_s": time.perf_counter() - began,
                }
            )
        for i, (text, input_tokens, output_tokens, logprobs) in zip(rows, answers, strict=True):
            if i < latency_questions:  # answered again below, batch-1 and timed
                batched_text[i] = text
                continue
            found[i] = _untimed(arm, questions[i], text, input_tokens, output_tokens, logprobs)
            _, retrieval, built = prepared[i]
            if retrieval is not None:
                _add_retrieval(found[i], questions[i], retrieval, built, retriever.top_k)
            if journal is not None:
                journal.record(questions[i], found[i].to_dict())
    timed = [i for i in todo if i < latency_questions or i not in fits]
    if timed:
        for qa in questions[:warmup_requests]:
            _warm_up(arm, qa, generator, retriever, context)
    for i in tqdm(timed, desc=f"arm {arm} latency", unit="q", disable=not progress):
        # over the window (not in fits): the batch-1 path fails it with the reason
        found[i] = _generated(arm, questions[i], generator, retriever, *prepared[i])
        if found[i].error is not None:
            failures.add(found[i])
            continue
        if i in batched_text:
            found[i].batched_answer_matches = batched_text[i] == found[i].prediction
        if journal is not None:  # journaled as soon as given (resume after a kill)
            journal.record(questions[i], found[i].to_dict())
    return list(found)  # type: ignore[arg-type]


def set_confidence(p: Prediction, logprobs: list[float] | None) -> None:
    """The answer's token-level confidence: mean and minimum log-probability of its tokens."""
    if logprobs:
        p.logprob_mean = math.fsum(logprobs) / len(logprobs)
        p.logprob_min = min(logprobs)


def _untimed(
    arm: str,
    qa: QAPair,
    text: str,
    input_tokens: int,
    output_tokens: int,
    logprobs: list[float] | None = None,
) -> Prediction:
    """A batched answer: scored, with token counts and confidence, without batch-1 timings."""
    p = Prediction(
        arm=arm,
        qa_id=qa.qa_id,
        question=qa.question,
        answers=list(qa.answers),
        prediction=text,
        exact_match=0.0,
        token_f1=0.0,
        contains=0.0,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        ttft_s=0.0,
        tpot_s=0.0,
        e2e_s=0.0,
        latency_measured=False,
    )
    set_confidence(p, logprobs)
    score(p, qa)
    return p
