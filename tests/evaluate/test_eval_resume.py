"""The evaluation journal: a killed evaluation resumes from the answered questions and gives the
metrics of an uninterrupted run; torn lines are skipped; the key changes with what decides an
answer."""

from __future__ import annotations

import json
import logging
import signal
from pathlib import Path

import pytest

from evaluate.arms.answering import run_arm
from evaluate.arms.journal import KILL_AFTER_ENV, AnswerJournal
from rag.core.types import QAPair
from tests.helpers.ragtune_cli import ragtune

QUESTIONS = [QAPair(f"q{i}", f"Where was person {i} born?", [f"Town {i}"], []) for i in range(4)]


def _config(cache_dir: Path, *overrides: str):
    from hydra import compose, initialize_config_dir

    from evaluate.cli import CONF_DIR, to_config

    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose(
            config_name="config",
            overrides=["experiment=smoke", f"paths.cache_dir={cache_dir}", *overrides],
        )
        return to_config(cfg)


class Refuses:
    """A generator that must not be asked anything (every answer should come from the journal)."""

    def generate(self, messages):
        raise AssertionError("generated although every answer was journaled")


def test_journaled_answers_are_reused_with_their_timings(tmp_path, tiny_model_dir, caplog):
    from evaluate.backends.transformers import ChatGenerator

    journal_file = tmp_path / "journal.jsonl"
    generator = ChatGenerator.load(tiny_model_dir, max_new_tokens=4)
    first = run_arm(
        "closed_book", QUESTIONS, generator, None, 1, False, None, 0.2, AnswerJournal(journal_file)
    )
    assert len(journal_file.read_text().splitlines()) == 4
    with caplog.at_level(logging.INFO, logger="evaluate.arms.answering"):
        again = run_arm(
            "closed_book",
            QUESTIONS,
            Refuses(),
            None,
            1,
            False,
            None,
            0.2,
            AnswerJournal(journal_file),
        )
    assert "reused 4 of 4 answers from the evaluation journal" in caplog.text
    assert all(p.reused for p in again) and not any(p.reused for p in first)
    for a, b in zip(first, again, strict=True):
        assert (a.prediction, a.ttft_s, a.e2e_s, a.output_tokens, a.contains) == (
            b.prediction,
            b.ttft_s,
            b.e2e_s,
            b.output_tokens,
            b.contains,
        )
    # reuse_answers=false: the journal is not read, every question is generated again
    fresh = run_arm(
        "closed_book",
        QUESTIONS[:1],
        generator,
        None,
        0,
        False,
        None,
        0.2,
        AnswerJournal(journal_file, read=False),
    )
    assert not fresh[0].reused


def test_a_torn_last_line_is_ignored_and_the_next_answer_starts_a_new_line(tmp_path, caplog):
    path = tmp_path / "journal.jsonl"
    journal = AnswerJournal(path)
    journal.record(QUESTIONS[0], {"prediction": "a"})
    journal.record(QUESTIONS[1], {"prediction": "b"})
    with path.open("a") as handle:  # what a kill in the middle of a write leaves
        handle.write('{"key": "abc", "prediction": {"predic')
    with caplog.at_level(logging.WARNING, logger="evaluate.arms.journal"):
        reopened = AnswerJournal(path)
    assert "line 3 is incomplete; ignored" in caplog.text
    assert reopened.lookup(QUESTIONS[0]) == {"prediction": "a"}
    assert reopened.lookup(QUESTIONS[2]) is None
    reopened.record(QUESTIONS[2], {"prediction": "c"})
    final = AnswerJournal(path)
    assert [final.lookup(q) for q in QUESTIONS[:3]] == [
        {"prediction": "a"},
        {"prediction": "b"},
        {"prediction": "c"},
    ]
    # a question's key is its id and text: a reworded question is not served an old answer
    assert final.lookup(QAPair("q0", "Where was person 0 born, really?", ["x"], [])) is None


