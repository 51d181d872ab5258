"""Bytes per parameter come from how the backend holds the weights (dtype or quantization), not
a constant: 4 for the in-process float32 models, 2 for vLLM's half precision, bits / 8 for a
quantized checkpoint (IEEE 754 sizes: float32 4 bytes, float16 and bfloat16 2)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from evaluate.backends.registry import weight_format


def _folder(tmp_path, **config):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama", **config}))
    return str(tmp_path)


@pytest.mark.parametrize(
    "config,expected",
    [
        ({"dtype": "bfloat16"}, ("bfloat16", 2.0)),
        ({"torch_dtype": "float32"}, ("float16", 2.0)),  # vLLM dtype=auto: fp32 served as fp16
        ({"dtype": "float16"}, ("float16", 2.0)),
        ({"quantization_config": {"quant_method": "gptq", "bits": 4}}, ("gptq 4-bit", 0.5)),
        ({"quantization_config": {"quant_method": "awq", "bits": 8}}, ("awq 8-bit", 1.0)),
        (
            {"quantization_config": {"quant_method": "bitsandbytes", "load_in_4bit": True}},
            ("bitsandbytes 4-bit", 0.5),
        ),
    ],
)
def test_vllm_weights_as_served(tmp_path, config, expected):
    assert weight_format(SimpleNamespace(backend="vllm"), _folder(tmp_path, **config)) == expected


def test_in_process_models_run_in_float32_whatever_the_checkpoint(tmp_path, tiny_model_dir):
    generator = SimpleNamespace(backend="transformers")
    assert weight_format(generator, _folder(tmp_path, dtype="bfloat16")) == ("float32", 4.0)
    from evaluate.backends.transformers import ChatGenerator

    loaded = ChatGenerator.load(tiny_model_dir)  # the dtype the costing assumes is the real one
    assert next(loaded.model.parameters()).element_size() == 4.0


def test_a_remote_endpoint_does_not_say():
    assert weight_format(SimpleNamespace(backend="openai"), None) is None
