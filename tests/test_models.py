"""Model names: aliases, local folders, hub ids, and the errors for everything else."""

from __future__ import annotations

import pytest

from rag.cache import atomic_dir, content_key, model_fingerprint
from rag.models import ModelNotAvailableError, resolve_embedder, resolve_generator


def test_tiny_alias_is_built_once_and_fingerprinted(tiny_model_dir, model_cache):
    assert resolve_generator("tiny-random-llama", model_cache) == tiny_model_dir
    fp = model_fingerprint(tiny_model_dir)
    assert fp.startswith("sha256:") and model_fingerprint(tiny_model_dir) == fp


def test_local_folder_and_hub_id_pass_through(tmp_path):
    assert resolve_generator(str(tmp_path), tmp_path) == str(tmp_path.resolve())
    assert resolve_generator("HuggingFaceTB/SmolLM2-360M-Instruct", tmp_path) == (
        "HuggingFaceTB/SmolLM2-360M-Instruct"
    )


def test_unknown_names_and_missing_folders_fail_clearly(tmp_path):
    with pytest.raises(ModelNotAvailableError, match="known alias"):
        resolve_generator("smollm-typo", tmp_path)
    with pytest.raises(ModelNotAvailableError, match="no such model folder"):
        resolve_embedder(str(tmp_path / "missing"))


def test_embedder_alias_points_at_packaged_weights():
    path = resolve_embedder("all-minilm-l6-v2")
    assert path.endswith("model")


def test_atomic_dir_leaves_nothing_when_the_build_fails(tmp_path):
    def broken(tmp):
        (tmp / "partial").write_text("half")
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        atomic_dir(tmp_path / "entry", broken)
    assert list(tmp_path.iterdir()) == []
    path, reused = atomic_dir(tmp_path / "entry", lambda tmp: (tmp / "ok").write_text("1"))
    assert not reused and (path / "ok").read_text() == "1"
    assert atomic_dir(tmp_path / "entry", lambda tmp: None) == (path, True)


def test_content_key_depends_on_every_part():
    assert content_key("a", {"x": 1, "y": 2}) == content_key("a", {"y": 2, "x": 1})
    assert content_key("a", [1, 2]) != content_key("a", [2, 1])
    assert content_key("ab", "c") != content_key("a", "bc")
