"""Keep secrets out of everything a run records (MLflow params and tags, resolved_config.yaml,
results.json, the .hydra folder).

Two rules, applied to every value of a config tree:

- by key: a value whose key names a secret is replaced by ``REDACTED``. A key names a secret
  when its last dotted component, lower-cased with ``-`` read as ``_``, equals one of
  ``SECRET_WORDS`` or ends with ``_<word>`` or with ``<word>`` glued to a prefix
  (``api_key``, ``openai_api_key``, ``hf_token``, ``authToken``, ``db_password``). Token
  *counts* (``max_new_tokens``, ``context_budget_tokens``) end in ``tokens`` and never match;
  tokenizer special tokens (``eos_token``, ``pad_token`` ...) are listed in ``NOT_SECRET``,
  singular counts (``max_token``, ``num_token``, ``prompt_token``) are excluded by pattern, and
  keys ending in ``_env`` (``api_key_env``) hold the NAME of a variable, not its value.
- by value: the password of a URL with credentials (``https://user:pass@host``) is replaced,
  whatever the key, so a tracking or endpoint URL never carries one into a record.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

REDACTED = "***REDACTED***"

SECRET_WORDS = (
    "api_key",
    "apikey",
    "access_key",
    "private_key",
    "secret_key",
    "token",
    "password",
    "passwd",
    "passphrase",
    "secret",
    "secrets",
    "authorization",
    "credential",
    "credentials",
)
NOT_SECRET = frozenset(
    f"{name}_token" for name in ("eos", "bos", "pad", "unk", "sep", "cls", "mask")
) | frozenset({"chat_token", "start_token", "end_token", "stop_token"})
# token counts spelled in the singular (max_token, num_token, prompt_token): numbers, not secrets
_TOKEN_COUNT = re.compile(r"(max|min|num|n|total|input|output|prompt|completion)_(\w+_)?token$")
_URL_PASSWORD = re.compile(r"(?P<head>[a-z][a-z0-9+.-]*://[^/\s:@]*:)(?P<pw>[^/\s@]+)(?=@)", re.I)


def is_secret_key(key: str) -> bool:
    """Whether the value of the config key ``key`` (dotted or not) must be redacted."""
    name = str(key).rsplit(".", 1)[-1].replace("-", "_")
    name = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()  # camelCase -> snake_case
    if name in NOT_SECRET or name.endswith("_env") or _TOKEN_COUNT.match(name):
        return False
    compact = name.replace("_", "")
    return any(
        name == word or name.endswith(f"_{word}") or compact.endswith(word.replace("_", ""))
        for word in SECRET_WORDS
    )


def redact_text(text: str) -> str:
    """``text`` with the password of every ``scheme://user:password@host`` URL replaced."""
    return _URL_PASSWORD.sub(lambda m: m["head"] + REDACTED, text)


def redact_value(key: str, value: Any) -> Any:
    """One value: redacted entirely under a secret key, else URL passwords removed."""
    if is_secret_key(key) and value not in (None, ""):
        return REDACTED
    if isinstance(value, str):
        return redact_text(value)
    return value


def redact(tree: Any, key: str = "") -> Any:
    """A copy of a nested dict/list config tree with every secret redacted (see module doc)."""
    if isinstance(tree, Mapping):
        out = {}
        for name, value in tree.items():
            path = f"{key}.{name}" if key else str(name)
            if is_secret_key(str(name)) and value not in (None, ""):
                out[name] = REDACTED
            else:
                out[name] = redact(value, path)
        return out
    if isinstance(tree, list | tuple):
        return [redact(item, key) for item in tree]
    return redact_value(key, tree)


def redact_override(override: str) -> str:
    """A Hydra command-line override ``[+~]key=value`` with a secret value redacted."""
    name, sep, value = override.partition("=")
    if sep and is_secret_key(name.lstrip("+~")) and value:
        return f"{name}={REDACTED}"
    return redact_text(override)


def _redact_overrides_in(text: str) -> str:
    """A string that may hold ``key=value`` overrides joined by commas (Hydra's
    ``override_dirname``), each override redacted."""
    if "=" not in text:
        return redact_text(text)
    return ",".join(redact_override(part) for part in text.split(","))


def _redact_hydra_tree(tree: Any, key: str = "") -> Any:
    if isinstance(tree, Mapping):
        return {k: _redact_hydra_tree(v, f"{key}.{k}" if key else str(k)) for k, v in tree.items()}
    if isinstance(tree, list | tuple):
        return [_redact_hydra_tree(item, key) for item in tree]
    if isinstance(tree, str):
        return _redact_overrides_in(tree)
    return tree


def redact_hydra_folder(folder: Path) -> None:
    """Rewrite the files Hydra saves in the run folder (``.hydra/config.yaml``, ``hydra.yaml``,
    ``overrides.yaml``) with secrets redacted; they hold the command line verbatim."""
    import yaml

    from rag.core.cache import atomic_write_text

    for name in ("config.yaml", "hydra.yaml", "overrides.yaml"):
        path = folder / name
        if not path.is_file():
            continue
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        clean = redact(data) if name == "config.yaml" else _redact_hydra_tree(data)
        if clean != data:
            atomic_write_text(path, yaml.safe_dump(clean, sort_keys=False))


def redact_multirun_file(path: Path) -> None:
    """Rewrite the ``multirun.yaml`` Hydra saves in a sweep folder (the whole config, with the
    command line under ``hydra``) with secrets redacted."""
    import yaml

    from rag.core.cache import atomic_write_text

    if not path.is_file():
        return
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, Mapping):
        return
    clean = {
        k: _redact_hydra_tree(v, k) if k == "hydra" else redact(v, str(k)) for k, v in data.items()
    }
    if clean != data:
        atomic_write_text(path, yaml.safe_dump(clean, sort_keys=False))
