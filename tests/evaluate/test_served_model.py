"""A served run is configured and costed like a local one: the same decoding defaults for every
backend, and the served model's parameter count for the cost report."""

from __future__ import annotations

import json
import math
import shutil

import pytest

from evaluate.config.schema import GeneratorConfig
from evaluate.pipeline.costs import served_model_params


def _compose(*overrides: str):
    from hydra import compose, initialize_config_dir

    from evaluate.cli import CONF_DIR, to_config

    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return to_config(compose(config_name="config", overrides=list(overrides)))


ENDPOINT = ["generator.model=m", "generator.base_url=http://127.0.0.1:9/v1", "eval.arms=[rag]"]


def test_decoding_defaults_are_the_same_for_every_backend():
    local = _compose("generator=smollm2").generator
    served = _compose("generator=openai", *ENDPOINT).generator
    decoding = {(g.max_new_tokens, g.temperature, tuple(g.stop)) for g in (local, served)}
    assert decoding == {(20, 0.0, ())}
    overridden = _compose(
        "generator=openai", *ENDPOINT, "generator.max_new_tokens=7", "generator.stop=[Question:]"
    ).generator
    assert (overridden.max_new_tokens, overridden.stop) == (7, ["Question:"])


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("generator.temperature=-0.5", "generator.temperature"),
        ("generator.params=0", "generator.params"),
        ("generator.api=responses", "generator.api"),
        ("generator.api=completions", "generator.tokenizer"),  # the template needs a tokenizer
    ],
)
def test_bad_endpoint_settings_name_their_key(override, key):
    from evaluate.config.schema import ConfigError

    with pytest.raises(ConfigError, match=key) as caught:
        _compose("generator=openai", *ENDPOINT, override)
    assert "\n" not in str(caught.value)


def _write_safetensors(folder, shapes: dict[str, list[int]]) -> int:
    """A safetensors header (data left out: only the header is read) and its parameter count."""
    folder.mkdir(parents=True, exist_ok=True)
    offset, header = 0, {}
    for name, shape in shapes.items():
        size = 4 * math.prod(shape)
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps(header).encode()
    (folder / "model.safetensors").write_bytes(len(raw).to_bytes(8, "little") + raw)
    return sum(math.prod(s) for s in shapes.values())


def test_params_of_a_served_local_folder_or_alias(tmp_path):
    folder = tmp_path / "served-model"
    expected = _write_safetensors(folder, {"a": [3, 5], "b": [7]})
    assert expected == 22
    assert served_model_params(GeneratorConfig(model=str(folder)), tmp_path / "cache") == 22
    # an alias, as provisioned in the cache by ragtune-models
    shutil.copytree(folder, tmp_path / "cache" / "models" / "smollm2-135m-instruct")
    alias = GeneratorConfig(model="smollm2-135m-instruct")
    assert served_model_params(alias, tmp_path / "cache") == 22
    # generator.params wins; an unknown name without it has no count
    assert served_model_params(GeneratorConfig(model="gpt-x", params=1234), tmp_path) == 1234
    assert served_model_params(GeneratorConfig(model="gpt-x"), tmp_path) is None


def test_params_of_a_served_hub_id_from_the_local_hub_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hub"))
    snapshot = tmp_path / "hub" / "models--org--tiny" / "snapshots" / ("0" * 40)
    (tmp_path / "hub" / "models--org--tiny" / "refs").mkdir(parents=True)
    (tmp_path / "hub" / "models--org--tiny" / "refs" / "main").write_text("0" * 40)
    _write_safetensors(snapshot, {"w": [4, 4]})
    (snapshot / "config.json").write_text("{}")
    assert served_model_params(GeneratorConfig(model="org/tiny"), tmp_path) == 16
    assert served_model_params(GeneratorConfig(model="org/absent"), tmp_path) is None


def test_local_generator_drops_stop_sequences_and_samples_only_above_zero(tiny_model_dir):
    from evaluate.backends.transformers import ChatGenerator

    greedy = ChatGenerator.load(tiny_model_dir, max_new_tokens=4)
    assert greedy._decoding() == {"do_sample": False}
    tuned = ChatGenerator.load(tiny_model_dir, max_new_tokens=4, temperature=0.7, stop=["\n"])
    options = tuned._decoding()
    assert options["do_sample"] is True and options["temperature"] == 0.7
    assert options["stop_strings"] == ["\n"] and options["tokenizer"] is tuned.tokenizer
