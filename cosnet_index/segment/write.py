"""Writing segmentation masks as MRC files: one per hit, or one label volume per tomogram.

- Per hit: ``masks/<subtomogram_id>.mrc``, int8 (MRC mode 0), 1 inside the molecule, 0 outside;
  the box as cut from the tomogram (tomogram voxels, its voxel size in the header), with the
  header origin set to the box's corner in angstrom so that viewers (ChimeraX, IMOD) overlay it
  on the tomogram.
- Merged (``--merge``): ``labels/<tomogram>.mrc``, the tomogram's shape and voxel size; voxel
  value = the hit's ``label`` (its 1-based row in the statistics table), 0 = background; int16
  (mode 1) while the largest label of the whole hits table is at most 32767 (labels are numbered
  across all tomograms), float32 (mode 2, exact integers) past that. Where masks
  of two hits overlap, the voxel keeps the label of the earlier row (the better-ranked hit).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import mrcfile
import numpy as np

from cosnet_index.errors import InputError
from cosnet_index.files import atomic_replace, atomic_write, tmp_path_for

__all__ = ["LabelVolume", "write_hit_mask"]


def _check_free(path: Path, overwrite: bool) -> None:
    if path.exists() and not overwrite:
        raise InputError(f"{path} already exists; choose another --out folder or pass --overwrite")


def write_hit_mask(
    path: str | os.PathLike,
    mask: np.ndarray,
    *,
    voxel_size_angstrom: float,
    start_zyx: Sequence[int],
    overwrite: bool = False,
) -> Path:
    """Write one ``(d, h, w)`` boolean mask as an int8 MRC (voxel size and origin in the header).

    Raises:
        InputError: the file exists and ``overwrite`` is False.
    """
    path = Path(path)
    _check_free(path, overwrite)
    with atomic_write(path) as tmp, mrcfile.new(tmp, overwrite=True) as mrc:
        mrc.set_data(np.ascontiguousarray(mask, dtype=np.int8))
        mrc.voxel_size = float(voxel_size_angstrom)
        z, y, x = (float(v) * float(voxel_size_angstrom) for v in start_zyx)
        mrc.header.origin = (x, y, z)
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
        overwrite: bool = False,
    ) -> None:
        self.path = Path(path)
        _check_free(self.path, overwrite)
        self._tmp = tmp_path_for(self.path)
        mode = 1 if n_labels <= np.iinfo(np.int16).max else 2
        self._mrc = mrcfile.new_mmap(
            self._tmp, shape=tuple(int(s) for s in shape_zyx), mrc_mode=mode, overwrite=True
        )
        self._mrc.data[...] = 0
        self._mrc.voxel_size = float(voxel_size_angstrom)
        self.shape_zyx = tuple(int(s) for s in shape_zyx)

    def place(self, mask: np.ndarray, start_zyx: Sequence[int], label: int) -> int:
        """Write ``label`` where ``mask`` is set and no earlier hit is; returns voxels written.

        The part of the box outside the tomogram is dropped (boxes padded at the edge).
        """
        start = np.asarray(start_zyx, dtype=np.int64)
        stop = start + np.asarray(mask.shape)
        lo = np.maximum(start, 0)
        hi = np.minimum(stop, self.shape_zyx)
        if np.any(hi <= lo):
            return 0
        a, b = lo - start, hi - start
        sub = mask[a[0] : b[0], a[1] : b[1], a[2] : b[2]]
        region = self._mrc.data[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
        free = sub & (region == 0)
        region[free] = label
        return int(free.sum())

    def close(self, *, keep: bool = True) -> None:
        self._mrc.update_header_stats()
        self._mrc.close()
        if keep:
            atomic_replace(self._tmp, self.path)
        else:
            self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> LabelVolume:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        self.close(keep=exc_type is None)
