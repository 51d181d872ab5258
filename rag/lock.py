"""An exclusive inter-process file lock with a timeout (``fcntl.flock``).

Cache builders hold ``<entry>.lock`` beside a cache entry while they build it, so when several
processes ask for the same entry one builds and the others wait, then reuse it. ``flock`` locks
belong to the open file and are released by the kernel when the holder exits or crashes, so a
lock file left on disk never blocks anyone; lock files are left in place on purpose (removing
one while another process waits on it would let two builders in).
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

logger = logging.getLogger(__name__)

_POLL_S = 0.05


class CacheLockTimeout(TimeoutError):
    """Another process held a cache lock for longer than the caller agreed to wait."""


@contextmanager
def file_lock(path: Path, timeout_s: float, what: str = "cache entry") -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created if missing), waiting at most ``timeout_s``."""
    if timeout_s < 0:
        raise ValueError(f"lock timeout must be >= 0 s, got {timeout_s}")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        deadline = time.monotonic() + timeout_s
        announced = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as err:
                if err.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise
            if time.monotonic() >= deadline:
                raise CacheLockTimeout(
                    f"waited {timeout_s:g} s for the lock {path}: another live process is "
                    f"still building this {what}. Wait for it to finish, or raise the lock "
                    "timeout (retriever.lock_timeout_s)."
                )
            if not announced:
                logger.info("waiting for another process building %s (%s)", what, path.name)
                announced = True
            time.sleep(_POLL_S)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the flock
