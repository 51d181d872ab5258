"""The closest valid config key to a mistyped one, from the typed schema (``Config``)."""

from __future__ import annotations

import dataclasses
import difflib
import typing
from functools import cache

from evaluate.config.schema import Config


@cache
def schema_keys(schema: type = Config, prefix: str = "") -> tuple[str, ...]:
    """Every dotted key of ``schema``, nested dataclasses included (``retriever.top_k``)."""
    keys: list[str] = []
    hints = typing.get_type_hints(schema)
    for field in dataclasses.fields(schema):
        key = f"{prefix}{field.name}"
        keys.append(key)
        kind = hints.get(field.name)
        if dataclasses.is_dataclass(kind):
            keys.extend(schema_keys(kind, f"{key}."))
    return tuple(keys)


def closest_key(key: str) -> str | None:
    """The valid key most like ``key``: first among the keys of the same group (a typo in the
    last part), then among all keys; None when nothing is close."""
    keys = schema_keys()
    group = key.rpartition(".")[0]
    siblings = [k for k in keys if k.rpartition(".")[0] == group]
    for pool in (siblings, keys):
        match = difflib.get_close_matches(key, pool, n=1, cutoff=0.75)
        if match:
            return match[0]
    return None
