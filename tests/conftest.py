"""Shared fixtures. Tests never reach a model hub: models are tiny and built in-process, or come
from packages that ship their weights."""

from __future__ import annotations

import os

# Before any library import: no hub, no telemetry.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

TESTS = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config, items):
    """Mark every test with its folder (rag, finetune, evaluate, costing, integration, bench), so
    ``-m`` selects by layer; ``make test-fast`` deselects integration and slow tests."""
    for item in items:
        parts = Path(str(item.fspath)).resolve().relative_to(TESTS).parts
        if len(parts) > 1:
            item.add_marker(getattr(pytest.mark, parts[0]))


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory) -> Path:
    """A model cache shared by the whole test session (tiny model built once)."""
    return tmp_path_factory.mktemp("model-cache")


@pytest.fixture(scope="session")
def tiny_model_dir(model_cache) -> str:
    from rag.core.models import resolve_generator

    return resolve_generator("tiny-random-llama", model_cache)


@pytest.fixture(scope="session")
def real_model_cache() -> Path:
    """Where the real 135M model is converted for slow tests: the user's cache by default, so
    it is converted once per machine (CI points RAGTUNE_CACHE_DIR inside its clone)."""
    from rag.core.models import default_cache_dir

    return default_cache_dir()
