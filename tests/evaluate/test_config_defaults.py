"""One value per default: the YAML options that ``conf/config.yaml`` selects by default must
say exactly what the typed schemas say, so that library code (which builds the dataclasses
directly) and the entry point (which composes the YAML) run with the same defaults."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

import evaluate.cli  # noqa: F401  (registers the schema with Hydra)
from evaluate.config.schema import Config

CONF = Path(__file__).resolve().parents[2] / "conf"
# Keys whose composed value is deliberately not the schema's: resolved from the environment, or
# written by the preset itself.
FROM_ENVIRONMENT = {"paths.cache_dir", "experiment.description"}


def _leaves(tree, prefix=""):
    if isinstance(tree, dict):
        out = {}
        for key, value in tree.items():
            out.update(_leaves(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: tree}


def _as_plain(value):
    return [_as_plain(v) for v in value] if isinstance(value, list | tuple) else value


@pytest.fixture(scope="module")
def composed() -> dict:
    with initialize_config_dir(str(CONF), version_base=None):
        # experiment=default is the preset `ragtune` runs; it must not move a default either
        cfg = compose("config", overrides=["experiment=default"])
    plain = OmegaConf.to_container(cfg, resolve=True)
    plain.pop("hydra", None)
    return plain


def test_every_default_of_the_composed_config_equals_the_schema(composed):
    schema = _leaves(asdict(Config()))
    yaml = _leaves(composed)
    assert set(yaml) == set(schema), "a key exists on one side only"
    drift = {
        key: (yaml[key], schema[key])
        for key in schema
        if key not in FROM_ENVIRONMENT and _as_plain(yaml[key]) != _as_plain(schema[key])
    }
    assert drift == {}, f"YAML default != schema default (yaml, schema): {drift}"


def test_the_three_once_drifted_defaults_have_the_documented_values(composed):
    # README "Configuration" and the measured results use these values.
    assert composed["eval"]["throughput_questions"] == 8
    assert composed["finetune"]["learning_rate"] == 2.0e-3
    assert composed["finetune"]["target_modules"] == "llama-all"
