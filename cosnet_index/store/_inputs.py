"""Indexing, step 0: check the arguments, read the inputs and check their plausibility.

Shared by the single-process path (``indexer.py``) and the Dask path (``distributed.py``);
nothing here writes to the store.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from cosnet_index.errors import InputError
from cosnet_index.io import (
    EDGE_POLICIES,
    TomogramInfo,
    coordinate_conventions,
    open_tomogram,
    parse_coordinates,
    read_coordinates,
)
from cosnet_index.io.plausibility import check_plausibility

if TYPE_CHECKING:
    from cosnet_index.store.store import Store


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


def read_tomogram_headers(
    tomogram_paths: Sequence[str | os.PathLike[str]], voxel_size_angstrom: float | None
) -> list[TomogramInfo]:
    """The headers of ``tomogram_paths`` (each opened memory-mapped, then closed).

    Raises:
        InputError: two tomograms with one name; MrcError: a bad file.
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
    return tomograms


def _read_inputs(
    tomogram_paths: Sequence[str | os.PathLike[str]],
    coords_path: str | os.PathLike[str] | None,
    voxel_size_angstrom: float | None,
    candidates: pd.DataFrame | None = None,
) -> tuple[list[TomogramInfo], pd.DataFrame, str, dict[str, Any]]:
    """Tomogram headers, the coordinates per tomogram, where they came from, their conventions.

    The coordinates come from ``coords_path`` (a coordinate file) or ``candidates`` (a table
    ``tomogram, x, y, z`` in voxels of each tomogram, e.g. picked candidates): exactly one.

    Raises:
        InputError: two tomograms with one name, both or neither source, a bad candidate table;
            MrcError / CoordinateError: bad files.
    """
    tomograms = read_tomogram_headers(tomogram_paths, voxel_size_angstrom)
    if (coords_path is None) == (candidates is None):
        raise InputError("give either a coordinate file or a candidate table, not both or neither")
    if candidates is not None:
        return tomograms, _candidate_table(candidates), "the candidates", {}
    parsed = parse_coordinates(coords_path)  # type: ignore[arg-type]
    coordinates = read_coordinates(parsed, tomograms={t.name: t for t in tomograms})
    return tomograms, coordinates, str(coords_path), coordinate_conventions(parsed)


def _candidate_table(candidates: pd.DataFrame) -> pd.DataFrame:
    """A candidate table as ``read_coordinates`` returns coordinates (rows numbered 0..n-1).

    Raises:
        InputError: a column of ``tomogram, x, y, z`` is missing or a position is not finite.
    """
    missing = [c for c in ("tomogram", "x", "y", "z") if c not in candidates.columns]
    if missing:
        raise InputError(f"the candidate table lacks the columns {missing}")
    table = candidates.reset_index(drop=True)
    if not np.isfinite(table[["x", "y", "z"]].to_numpy(dtype=np.float64)).all():
        raise InputError("the candidate table has positions that are not finite numbers")
    return table


@dataclass(frozen=True)
class _Inputs:
    """What an ``index`` run works from, read and checked before the store changes."""

    tomograms: list[TomogramInfo]
    coordinates: pd.DataFrame
    source: str  # where the coordinates came from (a path, or "the candidates")
    conventions: dict[str, Any]
    model: Any  # the store's active CosNet
    box: int
    model_voxel_angstrom: float
    invert_contrast: bool = (
        False  # --invert-contrast: a tomogram keeps the setting it was indexed with
    )


def _checked_inputs(
    store: Store,
    tomogram_paths: Sequence[str | os.PathLike[str]],
    coords_path: str | os.PathLike[str] | None,
    candidates: pd.DataFrame | None = None,
    *,
    voxel_size_angstrom: float | None,
    batch_size: int,
    device: str | None,
    edge: str,
    commit_every: int,
    invert_contrast: bool,
    contrast_check: str,
    size_check: bool,
) -> _Inputs:
    """Check the arguments, read headers and coordinates, load the model, and run the contrast
    and voxel-size checks (:func:`~cosnet_index.io.plausibility.check_plausibility`).

    Raises:
        InputError, MrcError, CoordinateError, ContrastError: before anything is written.
    """
    _check_arguments(tomogram_paths, batch_size, device, edge, commit_every)
    tomograms, coordinates, source, conventions = _read_inputs(
        tomogram_paths, coords_path, voxel_size_angstrom, candidates
    )
    model = store.model()
    box = int(model.config.box)
    model_voxel_angstrom = float(model.config.voxel_size_nm) * 10.0
    check_plausibility(
        tomograms,
        coordinates,
        box=box,
        model_voxel_angstrom=model_voxel_angstrom,
        invert_contrast=invert_contrast,
        contrast_check=contrast_check,
        size_check=size_check,
    )
    return _Inputs(
        tomograms,
        coordinates,
        source,
        conventions,
        model,
        box,
        model_voxel_angstrom,
        invert_contrast,
    )
