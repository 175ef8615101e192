"""Indexing, step 0: check the arguments and read the inputs (no store access).

Shared by the single-process path (``indexer.py``) and the Dask path (``distributed.py``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from cosnet_index.errors import InputError
from cosnet_index.io import (
    EDGE_POLICIES,
    TomogramInfo,
    open_tomogram,
    parse_coordinates,
    read_coordinates,
)


def _check_arguments(
    tomogram_paths: Sequence[object],
    batch_size: int,
    device: str | None,
    edge: str,
    commit_every: int,
) -> None:
    """Refuse bad ``index`` arguments (single-process and Dask paths alike).

    Raises:
        InputError: with the option to fix.
    """
    import torch

    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InputError(f"--batch-size must be a positive integer, got {batch_size!r}")
    if device is not None:
        try:
            kind = torch.device(device).type
        except RuntimeError:
            raise InputError(
                f"--device {device!r} is not a torch device; use cpu, cuda or cuda:N"
            ) from None
        if kind == "cuda" and not torch.cuda.is_available():
            raise InputError(f"--device {device}: no CUDA GPU is available here; use --device cpu")
    if edge not in EDGE_POLICIES:
        raise InputError(f"--edge must be one of {', '.join(EDGE_POLICIES)}, got {edge!r}")
    if isinstance(commit_every, bool) or not isinstance(commit_every, int) or commit_every < 1:
        raise InputError(f"--commit-every must be a positive integer, got {commit_every!r}")
    if not tomogram_paths:
        raise InputError("give at least one tomogram (MRC file) to index")


def _read_inputs(
    tomogram_paths: Sequence[str | os.PathLike[str]],
    coords_path: str | os.PathLike[str],
    voxel_size_angstrom: float | None,
) -> tuple[list[TomogramInfo], Any, Any]:
    """Tomogram headers, the parsed coordinate file and its coordinates per tomogram.

    Raises:
        InputError: two tomograms with one name; MrcError / CoordinateError: bad files.
    """
    tomograms: list[TomogramInfo] = []
    for path in tomogram_paths:
        with open_tomogram(path, voxel_size_angstrom=voxel_size_angstrom) as tomogram:
            tomograms.append(tomogram.info())
    names = [t.name for t in tomograms]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise InputError(
            f"several tomograms are named {duplicates}: names (file stems) must be unique"
        )
    parsed = parse_coordinates(coords_path)
    coordinates = read_coordinates(parsed, tomograms={t.name: t for t in tomograms})
    return tomograms, parsed, coordinates
