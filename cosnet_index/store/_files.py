"""File-level safety: atomic replacement, fsync, and the inter-process writer lock."""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator
from pathlib import Path

from cosnet_index.errors import StoreError, StoreLockedError

__all__ = ["TMP_MARK", "atomic_replace", "fsync_dir", "tmp_path_for", "writer_lock"]

TMP_MARK = ".tmp-"  # every temporary file of a store has this in its name


def tmp_path_for(path: Path) -> Path:
    """A temporary sibling of ``path`` (same directory, so the rename is atomic)."""
    return path.with_name(f".{path.name}{TMP_MARK}{os.getpid()}")


def fsync_dir(directory: Path) -> None:
    """Make a rename in ``directory`` durable (no-op where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_replace(tmp: Path, final: Path) -> None:
    """fsync ``tmp``, rename it over ``final``: readers see the old or the new file, not half."""
    with open(tmp, "rb+") as handle:
        os.fsync(handle.fileno())
    os.replace(tmp, final)
    fsync_dir(final.parent)


@contextlib.contextmanager
def writer_lock(lock_path: Path, store_path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``lock_path`` (released by the kernel if the process dies).

    The lock file's content is never written, so a refused command leaves the store unchanged.

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
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StoreLockedError(
                f"another cosnet-index process is writing to the store at "
                f"{store_path}; wait for it to finish, then run this command again"
            ) from None
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
