"""The inter-process writer lock of a store (atomic file writes: ``cosnet_index.files``)."""

from __future__ import annotations

import contextlib
import errno
import os
import time
from collections.abc import Iterator
from pathlib import Path

from cosnet_index.errors import StoreError, StoreLockedError
from cosnet_index.files import TMP_MARK, atomic_replace, fsync_dir, tmp_path_for

__all__ = ["TMP_MARK", "atomic_replace", "fsync_dir", "tmp_path_for", "writer_lock"]


@contextlib.contextmanager
def writer_lock(lock_path: Path, store_path: Path, wait_s: float = 0.0) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``lock_path`` (released by the kernel if the process dies).

    The lock file's content is never written, so a refused command leaves the store unchanged.
    ``wait_s``: keep trying this long before giving up (the Dask committer waits for other
    writers; commands refuse at once).

    Raises:
        StoreLockedError: another process holds it.
        StoreError: the store directory is not writable.
    """
    import fcntl

    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        if exc.errno in (errno.EACCES, errno.EROFS, errno.EPERM):
            raise StoreError(
                f"the store at {store_path} is read-only ({exc.strerror}); writing needs write "
                "permission on the store directory"
            ) from None
        raise
    try:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise StoreLockedError(
                        f"another cosnet-index process is writing to the store at "
                        f"{store_path}; wait for it to finish, then run this command again"
                    ) from None
                time.sleep(0.05)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
