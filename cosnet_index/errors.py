"""Every exception the library raises on purpose.

The CLI turns a :class:`CosnetError` into a one-line message and a non-zero exit code;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

__all__ = [
    "CatalogConnectionError",
    "CheckpointError",
    "ClassError",
    "CoordinateError",
    "CosnetError",
    "InputError",
    "MrcError",
    "SchemaError",
    "StoreDamagedError",
    "StoreError",
    "StoreLockedError",
    "WriteError",
]


class CosnetError(Exception):
    """Base class: a problem the user can fix. The message says what is wrong and how to fix it."""


class InputError(CosnetError, ValueError):
    """An argument or a file given by the user is invalid."""


class MrcError(InputError):
    """An MRC file cannot be used (corrupt, wrong mode, not a volume, non-finite voxels...)."""


class CoordinateError(InputError):
    """A coordinate table (STAR, CSV, Parquet) cannot be used."""


class CheckpointError(CosnetError):
    """A model checkpoint is missing, corrupt, unsafe or does not match its recorded hash."""


class StoreError(CosnetError):
    """A store is missing, inconsistent, read-only or was made by another model."""


class SchemaError(StoreError):
    """The store's database schema is behind or ahead of this version of cosnet-index."""


class StoreLockedError(StoreError):
    """Another process is writing to the store."""


class CatalogConnectionError(StoreError):
    """The connection to the catalog's database server was lost (restart, killed connection).

    The transaction in flight was rolled back by the server; re-running the command resumes.
    """


class StoreDamagedError(StoreError):
    """``check`` found damaged files (a checksum differs): queries refuse until ``repair``."""


class ClassError(CosnetError, ValueError):
    """A support class name or definition is invalid (duplicate, empty, unknown, other model)."""


class WriteError(CosnetError):
    """A file could not be written: the disk (or quota) is full, or the file system failed.

    Raised by every write path of the package (``cosnet_index.files.write_errors``); the file
    being written was a temporary one, so nothing stored before was changed.

    Attributes:
        path: the file (or folder) being written.
        needed_bytes: about how many bytes the write needed, when known (else None).
        errno: the operating system's error number (``errno.ENOSPC`` for a full disk), or None.
    """

    def __init__(
        self, message: str, *, path: str, needed_bytes: int | None, errno: int | None
    ) -> None:
        super().__init__(message)
        self.path = path
        self.needed_bytes = needed_bytes
        self.errno = errno
