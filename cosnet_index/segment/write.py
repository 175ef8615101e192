"""Writing segmentation masks as MRC files: one per hit, or one label volume per tomogram.

- Per hit: ``masks/<subtomogram_id>.mrc``, int8 (MRC mode 0), 1 inside the molecule, 0 outside;
  the box as cut from the tomogram (tomogram voxels, its voxel size in the header), with the
  header origin set to the tomogram's own origin plus the box's corner, in angstrom, so that
  viewers (ChimeraX, IMOD) overlay it on the tomogram.
- Merged (``--merge``): ``labels/<tomogram>.mrc``, the tomogram's shape, voxel size and header
  origin (its frame); voxel value = the hit's ``label`` (its 1-based row in the statistics
  table), 0 = background; int16 (mode 1) while the largest label of the whole hits table is at
  most 32767 (labels are numbered across all tomograms), float32 (mode 2, exact integers) past
  that. Where masks of two hits overlap, each voxel takes the label of the hit whose foreground
  probability there (the thresholded marginal: CRF ``Q_1`` or decoder ``p``) is highest, the
  lower label on an exact tie: the result does not depend on the order the hits are written in.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import mrcfile
import numpy as np

from cosnet_index.errors import InputError
from cosnet_index.files import (
    atomic_replace,
    atomic_write,
    reserve_space,
    tmp_path_for,
    write_errors,
)

__all__ = ["LabelVolume", "write_hit_mask"]


def _check_free(path: Path, overwrite: bool) -> None:
    if path.exists() and not overwrite:
        raise InputError(f"{path} already exists; choose another --out folder or pass --overwrite")


def header_origin(path: str | os.PathLike) -> tuple[float, float, float]:
    """The MRC header origin ``(x, y, z)`` in angstrom of a tomogram (its frame)."""
    with mrcfile.open(path, header_only=True, permissive=True) as mrc:
        origin = mrc.header.origin
        return float(origin.x), float(origin.y), float(origin.z)


def write_hit_mask(
    path: str | os.PathLike,
    mask: np.ndarray,
    *,
    voxel_size_angstrom: float,
    start_zyx: Sequence[int],
    origin_xyz: Sequence[float] = (0.0, 0.0, 0.0),
    overwrite: bool = False,
) -> Path:
    """Write one ``(d, h, w)`` boolean mask as an int8 MRC (voxel size and origin in the header).

    The header origin is ``origin_xyz`` (the tomogram's, angstrom) plus the box corner.

    Raises:
        InputError: the file exists and ``overwrite`` is False.
    """
    path = Path(path)
    _check_free(path, overwrite)
    with atomic_write(path) as tmp, mrcfile.new(tmp, overwrite=True) as mrc:
        mrc.set_data(np.ascontiguousarray(mask, dtype=np.int8))
        mrc.voxel_size = float(voxel_size_angstrom)
        z, y, x = (float(v) * float(voxel_size_angstrom) for v in start_zyx)
        ox, oy, oz = (float(v) for v in origin_xyz)
        mrc.header.origin = (ox + x, oy + y, oz + z)
    return path


class LabelVolume:
    """A tomogram-shaped label volume on disk (memory-mapped), filled hit by hit.

    Use as a context manager; the file appears under its final name only when closed without
    an error.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        shape_zyx: Sequence[int],
        *,
        voxel_size_angstrom: float,
        n_labels: int,
        origin_xyz: Sequence[float] = (0.0, 0.0, 0.0),
        overwrite: bool = False,
    ) -> None:
        self.path = Path(path)
        _check_free(self.path, overwrite)
        self._tmp = tmp_path_for(self.path)
        self._best_path = self.path.with_name(f".{self.path.name}.probability.tmp")
        self.shape_zyx = tuple(int(s) for s in shape_zyx)
        mode = 1 if n_labels <= np.iinfo(np.int16).max else 2
        try:  # the label volume's blocks are allocated first: a full disk raises WriteError
            # here, where writing a memory map would kill the process (SIGBUS)
            with write_errors(self.path):
                self._mrc = mrcfile.new_mmap(
                    self._tmp, shape=self.shape_zyx, mrc_mode=mode, overwrite=True
                )
            reserve_space(self._tmp)
            # the winning hit's probability per voxel (a sparse scratch file, removed on close;
            # left sparse: it is written only inside hit boxes)
            with write_errors(self._best_path):
                self._best = np.memmap(
                    self._best_path, dtype=np.float32, mode="w+", shape=self.shape_zyx
                )
        except BaseException:
            if getattr(self, "_mrc", None) is not None:
                self._mrc.close()
            self._tmp.unlink(missing_ok=True)
            self._best_path.unlink(missing_ok=True)
            raise
        self._mrc.data[...] = 0
        self._mrc.voxel_size = float(voxel_size_angstrom)
        self._mrc.header.origin = tuple(float(v) for v in origin_xyz)

    def place(
        self, mask: np.ndarray, probability: np.ndarray, start_zyx: Sequence[int], label: int
    ) -> int:
        """Write ``label`` where ``mask`` is set and this hit is the most probable; returns voxels.

        A voxel already labelled keeps its label unless this hit's ``probability`` there is
        higher (or equal, with a lower ``label``), so the result does not depend on the order of
        the calls. The part of the box outside the tomogram is dropped (boxes padded at the edge).
        """
        start = np.asarray(start_zyx, dtype=np.int64)
        stop = start + np.asarray(mask.shape)
        lo = np.maximum(start, 0)
        hi = np.minimum(stop, self.shape_zyx)
        if np.any(hi <= lo):
            return 0
        a, b = lo - start, hi - start
        window = (slice(a[0], b[0]), slice(a[1], b[1]), slice(a[2], b[2]))
        sub, prob = mask[window], probability[window].astype(np.float32)
        target = (slice(lo[0], hi[0]), slice(lo[1], hi[1]), slice(lo[2], hi[2]))
        region, best = self._mrc.data[target], self._best[target]
        wins = sub & ((region == 0) | (prob > best) | ((prob == best) & (label < region)))
        region[wins] = label
        best[wins] = prob[wins]
        return int(wins.sum())

    def close(self, *, keep: bool = True) -> None:
        self._mrc.update_header_stats()
        self._mrc.close()
        del self._best
        self._best_path.unlink(missing_ok=True)
        if keep:
            atomic_replace(self._tmp, self.path)
        else:
            self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> LabelVolume:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        self.close(keep=exc_type is None)