def test_journal_key_changes_with_what_decides_an_answer(tmp_path, tiny_model_dir):
    from evaluate.arms.execution import answer_journal

    def path(arm: str = "closed_book", *overrides: str) -> Path:
        config = _config(tmp_path, *overrides)
        return answer_journal(config, arm, None, tiny_model_dir, None).path

    base = path()
    assert base == path()  # same settings, same journal
    assert base.parent == tmp_path / "eval_journal"
    assert path("closed_book", "generator.max_new_tokens=9") != base
    assert path("closed_book", "generator.context_window=1024") != base
    assert path("closed_book", "eval.seed=3", "eval.judge.enabled=true") == base  # not answers
    assert path("rag") != base
    config = _config(tmp_path)
    tuned = [
        answer_journal(config, "finetune", None, tiny_model_dir, str(tmp_path / name)).path
        for name in ("adapter-aaa", "adapter-bbb")
    ]
    assert tuned[0] != tuned[1]


def _run_cli(cwd: Path, cache: Path, *overrides: str, env_extra=None):
    return ragtune(
        cwd,
        "experiment=smoke",
        "eval.arms=[closed_book,rag]",
        "eval.throughput_batch_size=0",
        "tracking=none",
        *overrides,
        cache=cache,
        env={KILL_AFTER_ENV: None, **(env_extra or {})},
    )


