"""Accuracy from batched greedy answers, latency from a batch-1 sample (eval.answer_batch_size,
eval.latency_questions): which questions are timed, that batched answers are the ones batch-1
greedy decoding gives, and that per-query costs stay batch-1 figures."""

from __future__ import annotations

import pytest

from evaluate.arms.answering import Prediction, run_arm
from evaluate.pipeline.costs import _per_query_timings
from evaluate.records.results import evaluation_summary, latency_table
from rag.core.types import QAPair

QUESTIONS = [
    QAPair(f"q{i}", question, [f"Town {i}"], [])
    for i, question in enumerate(
        [
            "Where was Alma Voss born?",
            "In which year was the Merrow bridge finished, and who paid for it?",
            "Who?",
            "What instrument did the founder of the Velmora workshop play as a child?",
            "Name the town.",
            "Which river runs through the old quarter of Tarrowby?",
        ]
    )
]


@pytest.fixture(scope="module")
def generator(tiny_model_dir):
    from evaluate.backends.transformers import ChatGenerator

    return ChatGenerator.load(tiny_model_dir, max_new_tokens=6)


def _compared(generator, warmup: int, timed: int) -> list[Prediction]:
    """The six questions in batches of 4, ``timed`` of them batch-1, with compare_batched."""
    args = (None, warmup, False, None, 0.0, None, 4, timed)
    return run_arm("closed_book", QUESTIONS, generator, *args, compare_batched=True)


def _spy_batches(monkeypatch) -> list[int]:
    """Records how many chats each batched-answering call got (the real function runs)."""
    import evaluate.arms.throughput as throughput

    sizes: list[int] = []
    real = throughput.answer_batches

    def spy(generator, messages_list, batch_size, *args, **kwargs):
        sizes.append(len(messages_list))
        return real(generator, messages_list, batch_size, *args, **kwargs)

    monkeypatch.setattr(throughput, "answer_batches", spy)
    return sizes


def test_timed_questions_are_not_answered_again_in_batches(generator, monkeypatch):
    """By default the latency sample's batch-1 answers are its predictions: only the four other
    questions go through batched generation (in one batch of 4), and nothing is compared."""
    sizes = _spy_batches(monkeypatch)
    preds = run_arm("closed_book", QUESTIONS, generator, None, 1, False, None, 0.0, None, 4, 2)
    assert sizes == [4]
    assert [p.latency_measured for p in preds] == [True, True, False, False, False, False]
    assert all(p.batched_answer_matches is None for p in preds)
    assert evaluation_summary(preds)["batched_vs_batch1"] == {"compared": 0, "differ": 0}


def test_first_questions_are_timed_batch1_and_the_rest_batched(generator, monkeypatch):
    sizes = _spy_batches(monkeypatch)
    preds = _compared(generator, warmup=1, timed=2)
    assert sizes == [4, 2]  # all six questions in batches of 4: the timed two as well
    assert [p.latency_measured for p in preds] == [True, True, False, False, False, False]
    for p in preds[:2]:
        assert p.ttft_s > 0 and p.e2e_s >= p.ttft_s
        assert p.e2e_s == pytest.approx(p.ttft_s + p.tpot_s * (p.output_tokens - 1), abs=1e-12)
        assert p.batched_answer_matches is not None
    for p in preds[2:]:
        assert (p.ttft_s, p.tpot_s, p.e2e_s, p.batched_answer_matches) == (0.0, 0.0, 0.0, None)
        assert p.output_tokens >= 1 and p.input_tokens > 0
    # the latency statistics see the two timed requests only: the mean of two values
    table = latency_table(preds)
    assert table["ttft_mean_s"] == pytest.approx((preds[0].ttft_s + preds[1].ttft_s) / 2)
    summary = evaluation_summary(preds)
    assert summary["latency_questions"] == 2
    matches = [p.batched_answer_matches for p in preds[:2]]
    assert summary["batched_vs_batch1"] == {"compared": 2, "differ": matches.count(False)}


def test_batched_answers_equal_batch1_greedy_answers(generator):
    """The reference is transformers' own batch-1 greedy generate on each chat."""
    preds = _compared(generator, warmup=0, timed=1)
    from rag.core.prompts import closed_book_messages

    for qa, p in zip(QUESTIONS, preds, strict=True):
        single = generator.generate(closed_book_messages(qa.question))
        assert (p.prediction, p.input_tokens, p.output_tokens) == (
            single.text,
            single.input_tokens,
            single.output_tokens,
        )
    assert all(p.batched_answer_matches for p in preds[:1])


