"""Locked, verified content-addressed cache entries.

``get_or_build`` extends ``rag.core.cache.atomic_dir`` with two guarantees:
- concurrency: a builder holds ``<key>.lock`` beside the entry (``rag.core.lock``), so processes
  asking for the same key at once build it once; the others wait, then load the finished entry;
- integrity: every load goes through a caller-supplied loader that verifies the entry (manifest,
  checksums, shapes) and raises ``CorruptEntryError``; a corrupt entry is logged, removed and
  rebuilt, never returned.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from rag.core.cache import atomic_dir
from rag.core.lock import file_lock

logger = logging.getLogger(__name__)

T = TypeVar("T")

# A day: building a 1M-vector IVF index on two CPU cores takes tens of minutes, and a waiter
# must not give up on a builder that is merely slow. flock is released if the builder dies.
DEFAULT_LOCK_TIMEOUT_S = 24 * 3600.0


class CorruptEntryError(RuntimeError):
    """A cache entry exists but fails verification (unreadable, truncated, mismatched)."""


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def remove_entry(entry_dir: Path) -> None:
    """Make the entry vanish atomically (rename), then delete it."""
    trash = entry_dir.with_name(f".{entry_dir.name}.trash-{uuid.uuid4().hex[:8]}")
    try:
        os.rename(entry_dir, trash)
    except FileNotFoundError:
        return
    shutil.rmtree(trash, ignore_errors=True)


def remove_stale_builds(entry_dir: Path) -> None:
    """Delete temp folders of this entry left by builders that were killed (SIGKILL, power
    loss). Called with the entry's lock held, so no live builder owns one of them."""
    for stale in entry_dir.parent.glob(f".{entry_dir.name}.tmp-*"):
        logger.info("removing %s, left by an interrupted build", stale.name)
        shutil.rmtree(stale, ignore_errors=True)


def get_or_build(
    entry_dir: Path,
    build: Callable[[Path], None],
    load: Callable[[Path], T],
    *,
    lock_timeout_s: float = DEFAULT_LOCK_TIMEOUT_S,
    what: str = "cache entry",
) -> tuple[T, bool]:
    """Return ``(load(entry_dir), reused)``, building the entry with ``build(tmp_dir)`` if it is
    absent or corrupt. ``load`` must raise ``CorruptEntryError`` for an entry it cannot trust."""
    if entry_dir.exists():
        try:
            return load(entry_dir), True
        except CorruptEntryError as err:
            logger.warning("%s %s failed verification (%s)", what, entry_dir, err)
    with file_lock(entry_dir.with_name(f"{entry_dir.name}.lock"), lock_timeout_s, what):
        if entry_dir.exists():  # built by another process while we waited, or corrupt
            try:
                return load(entry_dir), True
            except CorruptEntryError as err:
                logger.warning("removing corrupt %s %s (%s); rebuilding", what, entry_dir, err)
                remove_entry(entry_dir)
        remove_stale_builds(entry_dir)
        atomic_dir(entry_dir, build)
        try:
            return load(entry_dir), False
        except CorruptEntryError as err:  # a fresh entry that fails is a bug, not a cache issue
            remove_entry(entry_dir)
            raise RuntimeError(
                f"freshly built {what} {entry_dir} failed verification: {err}"
            ) from err
