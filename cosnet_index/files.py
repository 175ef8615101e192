"""Writing files atomically: the one way every module of the package replaces a file.

A reader (or a process that survives a crash) sees the old file or the new one, never half of
one: the content goes to a temporary sibling (same folder, so the rename is atomic), which is
fsynced, renamed over the target, and then the folder is fsynced so that the rename itself is
durable. Temporary names are ``.<name>.tmp-<pid>`` (``TMP_MARK``), which is how a store's
``remove_partial_files`` recognises leftovers of a killed writer.

Every write error of the package goes through :func:`write_errors`: a full disk (``ENOSPC``, a
full quota, a file too large), an I/O error or a read-only file system becomes one
:class:`~cosnet_index.errors.WriteError` that names the path and the space needed, and says that
nothing stored was lost (the file written was a temporary one). FAISS reports the same as a
``RuntimeError`` whose message holds the C library's ``strerror``, SQLite as "database or disk is
full", PostgreSQL as SQLSTATE 53100; :func:`write_error` recognises all of them.
:func:`file_checksum` is the store's checksum of a file (blake2b, 256 bits).
"""

from __future__ import annotations

import contextlib
import errno as errno_codes
import hashlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from cosnet_index.errors import WriteError

__all__ = [
    "CHECKSUM_ALGORITHM",
    "TMP_MARK",
    "atomic_replace",
    "atomic_write",
    "file_checksum",
    "fsync_dir",
    "reserve_space",
    "tmp_path_for",
    "write_error",
    "write_errors",
]

TMP_MARK = ".tmp-"  # every temporary file of the package has this in its name


_FULL = (errno_codes.ENOSPC, errno_codes.EDQUOT, errno_codes.EFBIG)
_FAILED = (errno_codes.EIO, errno_codes.EROFS)
_FULL_TEXT = {
    "no space left on device": errno_codes.ENOSPC,
    "disk quota exceeded": errno_codes.EDQUOT,
    "file too large": errno_codes.EFBIG,
    "database or disk is full": errno_codes.ENOSPC,  # SQLite
    "could not extend file": errno_codes.ENOSPC,  # PostgreSQL (SQLSTATE 53100)
    "input/output error": errno_codes.EIO,
    "read-only file system": errno_codes.EROFS,
}


def _size(n_bytes: int) -> str:
    size = float(n_bytes)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{int(size)} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"  # pragma: no cover


def _free_bytes(path: Path) -> int | None:
    for folder in (path, *path.parents):
        if folder.exists():
            try:
                return int(shutil.disk_usage(folder).free)
            except OSError:
                return None
    return None


def write_error(
    exc: BaseException, path: str | os.PathLike[str], needed_bytes: int | None = None
) -> WriteError | None:
    """The :class:`~cosnet_index.errors.WriteError` that ``exc`` means, or None.

    Recognises an ``OSError`` with a full-disk, quota, file-size, I/O or read-only errno, and any
    exception (FAISS's ``RuntimeError``, pyarrow's ``OSError`` without an errno, SQLAlchemy's
    ``OperationalError``) whose message says the same. ``needed_bytes``: what the write needed
    (None: unknown).
    """
    if isinstance(exc, WriteError):
        return exc
    code = getattr(exc, "errno", None) if isinstance(exc, OSError) else None
    if code not in _FULL + _FAILED:
        text = str(exc).lower()
        code = next((c for phrase, c in _FULL_TEXT.items() if phrase in text), None)
        if code is None:
            return None
    target = Path(path)
    if code in _FULL:
        free = _free_bytes(target)
        need = [] if needed_bytes is None else [f"about {_size(needed_bytes)} needed"]
        have = [] if free is None else [f"{_size(free)} free there"]
        detail = f" ({', '.join(need + have)})" if need or have else ""
        what = {
            errno_codes.EDQUOT: "disk quota exceeded",
            errno_codes.EFBIG: "file too large for the file system",
        }.get(code, "no space left on device")
        message = (
            f"cannot write {target}: {what}{detail}; nothing stored was lost; free space and re-run"
        )
    else:
        message = (
            f"cannot write {target}: {os.strerror(code)}; nothing stored was lost; fix the file "
            "system (or write elsewhere) and re-run"
        )
    return WriteError(message, path=str(target), needed_bytes=needed_bytes, errno=code)


@contextlib.contextmanager
def write_errors(path: str | os.PathLike[str], needed_bytes: int | None = None) -> Iterator[None]:
    """Turn the write errors :func:`write_error` recognises into ``WriteError`` (others pass).

    Raises:
        WriteError: the disk is full or the file system failed while writing ``path``.
    """
    try:
        yield
    except Exception as exc:  # what write_error does not recognise is re-raised as it is
        error = write_error(exc, path, needed_bytes)
        if error is None:
            raise
        raise error from exc


def reserve_space(path: str | os.PathLike[str]) -> None:
    """Allocate every block of an existing (sparse) file, so that writing it through a memory
    map cannot hit a full disk (which kills the process with SIGBUS instead of raising).

    Raises:
        WriteError: there is not enough space for the whole file.
    """
    size = os.path.getsize(path)
    with write_errors(path, size):
        fd = os.open(path, os.O_RDWR)
        try:
            os.posix_fallocate(fd, 0, max(size, 1))
        except OSError as exc:
            if exc.errno not in (errno_codes.EOPNOTSUPP, errno_codes.EINVAL):
                raise  # a file system that cannot preallocate: written as before
        finally:
            os.close(fd)


CHECKSUM_ALGORITHM = "blake2b-256"


def file_checksum(path: str | os.PathLike[str]) -> str:
    """The hex blake2b (256-bit) digest of a file's bytes, read in 1 MiB chunks."""
    digest = hashlib.blake2b(digest_size=32)
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


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

    Raises:
        WriteError: the disk is full or the file system failed (``final`` is unchanged).
    """
    with write_errors(final):
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, final)
    fsync_dir(final.parent)


@contextlib.contextmanager
def atomic_write(
    path: str | os.PathLike[str], *, needed_bytes: int | None = None
) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it atomically becomes ``path``.

    Write the whole content to the yielded path inside the ``with`` block (any writer that takes
    a file name: ``torch.save``, ``mrcfile.new``, ``pyarrow``, ``Path.write_text``). On a clean
    exit the file is fsynced and renamed over ``path`` and the folder is fsynced; on an error the
    temporary file is removed and ``path`` is left as it was. The folder is created if missing.
    A full disk or a failed file system, inside the block or after it, raises
    :class:`~cosnet_index.errors.WriteError` (:func:`write_errors`; ``needed_bytes``: the size
    written, when the caller knows it).

    Example:
        >>> with atomic_write(out / "report.md") as tmp:
        ...     tmp.write_text(text)
    """
    final = Path(path)
    with write_errors(final):
        final.parent.mkdir(parents=True, exist_ok=True)
    tmp = tmp_path_for(final)
    try:
        with write_errors(final, needed_bytes):
            yield tmp
        atomic_replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
