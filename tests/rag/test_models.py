"""Model names: aliases, local folders, hub ids, and the errors for everything else."""

from __future__ import annotations

import pytest

from rag.core.cache import atomic_dir, content_key, model_fingerprint
from rag.core.models import ModelNotAvailableError, resolve_embedder, resolve_generator


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


def test_parallel_jobs_on_one_cache_build_a_model_once(tmp_path):
    """Two processes resolving the same alias at once: one builds, the other waits and reuses."""
    import os
    import subprocess
    import sys

    script = (
        "import logging, sys\n"
        "logging.basicConfig(level=logging.INFO, stream=sys.stdout)\n"
        "from pathlib import Path\n"
        "from rag.core.models import resolve_generator\n"
        "print('RESOLVED', resolve_generator('tiny-random-llama', Path(sys.argv[1])))\n"
    )
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(tmp_path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
    built = sum(out.count("building model tiny-random-llama from") for out in outputs)
    assert built == 1, outputs
    resolved = {line for out in outputs for line in out.splitlines() if line.startswith("RESOLVED")}
    assert resolved == {f"RESOLVED {tmp_path / 'models' / 'tiny-random-llama'}"}
    assert not [p for p in (tmp_path / "models").iterdir() if ".tmp-" in p.name]


def test_gguf_files_are_parsed_once_inside_the_conversion_block():
    """Inside ``_gguf_read_once`` a second read of the same file returns the first reader and
    the tensor-name map is built once; after it, gguf's own functions are back."""
    gguf = pytest.importorskip("gguf")
    from rag.core.models import GENERATOR_ALIASES, _gguf_read_once, _package_dir

    packaged = GENERATOR_ALIASES["smollm2-135m-instruct"]
    path = str(_package_dir(packaged.package, packaged.distribution) / packaged.filename)
    reader_class, name_map = gguf.GGUFReader, gguf.get_tensor_name_map
    with _gguf_read_once():
        first = gguf.GGUFReader(path)
        assert isinstance(first, reader_class) and gguf.GGUFReader(path) is first
        arch = gguf.MODEL_ARCH.LLAMA
        assert gguf.get_tensor_name_map(arch, 30) is gguf.get_tensor_name_map(arch, 30)
    assert (gguf.GGUFReader, gguf.get_tensor_name_map) == (reader_class, name_map)
    assert gguf.GGUFReader(path) is not first  # outside the block every call parses