def test_batch_size_one_times_every_question(generator):
    preds = run_arm("closed_book", QUESTIONS[:3], generator, None, 0, False, None, 0.0, None, 1, 1)
    assert all(p.latency_measured and p.ttft_s > 0 for p in preds)


def _pred(qa_id, ttft_s, tpot_s, n, measured, retrieval_s=0.0, error=None):
    e2e_s = ttft_s + tpot_s * (n - 1)
    return Prediction(
        arm="rag",
        qa_id=qa_id,
        question="?",
        answers=["a"],
        prediction="a",
        exact_match=1.0,
        token_f1=1.0,
        contains=1.0,
        input_tokens=50,
        output_tokens=n,
        ttft_s=ttft_s,
        tpot_s=tpot_s,
        e2e_s=e2e_s,
        request_s=retrieval_s + e2e_s,
        latency_measured=measured,
        error=error,
    )


def test_untimed_questions_are_costed_from_the_timed_sample():
    preds = [
        _pred("a", 0.2, 0.04, 11, True, retrieval_s=0.01),
        _pred("b", 0.4, 0.06, 5, True, retrieval_s=0.03),
        _pred("c", 0.0, 0.0, 6, False, retrieval_s=0.02),
    ]
    preds[2].request_s = 0.02  # retrieval only: no batch-1 generation time
    ttft_s, tpot_s, query_s = _per_query_timings(preds)
    # hand calculation: mean TTFT (0.2 + 0.4) / 2 = 0.3 s, mean TPOT (0.04 + 0.06) / 2 = 0.05 s;
    # question c: 0.02 s retrieval + 0.3 s + 0.05 s * (6 - 1) = 0.57 s
    assert ttft_s == pytest.approx([0.2, 0.4, 0.3])
    assert tpot_s == pytest.approx([0.04, 0.06, 0.05])
    assert query_s == pytest.approx([0.01 + 0.6, 0.03 + 0.64, 0.57])


def test_a_larger_latency_sample_times_journaled_batched_answers(generator, tmp_path):
    from evaluate.arms.journal import AnswerJournal

    path = tmp_path / "journal.jsonl"
    first = run_arm(
        "closed_book", QUESTIONS, generator, None, 0, False, None, 0.0, AnswerJournal(path), 4, 1
    )
    again = run_arm(
        "closed_book", QUESTIONS, generator, None, 0, False, None, 0.0, AnswerJournal(path), 4, 3
    )
    assert [p.latency_measured for p in first] == [True] + [False] * 5
    assert [p.latency_measured for p in again] == [True] * 3 + [False] * 3
    assert [p.reused for p in again] == [True, False, False, True, True, True]


def test_sampling_or_stop_strings_answer_one_question_at_a_time(tmp_path):
    from evaluate.arms.execution import _answer_batch_size
    from tests.evaluate.test_eval_resume import _config

    assert _answer_batch_size(_config(tmp_path)) == 8
    assert _answer_batch_size(_config(tmp_path, "generator.temperature=0.7")) == 1
    assert _answer_batch_size(_config(tmp_path, "eval.answer_batch_size=4")) == 4


def test_asking_for_the_comparison_answers_the_journaled_sample_again(generator, tmp_path):
    """A re-run with compare_batched on a journal written without it answers the timed
    questions again (batched and batch-1) instead of reusing answers that were never compared;
    the untimed answers are reused."""
    from evaluate.arms.journal import AnswerJournal

    path = tmp_path / "journal.jsonl"
    args = (None, 0, False, None, 0.0)
    run_arm("closed_book", QUESTIONS, generator, *args, AnswerJournal(path), 4, 2)
    again = run_arm(
        "closed_book", QUESTIONS, generator, *args, AnswerJournal(path), 4, 2, compare_batched=True
    )
    assert [p.reused for p in again] == [False, False, True, True, True, True]
    assert evaluation_summary(again)["batched_vs_batch1"]["compared"] == 2
    third = run_arm(
        "closed_book", QUESTIONS, generator, *args, AnswerJournal(path), 4, 2, compare_batched=True
    )
    assert all(p.reused for p in third)  # compared answers are journaled: nothing to redo
