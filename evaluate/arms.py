"""Run one arm over the evaluation questions and score every answer.

An arm is a generator (base or fine-tuned) with or without a retriever; all arms share the
questions, the prompt wording and greedy decoding.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass, field

from tqdm.auto import tqdm

from evaluate.metrics import contains_answer, exact_match, rouge_l, token_f1
from evaluate.retrieval_metrics import retrieval_scores
from rag.context import build_context
from rag.generation import ChatGenerator
from rag.prompts import closed_book_messages
from rag.retriever import Retriever
from rag.types import QAPair

logger = logging.getLogger(__name__)


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
    tokens_from_usage: bool = True  # False: an endpoint sent no usage, streamed chunks counted
    retrieved_doc_ids: list[str] = field(default_factory=list)
    retrieved_chunk_ids: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class ContextSettings:
    budget_tokens: int | None = None  # cap on context tokens; None: every retrieved chunk
    ordering: str = "best_first"


def messages_for(qa: QAPair, retrieval, generator=None, context: ContextSettings | None = None):
    """The arm's chat messages and the built context (None for closed-book arms)."""
    if retrieval is None:
        return closed_book_messages(qa.question), None
    context = context or ContextSettings()
    tokenizer = getattr(generator, "tokenizer", None) if context.budget_tokens else None
    built = build_context(
        qa.question, retrieval, tokenizer, context.budget_tokens, context.ordering
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
    retrieval = retriever.retrieve(qa.question) if retriever is not None else None
    messages, built = messages_for(qa, retrieval, generator, context)
    gen = generator.generate(messages)
    prediction = Prediction(
        arm=arm,
        qa_id=qa.qa_id,
        question=qa.question,
        answers=list(qa.answers),
        prediction=gen.text,
        exact_match=exact_match(gen.text, qa.answers),
        token_f1=token_f1(gen.text, qa.answers),
        contains=contains_answer(gen.text, qa.answers),
        rouge_l=rouge_l(gen.text, qa.answers),
        tokens_from_usage=bool(getattr(gen, "tokens_from_usage", True)),
        input_tokens=gen.input_tokens,
        output_tokens=gen.output_tokens,
        ttft_s=gen.ttft_s,
        tpot_s=gen.tpot_s,
        e2e_s=gen.e2e_s,
        request_s=gen.e2e_s,
    )
    if retrieval is not None:
        _add_retrieval(prediction, qa, retrieval, built, retriever.top_k)
    return prediction


def _add_retrieval(p: Prediction, qa: QAPair, retrieval, built, top_k: int) -> None:
    p.retrieval_embed_s = retrieval.embed_s
    p.retrieval_search_s = retrieval.search_s
    p.retrieval_dense_search_s = retrieval.dense_search_s
    p.retrieval_bm25_search_s = retrieval.bm25_search_s
    p.retrieval_fusion_s = retrieval.fusion_s
    p.retrieval_rerank_s = retrieval.rerank_s
    p.prompt_build_s = built.build_s
    p.request_s = retrieval.total_s + built.build_s + p.e2e_s
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
) -> list[Prediction]:
    """Answer every question once, after ``warmup_requests`` discarded requests."""
    for qa in questions[:warmup_requests]:
        answer(arm, qa, generator, retriever, context)
    predictions = []
    for qa in tqdm(questions, desc=f"arm {arm}", unit="q", disable=not progress):
        predictions.append(answer(arm, qa, generator, retriever, context))
    return predictions
