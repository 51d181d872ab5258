"""An exclusive inter-process lock on a file, with a timeout (the ``filelock`` package).

Cache builders hold ``<entry>.lock`` beside a cache entry while they build it, so when several
processes ask for the same entry one builds and the others wait, then reuse it. On Unix
``filelock.FileLock`` is an ``fcntl.flock`` lock: it belongs to the open file and the kernel
releases it when the holder exits or crashes, so a lock file left on disk never blocks anyone.
Lock files are left in place on purpose (removing one while another process waits on it would
let two builders in).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import filelock

from rag.core.errors import UserError

logger = logging.getLogger(__name__)


class CacheLockTimeout(UserError, TimeoutError):
    """Another process held a cache lock for longer than the caller agreed to wait."""


@contextmanager
def file_lock(path: Path, timeout_s: float, what: str = "cache entry") -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created if missing), waiting at most ``timeout_s``."""
    if timeout_s < 0:
        raise ValueError(f"lock timeout must be >= 0 s, got {timeout_s}")
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = filelock.FileLock(
        path, timeout=timeout_s, mode=0o666, thread_local=False, preserve_lock_file=True
    )
    try:
        lock.acquire(timeout=0)
    except filelock.Timeout:
        logger.info("waiting for another process building %s (%s)", what, path.name)
        try:
            lock.acquire(timeout=timeout_s)
        except filelock.Timeout:
            raise CacheLockTimeout(
                f"waited {timeout_s:g} s for the lock {path}: another live process is "
                f"still building this {what}. Wait for it to finish, or raise the lock "
                "timeout (retriever.lock_timeout_s)."
            ) from None
    try:
        yield
    finally:
        lock.release()


@contextmanager
def claim(path: Path, error: Callable[[], Exception]) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` for the block, or raise ``error()`` at once if another
    live process holds it (a folder one process at a time may write into)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = filelock.FileLock(path, mode=0o666, thread_local=False, preserve_lock_file=True)
    try:
        lock.acquire(timeout=0)
    except filelock.Timeout:
        raise error() from None
    try:
        yield
    finally:
        lock.release()