@pytest.mark.integration
def test_killed_evaluation_resumes_with_the_metrics_of_an_uninterrupted_run(tmp_path):
    cache = tmp_path / "cache"
    killed = _run_cli(
        tmp_path, cache, "hydra.run.dir=outputs/killed", env_extra={KILL_AFTER_ENV: "8"}
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert not (tmp_path / "outputs/killed/results.json").exists()
    (journal_closed, journal_rag) = sorted(
        (cache / "eval_journal").glob("*.jsonl"), key=lambda p: -len(p.read_text())
    )
    assert len(journal_closed.read_text().splitlines()) == 6  # 6 closed-book + 2 RAG answers
    assert len(journal_rag.read_text().splitlines()) == 2

    resumed = _run_cli(tmp_path, cache, "hydra.run.dir=outputs/resumed")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    log = resumed.stdout + resumed.stderr
    assert "arm closed_book: reused 6 of 6 answers from the evaluation journal" in log
    assert "arm rag: reused 2 of 6 answers from the evaluation journal" in log

    whole = _run_cli(tmp_path, cache, "hydra.run.dir=outputs/whole", "eval.reuse_answers=false")
    assert whole.returncode == 0, whole.stderr[-3000:]
    assert "reused 0 of 6" in whole.stdout + whole.stderr

    a = json.loads((tmp_path / "outputs/resumed/results.json").read_text())
    b = json.loads((tmp_path / "outputs/whole/results.json").read_text())
    for arm in ("closed_book", "rag"):
        assert a["arms"][arm]["accuracy"] == b["arms"][arm]["accuracy"]
        assert a["arms"][arm]["accuracy_ci"] == b["arms"][arm]["accuracy_ci"]
        assert a["arms"][arm]["failures"] == 0
    assert a["arms"]["closed_book"]["reused_answers"] == 6
    assert a["arms"]["rag"]["reused_answers"] == 2
    assert b["arms"]["rag"]["reused_answers"] == 0
    answers = [(p["arm"], p["qa_id"], p["prediction"]) for p in a["predictions"]]
    assert answers == [(p["arm"], p["qa_id"], p["prediction"]) for p in b["predictions"]]


def test_an_identical_rerun_loads_no_model_and_reuses_the_throughput(
    tmp_path, tiny_model_dir, monkeypatch
):
    from evaluate.arms import execution

    config = _config(
        tmp_path / "cache",
        "eval.arms=[closed_book]",
        "eval.throughput_batch_size=2",
        "eval.throughput_questions=2",
    )
    first, first_throughput = execution.run_all_arms(config, QUESTIONS, None, tiny_model_dir, None)
    assert first_throughput["closed_book"]["tokens_per_s"] > 0

    def no_model(*args, **kwargs):
        raise AssertionError("loaded the model although answers and throughput were journaled")

    monkeypatch.setattr(execution, "base_generator", no_model)
    again, again_throughput = execution.run_all_arms(config, QUESTIONS, None, tiny_model_dir, None)
    assert again_throughput == first_throughput
    assert [p.prediction for p in again["closed_book"]] == [
        p.prediction for p in first["closed_book"]
    ]
    fresh = _config(
        tmp_path / "cache",
        "eval.arms=[closed_book]",
        "eval.throughput_batch_size=2",
        "eval.throughput_questions=2",
        "eval.reuse_answers=false",
    )
    with pytest.raises(AssertionError, match="loaded the model"):
        execution.run_all_arms(fresh, QUESTIONS, None, tiny_model_dir, None)


def test_throughput_after_answering_runs_no_extra_warm_up_batch(
    tmp_path, tiny_model_dir, monkeypatch
):
    """The throughput batches follow the arm's answers on the same loaded model, so they are
    timed without an untimed warm-up batch; a model loaded only for the throughput (answers
    journaled, measurement not) runs one batch untimed first."""
    from evaluate.arms import execution, throughput

    batches: list[int] = []
    real = throughput.generate_batch

    def counted(generator, batch):
        batches.append(len(batch))
        return real(generator, batch)

    monkeypatch.setattr(throughput, "generate_batch", counted)
    overrides = ("eval.arms=[closed_book]", "eval.throughput_batch_size=2")
    config = _config(tmp_path / "cache", *overrides, "eval.throughput_questions=4")
    execution.run_all_arms(config, QUESTIONS, None, tiny_model_dir, None)
    assert batches == [2, 2]  # 4 questions in batches of 2, both timed

    batches.clear()  # same answers (journaled), a throughput subset not measured before
    config = _config(tmp_path / "cache", *overrides, "eval.throughput_questions=3")
    _, measured = execution.run_all_arms(config, QUESTIONS, None, tiny_model_dir, None)
    assert batches == [2, 2, 1]  # the first batch untimed, then 2 + 1 timed
    assert measured["closed_book"]["requests"] == 3


def test_throughput_is_read_off_the_accuracy_batches(tmp_path, tiny_model_dir, monkeypatch):
    """With the accuracy pass answering full batches of eval.throughput_batch_size, the arm's
    throughput is their rate (the full batches after the first, which warms the model up), not
    a second generation; an identical re-run reuses it."""
    from evaluate.arms import execution, throughput

    questions = [
        QAPair(f"q{i}", f"Where was person {i} born?", [f"Town {i}"], []) for i in range(8)
    ]
    separate: list[int] = []
    monkeypatch.setattr(
        throughput, "generate_batch", lambda g, b: separate.append(len(b)) or [[0]] * len(b)
    )
    logged = []
    real_run_arm = execution.run_arm

    def run_arm(*args, **kwargs):
        result = real_run_arm(*args, **kwargs)
        logged.extend(args[-1])  # the batch log execution passes
        return result

    monkeypatch.setattr(execution, "run_arm", run_arm)
    config = _config(
        tmp_path / "cache",
        "eval.arms=[closed_book]",
        "eval.latency_questions=1",
        "eval.answer_batch_size=2",
        "eval.throughput_batch_size=2",
        "eval.throughput_questions=2",
    )
    predictions, measured = execution.run_all_arms(config, questions, None, tiny_model_dir, None)
    assert separate == []  # nothing generated for the throughput
    # 7 questions outside the latency sample: batches of 2, 2, 2 and 1; the first warms up
    assert [b["requests"] for b in logged] == [2, 2, 2, 1]
    full = logged[1:3]
    result = measured["closed_book"]
    assert result["source"] == "answer_batches"
    assert result["requests"] == 4
    tokens = sum(b["output_tokens"] for b in full)
    assert result["output_tokens"] == tokens
    assert result["tokens_per_s"] == pytest.approx(tokens / sum(b["wall_s"] for b in full))
    # the logged tokens are the batched answers' own counts
    answered = {p.qa_id: p.output_tokens for p in predictions["closed_book"]}
    assert sum(b["output_tokens"] for b in logged) == sum(
        n for qa_id, n in answered.items() if qa_id != "q0"
    )
    _, again = execution.run_all_arms(config, questions, None, tiny_model_dir, None)
    assert again == measured
