"""Short-answer prompting: an instruction and few-shot examples from the training questions."""

from __future__ import annotations

from hydra import compose, initialize_config_dir

from evaluate.arms.answering import ContextSettings, messages_for
from evaluate.arms.execution import answer_identity
from evaluate.cli import CONF_DIR, to_config
from evaluate.pipeline.runner import prompt_style
from evaluate.pipeline.stages import CorpusStage
from rag.core.prompts import DEFAULT_STYLE, PromptStyle
from rag.core.types import QAPair

TRAIN = [
    QAPair("t1", "Where was Ada born?", ["Kessel", "Kessel town"], ["a"], fact_id="ada/town"),
    QAPair("t2", "When was Ada born?", ["1957"], ["a"], fact_id="ada/year"),
    QAPair("t3", "Where was Bo born?", ["Tarrow"], ["b"], fact_id="bo/town"),
]
EVAL = QAPair("e1", "Which town is Bo from?", ["Tarrow"], ["b"], fact_id="bo/town")


def config(*overrides: str):
    with initialize_config_dir(str(CONF_DIR), version_base=None):
        return to_config(compose("config", overrides=["experiment=smoke", *overrides]))


def test_default_prompt_is_the_trained_one_and_shots_come_before_the_question():
    plain, _ = messages_for(EVAL, None)
    assert [m["role"] for m in plain] == ["system", "user"]  # what fine-tuning trains on
    style = PromptStyle("Answer in at most three words.", (("Q1?", "A1"), ("Q2?", "A2")))
    shown, _ = messages_for(EVAL, None, context=ContextSettings(style=style))
    assert [m["role"] for m in shown] == [
        "system", "user", "assistant", "user", "assistant", "user"
    ]  # fmt: skip
    assert shown[0]["content"] == "Answer in at most three words."
    assert (shown[1]["content"], shown[2]["content"]) == ("Q1?", "A1")
    assert shown[-1]["content"] == EVAL.question


def test_shots_are_training_questions_spread_over_facts_and_deterministic():
    corpus = CorpusStage("c", [], TRAIN, [EVAL])
    style = prompt_style(config("eval.few_shot=2"), corpus)
    assert len(style.shots) == 2
    questions = {q for q, _ in style.shots}
    assert questions <= {t.question for t in TRAIN} and EVAL.question not in questions
    answers = dict(style.shots)
    assert all(answers[t.question] == t.answers[0] for t in TRAIN if t.question in answers)
    assert prompt_style(config("eval.few_shot=2"), corpus) == style  # same in every run
    assert prompt_style(config(), corpus) == DEFAULT_STYLE


def test_a_changed_prompt_style_is_a_new_journal_identity(tiny_model_dir):
    cfg = config()
    plain = answer_identity(cfg, "closed_book", None, tiny_model_dir, None)
    shots = ContextSettings(style=PromptStyle(shots=(("Q?", "A"),)))
    assert answer_identity(cfg, "closed_book", None, tiny_model_dir, None, shots) != plain
    default = ContextSettings()
    assert answer_identity(cfg, "closed_book", None, tiny_model_dir, None, default) == plain
