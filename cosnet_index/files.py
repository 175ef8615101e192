"""Writing files atomically: the one way every module of the package replaces a file.

A reader (or a process that survives a crash) sees the old file or the new one, never half of
one: the content goes to a temporary sibling (same folder, so the rename is atomic), which is
fsynced, renamed over the target, and then the folder is fsynced so that the rename itself is
durable. Temporary names are ``.<name>.tmp-<pid>`` (``TMP_MARK``), which is how a store's
``remove_partial_files`` recognises leftovers of a killed writer.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

__all__ = ["TMP_MARK", "atomic_replace", "atomic_write", "fsync_dir", "tmp_path_for"]

TMP_MARK = ".tmp-"  # every temporary file of the package has this in its name


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
    """fsync ``tmp``, rename it over ``final``, fsync the folder.

    For writers that stream into a temporary file they manage themselves (Parquet shards,
    memory-mapped label volumes); everything else uses :func:`atomic_write`.
    """
    with open(tmp, "rb+") as handle:
        os.fsync(handle.fileno())
    os.replace(tmp, final)
    fsync_dir(final.parent)


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it atomically becomes ``path``.

    Write the whole content to the yielded path inside the ``with`` block (any writer that takes
    a file name: ``torch.save``, ``mrcfile.new``, ``pyarrow``, ``Path.write_text``). On a clean
    exit the file is fsynced and renamed over ``path`` and the folder is fsynced; on an error the
    temporary file is removed and ``path`` is left as it was. The folder is created if missing.

    Example:
        >>> with atomic_write(out / "report.md") as tmp:
        ...     tmp.write_text(text)
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = tmp_path_for(final)
    try:
        yield tmp
        atomic_replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
