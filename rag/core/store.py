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
import json
import logging
import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from rag.core.cache import atomic_dir, atomic_write_text
from rag.core.lock import file_lock

logger = logging.getLogger(__name__)

T = TypeVar("T")

# A day: building a 1M-vector IVF index on two CPU cores takes tens of minutes, and a waiter
# must not give up on a builder that is merely slow. flock is released if the builder dies.
DEFAULT_LOCK_TIMEOUT_S = 24 * 3600.0
# Sizes and sha256 of an entry's files (adapters, converted models); hidden, so it is not part of
# the content fingerprint of a model folder (rag.core.cache.model_fingerprint skips dot files).
CHECKSUMS_FILE = ".checksums.json"


class CorruptEntryError(RuntimeError):
    """A cache entry exists but fails verification (unreadable, truncated, mismatched)."""


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def write_checksums(folder: Path) -> None:
    """Record the size and sha256 of every file in ``folder`` (recursively; hidden files such as
    memos are not content) in ``CHECKSUMS_FILE``, for ``verify_checksums``. Call it last, once
    the entry is complete."""
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))
    listing = {
        str(p.relative_to(folder)): {"bytes": p.stat().st_size, "sha256": file_sha256(p)}
        for p in files
    }
    atomic_write_text(folder / CHECKSUMS_FILE, json.dumps(listing, indent=2))


def verify_checksums(folder: Path) -> None:
    """Raise ``CorruptEntryError`` unless every file listed by ``write_checksums`` is there with
    its size and sha256 (a truncated, changed or missing file)."""
    try:
        listing = json.loads((folder / CHECKSUMS_FILE).read_text())
    except (OSError, ValueError) as err:
        raise CorruptEntryError(f"{CHECKSUMS_FILE} unreadable: {err}") from None
    verify_files(folder, listing, CHECKSUMS_FILE)


def verify_files(folder: Path, listing: dict, source: str) -> None:
    """Raise ``CorruptEntryError`` unless each ``{name: {"bytes", "sha256"}}`` of ``listing``
    (read from ``source``) is in ``folder`` with that size and sha256."""
    for name, expected in listing.items():
        file = folder / name
        if not file.is_file() or file.stat().st_size != expected["bytes"]:
            raise CorruptEntryError(f"{name} is missing or has the wrong size (truncated?)")
        if file_sha256(file) != expected["sha256"]:
            raise CorruptEntryError(f"{name} does not match the sha256 in {source}")


def check_safetensors_length(file: Path) -> None:
    """Raise ``CorruptEntryError`` unless the file is as long as its header says (8-byte length,
    JSON header, then the tensors up to the largest end offset): catches a truncated file."""
    try:
        with file.open("rb") as handle:
            header_bytes = int.from_bytes(handle.read(8), "little")
            header = json.loads(handle.read(header_bytes))
        data_bytes = max(
            (t["data_offsets"][1] for k, t in header.items() if k != "__metadata__"), default=0
        )
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise CorruptEntryError(f"{file.name}: unreadable safetensors header ({err})") from None
    if file.stat().st_size != 8 + header_bytes + data_bytes:
        raise CorruptEntryError(
            f"{file.name} has {file.stat().st_size} bytes, its header says "
            f"{8 + header_bytes + data_bytes} (truncated?)"
        )


def verify_entry(folder: Path, what: str) -> None:
    """``verify_checksums``; an entry written before checksums existed (no ``CHECKSUMS_FILE``)
    is checked for truncated safetensors files, then its checksums are recorded from now on."""
    if (folder / CHECKSUMS_FILE).is_file():
        verify_checksums(folder)
        return
    for file in sorted(folder.rglob("*.safetensors")):
        check_safetensors_length(file)
    try:
        write_checksums(folder)
        logger.info("%s %s had no checksums; recorded them", what, folder.name)
    except OSError:  # a read-only cache: verify what can be verified, every time
        logger.debug("could not record checksums in %s", folder)


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
