"""Run one arm over the evaluation questions and score every answer.

An arm is a generator (base or fine-tuned) with or without a retriever; all arms share the
questions, the prompt wording and greedy decoding.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field

from tqdm.auto import tqdm

from evaluate.metrics import contains_answer, exact_match, recall_at_k, rouge_l, token_f1
from rag.generation import ChatGenerator
from rag.prompts import closed_book_messages, rag_messages
from rag.retriever import DenseRetriever
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
    retrieval_search_s: float = 0.0
    request_s: float = 0.0  # what the user waits: retrieval + generation
    recall_at_k: float | None = None
    rouge_l: float = 0.0
    semantic_similarity: float | None = None  # filled after the run (needs the embedder)
    tokens_from_usage: bool = True  # False: an endpoint sent no usage, streamed chunks counted
    retrieved_doc_ids: list[str] = field(default_factory=list)
    retrieved_chunk_ids: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def messages_for(qa: QAPair, retrieval) -> list[dict[str, str]]:
    if retrieval is None:
        return closed_book_messages(qa.question)
    return rag_messages(qa.question, [c.text for c in retrieval.chunks])


def answer(
    arm: str, qa: QAPair, generator: ChatGenerator, retriever: DenseRetriever | None
) -> Prediction:
    retrieval = retriever.retrieve(qa.question) if retriever is not None else None
    gen = generator.generate(messages_for(qa, retrieval))
    retrieval_s = retrieval.total_s if retrieval else 0.0
    return Prediction(
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
        retrieval_embed_s=retrieval.embed_s if retrieval else 0.0,
        retrieval_search_s=retrieval.search_s if retrieval else 0.0,
        request_s=retrieval_s + gen.e2e_s,
        recall_at_k=recall_at_k(retrieval.doc_ids, qa.supporting_doc_ids) if retrieval else None,
        retrieved_doc_ids=retrieval.doc_ids if retrieval else [],
        retrieved_chunk_ids=[c.chunk_id for c in retrieval.chunks] if retrieval else [],
    )


def run_arm(
    arm: str,
    questions: list[QAPair],
    generator: ChatGenerator,
    retriever: DenseRetriever | None,
    warmup_requests: int = 1,
    progress: bool = True,
) -> list[Prediction]:
    """Answer every question once, after ``warmup_requests`` discarded requests."""
    for qa in questions[:warmup_requests]:
        answer(arm, qa, generator, retriever)
    predictions = []
    for qa in tqdm(questions, desc=f"arm {arm}", unit="q", disable=not progress):
        predictions.append(answer(arm, qa, generator, retriever))
    return predictions
