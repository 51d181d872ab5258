"""Content-addressed cache folders.

A cache entry is a folder named by the hash of everything that determines its contents (texts,
parameters, model fingerprint, code version), so a changed input can never be served a stale
entry. Entries are created by building into a temp folder, flushing it to disk (fsync) and
renaming it into place.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

# Bump when the on-disk layout or the meaning of a cached artefact changes.
CACHE_FORMAT_VERSION = "1"


def content_key(*parts: Any) -> str:
    """A stable sha256 over JSON-serialisable parts (dict keys sorted)."""
    digest = hashlib.sha256(CACHE_FORMAT_VERSION.encode())
    for part in parts:
        blob = json.dumps(part, sort_keys=True, default=str, ensure_ascii=False)
        digest.update(len(blob).to_bytes(8, "little"))
        digest.update(blob.encode())
    return digest.hexdigest()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def fsync_dir(folder: Path) -> None:
    """Flush a folder's entries (names created, renamed) to disk: after a rename into it, a power
    loss then keeps the new name (POSIX leaves it unspecified otherwise)."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(folder: Path) -> None:
    """Flush every file and folder under ``folder`` (and itself) to disk, before it is renamed
    into place: a power loss must not leave a finished-looking entry with empty files."""
    for path in sorted(folder.rglob("*"), reverse=True):  # files before their folders
        if path.is_symlink():
            continue
        if path.is_dir():
            fsync_dir(path)
        else:
            with path.open("rb") as handle:
                os.fsync(handle.fileno())
    fsync_dir(folder)


def atomic_dir(final_dir: Path, build: Callable[[Path], None]) -> tuple[Path, bool]:
    """Return ``(final_dir, reused)``; build it with ``build(tmp_dir)`` and a rename if absent.

    An interrupted build leaves only a hidden temp folder, never a finished-looking entry. If
    another process finishes the same key first, its entry is kept and ours discarded.
    """
    if final_dir.exists():
        return final_dir, True
    final_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp_dir = Path(tempfile.mkdtemp(prefix=f".{final_dir.name}.tmp-", dir=final_dir.parent))
    try:
        os.chmod(tmp_dir, 0o777 & ~_umask())  # mkdtemp makes it private; entries are shared
        build(tmp_dir)
        fsync_tree(tmp_dir)
        try:
            os.rename(tmp_dir, final_dir)
        except OSError:
            if not final_dir.exists():
                raise
        fsync_dir(final_dir.parent)
    finally:
        if tmp_dir.exists():
            shutil.rmtree(tmp_dir, ignore_errors=True)
    return final_dir, False


def atomic_write_text(path: Path, text: str) -> None:
    """Write a file so readers, and the disk after a power loss, hold either the old or the
    complete new content (fsync of the file before the rename and of its folder after)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())  # the content is on disk before the name points at it
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it private; results are shared
        os.replace(tmp, path)
        fsync_dir(path.parent)  # and the new name survives a power loss
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def model_fingerprint(model: str) -> str:
    """Identity of a model for cache keys: a content hash for local folders, else the name.

    Hashing a 500 MB folder takes about a second, so the result is memoised beside the folder
    keyed by every file's size and modification time.
    """
    path = Path(model)
    if not path.is_dir():
        return f"name:{model}"
    files = sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
    stat_key = content_key(
        [(str(p.relative_to(path)), p.stat().st_size, p.stat().st_mtime_ns) for p in files]
    )
    memo = path / ".fingerprint.json"
    if memo.is_file():
        try:
            saved = json.loads(memo.read_text())
            if saved.get("stat_key") == stat_key:
                return saved["fingerprint"]
        except (OSError, ValueError, KeyError):
            pass
    digest = hashlib.sha256()
    for file in files:
        digest.update(str(file.relative_to(path)).encode())
        with file.open("rb") as handle:
            for block in iter(lambda h=handle: h.read(1 << 20), b""):
                digest.update(block)
    fingerprint = f"sha256:{digest.hexdigest()}"
    try:
        atomic_write_text(memo, json.dumps({"stat_key": stat_key, "fingerprint": fingerprint}))
    except OSError:
        logger.debug("could not memoise the fingerprint of %s (read-only?)", path)
    return fingerprint


def count_parameters(model: str | Path | None, recursive: bool = False) -> int | None:
    """Parameters stored in a local folder's safetensors files, read from their headers only
    (8-byte little-endian length + JSON of tensor shapes); None for a hub id or a folder
    without safetensors. ``recursive`` also counts sub-folders (sentence-transformers). A
    header that cannot be read is a ``ValueError`` naming the file."""
    if not model or not Path(model).is_dir():
        return None
    folder = Path(model)
    files = sorted(folder.rglob("*.safetensors") if recursive else folder.glob("*.safetensors"))
    if not files:
        return None
    total = 0
    for file in files:
        try:
            with file.open("rb") as handle:
                header = json.loads(handle.read(int.from_bytes(handle.read(8), "little")))
            total += sum(math.prod(t["shape"]) for k, t in header.items() if k != "__metadata__")
        except (ValueError, KeyError, TypeError, AttributeError):
            raise ValueError(
                f"{file.name} is corrupt or truncated (its header is unreadable)"
            ) from None
    return total
