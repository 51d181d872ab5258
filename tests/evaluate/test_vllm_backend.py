"""The in-process vLLM backend, without vLLM: the missing-package error, and the call mapping
checked against a fake ``vllm`` module injected into ``sys.modules``."""

from __future__ import annotations

import math
import sys
import types
from dataclasses import dataclass, field
from importlib.machinery import ModuleSpec

import pytest

from evaluate.backends.base import ContextOverflowError
from evaluate.backends.vllm import VLLM_MISSING, VLLMGenerator, VLLMNotInstalledError
from rag.core.prompts import closed_book_messages

MESSAGES = closed_book_messages("Where was Velmora Quist born?")


@dataclass
class FakeMetrics:
    arrival_time: float
    first_token_time: float
    last_token_time: float


@dataclass
class FakeCompletion:
    text: str
    token_ids: list[int]


@dataclass
class FakeRequestOutput:
    prompt_token_ids: list[int]
    outputs: list[FakeCompletion]
    metrics: FakeMetrics | None = None


@dataclass
class FakeLLMState:
    init_kwargs: dict = field(default_factory=dict)
    calls: list = field(default_factory=list)
    metrics: FakeMetrics | None = None


def fake_vllm_module(tokenizer, state: FakeLLMState) -> types.ModuleType:
    module = types.ModuleType("vllm")
    module.__spec__ = ModuleSpec("vllm", None)

    class SamplingParams:
        def __init__(self, **kwargs):
            self.kwargs = kwargs

    class LLM:
        def __init__(self, **kwargs):
            state.init_kwargs = kwargs
            self.llm_engine = types.SimpleNamespace(
                model_config=types.SimpleNamespace(max_model_len=512)
            )

        def get_tokenizer(self):
            return tokenizer

        def generate(self, prompts, params, use_tqdm=True):
            state.calls.append((prompts, params, use_tqdm))
            (prompt,) = prompts
            return [
                FakeRequestOutput(
                    prompt_token_ids=prompt["prompt_token_ids"],
                    outputs=[FakeCompletion(" Tarrowby ", [5, 6, 7, 8, 9])],
                    metrics=state.metrics,
                )
            ]

    module.LLM, module.SamplingParams = LLM, SamplingParams
    return module


@pytest.fixture
def tokenizer(tiny_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


@pytest.fixture
def fake_vllm(monkeypatch, tokenizer):
    state = FakeLLMState()
    monkeypatch.setitem(sys.modules, "vllm", fake_vllm_module(tokenizer, state))
    return state


def test_missing_vllm_is_one_clear_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)  # import vllm fails, even if installed
    with pytest.raises(VLLMNotInstalledError) as info:
        VLLMGenerator("/some/model")
    assert str(info.value) == VLLM_MISSING
    assert "pip install vllm" in VLLM_MISSING and "generator=openai" in VLLM_MISSING


def _config(*overrides: str):
    from hydra import compose, initialize_config_dir

    from evaluate.cli import CONF_DIR, to_config

    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose(
            config_name="config",
            overrides=["experiment=smoke", "generator=vllm", *overrides],
        )
        return to_config(cfg)


def test_config_composes_and_validation_names_the_missing_package(monkeypatch):
    from evaluate.config.schema import ConfigError

    monkeypatch.setitem(sys.modules, "vllm", None)
    with pytest.raises(ConfigError) as info:
        _config("generator.model=tiny-random-llama", "eval.arms=[closed_book,rag]")
    assert str(info.value) == f"generator.backend=vllm: {VLLM_MISSING}"


def test_config_validates_with_vllm_present(fake_vllm):
    from evaluate.config.schema import ConfigError

    config = _config("generator.model=tiny-random-llama", "eval.arms=[closed_book,rag]")
    assert config.generator.backend == "vllm"
    assert config.generator.device == "cuda"
    with pytest.raises(ConfigError, match="drop \\['finetune'"):
        _config("generator.model=tiny-random-llama", "eval.arms=[closed_book,finetune]")


def test_call_mapping_greedy_token_counts_and_e2e_only_timing(fake_vllm, tokenizer):
    generator = VLLMGenerator("/models/x", max_new_tokens=7, name="x")
    assert fake_vllm.init_kwargs == {"model": "/models/x", "seed": 0}
    assert generator.context_window == 512  # the engine's max_model_len
    gen = generator.generate(MESSAGES)

    (prompts, params, use_tqdm), *_ = fake_vllm.calls
    assert params.kwargs == {"temperature": 0.0, "max_tokens": 7}
    assert use_tqdm is False
    expected_ids = tokenizer.apply_chat_template(
        MESSAGES, add_generation_prompt=True, return_dict=True
    )["input_ids"]
    assert all(isinstance(i, int) for i in expected_ids) and len(expected_ids) > 8
    assert prompts == [{"prompt_token_ids": expected_ids}]
    assert gen.text == "Tarrowby"
    assert (gen.input_tokens, gen.output_tokens) == (len(expected_ids), 5)
    assert generator.prompt_tokens(MESSAGES) == len(expected_ids)
    # no engine metrics: end-to-end only, TTFT reported as e2e and flagged
    assert gen.ttft_measured is False
    assert gen.ttft_s == gen.e2e_s > 0 and gen.tpot_s == 0.0


def test_engine_metrics_give_ttft_and_tpot(fake_vllm):
    fake_vllm.metrics = FakeMetrics(
        arrival_time=100.0, first_token_time=100.2, last_token_time=100.6
    )
    gen = VLLMGenerator("/models/x", max_new_tokens=7).generate(MESSAGES)
    assert gen.ttft_measured is True
    assert gen.ttft_s >= 0.2  # engine TTFT plus the local chat-template time (load-dependent)
    assert gen.e2e_s - gen.ttft_s == pytest.approx(0.4)
    assert gen.tpot_s == pytest.approx(0.4 / 4)
    assert math.isclose(gen.e2e_s, gen.ttft_s + gen.tpot_s * (gen.output_tokens - 1))


def test_context_window_is_checked_before_the_engine_is_called(fake_vllm):
    generator = VLLMGenerator("/models/x", max_new_tokens=8, context_window=16)
    assert fake_vllm.init_kwargs["max_model_len"] == 16
    with pytest.raises(ContextOverflowError, match="context window of 16 tokens"):
        generator.generate(MESSAGES)
    assert fake_vllm.calls == []


def test_make_generator_selects_vllm(fake_vllm, tiny_model_dir):
    from evaluate.backends.registry import make_generator
    from evaluate.backends.vllm import VLLMGenerator as Expected

    config = _config("generator.model=tiny-random-llama", "eval.arms=[closed_book]")
    generator = make_generator(config.generator, tiny_model_dir)
    assert isinstance(generator, Expected)
    assert fake_vllm.init_kwargs["model"] == tiny_model_dir
    assert generator.max_new_tokens == config.generator.max_new_tokens
