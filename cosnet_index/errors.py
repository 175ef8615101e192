"""Every exception the library raises on purpose.

The CLI turns a :class:`CosnetError` into a one-line message and a non-zero exit code;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

__all__ = [
    "CheckpointError",
    "ClassError",
    "CoordinateError",
    "CosnetError",
    "InputError",
    "MrcError",
    "SchemaError",
    "StoreError",
    "StoreLockedError",
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


class ClassError(CosnetError, ValueError):
    """A support class name or definition is invalid (duplicate, empty, unknown, other model)."""
