"""Generator backends: one module each, one line here to add one.

A backend is built from a ``generator``-like config group (``generator`` or ``eval.judge``) and
the resolved local model folder (None for a remote backend). Modules are imported only when a
backend is built, so validation and the budget guard never load torch or an HTTP client.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Backend:
    name: str
    module: str  # has ``from_config(config, model_path)``
    remote: bool  # served elsewhere: no local weights, no adapter, priced by the endpoint
    runs_adapters: bool  # the fine-tuned arms can run on it (the LoRA adapter loads in-process)
    description: str
    checked: bool = False  # its module has a cheap ``unavailable_reason()`` (e.g. vLLM missing)


BACKENDS: dict[str, Backend] = {
    b.name: b
    for b in (
        Backend(
            "transformers",
            "evaluate.backends.transformers",
            False,
            True,
            "in-process transformers",
        ),
        Backend("openai", "evaluate.backends.openai", True, False, "an OpenAI-compatible endpoint"),
        Backend("vllm", "evaluate.backends.vllm", False, False, "in-process vLLM (GPU)", True),
    )
}
BACKEND_NAMES = tuple(BACKENDS)


def backend(name: str) -> Backend:
    return BACKENDS[name]


def is_remote(name: str) -> bool:
    return BACKENDS[name].remote


def unavailable_reason(name: str) -> str | None:
    """Why the backend cannot run here (a missing package), or None; checked at validation,
    so only modules marked ``checked`` (cheap to import) are imported for it."""
    if not BACKENDS[name].checked:
        return None
    return importlib.import_module(BACKENDS[name].module).unavailable_reason()


def make_generator(config: Any, model_path: str | None):
    """The generator of ``config.backend`` (a ``GeneratorConfig``-like group)."""
    module = importlib.import_module(BACKENDS[config.backend].module)
    return module.from_config(config, model_path)


def weight_format(config: Any, model_path: str | None) -> tuple[str, float] | None:
    """``(dtype, bytes_per_param)`` of the weights as ``config.backend`` holds them, or None for
    a backend that does not say (a remote endpoint)."""
    module = importlib.import_module(BACKENDS[config.backend].module)
    reader = getattr(module, "weight_format", None)
    return reader(model_path) if reader is not None else None
