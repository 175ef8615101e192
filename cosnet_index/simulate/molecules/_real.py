"""Real class maps: the ten PDB-derived maps shipped in ``structures/``, and any MRC file."""

from __future__ import annotations

import functools
import os
from importlib import resources

import mrcfile
import numpy as np
from scipy import ndimage

from cosnet_index.errors import InputError, MrcError
from cosnet_index.simulate.molecules._density import ClassMap, finish_map, lowpass

__all__ = ["REAL_CLASSES", "REAL_MASS_KDA", "load_real", "map_from_mrc_file"]

# mass (kDa) of each shipped map, from structures/README.md (first biological assembly)
REAL_MASS_KDA: dict[str, float] = {
    "ribosome70S_4v5d": 2326.0,
    "spliceosome_3jb9": 1288.0,
    "apoferritin_6z6u": 483.0,
    "ruvab_7pbl": 234.0,
    "mtor_4jsv": 164.0,
    "casx_6ny1": 151.0,
    "cftr_6msm": 141.0,
    "gltph_2nwl": 128.0,
    "enolase_3enl": 97.0,
    "glua3_3o21": 89.0,
}
REAL_CLASSES: tuple[str, ...] = tuple(REAL_MASS_KDA)


def resample(
    volume: np.ndarray, voxel_in_nm: float, voxel_out_nm: float, resolution_nm: float
) -> np.ndarray:
    """Anti-aliased resampling of a cubic-ish (z, y, x) map to another voxel size.

    The map is first low-passed on its own grid to ``max(resolution, 2 * voxel_out)`` (so nothing
    above the new Nyquist survives), then interpolated (cubic spline) onto the new grid.
    """
    volume = np.asarray(volume, dtype=np.float32)
    cutoff = max(resolution_nm, 2.0 * voxel_out_nm, 2.0 * voxel_in_nm)
    pad = int(np.ceil(cutoff / voxel_in_nm)) + 2
    filtered = lowpass(np.pad(volume, pad), voxel_in_nm, cutoff)
    if np.isclose(voxel_in_nm, voxel_out_nm):
        return filtered
    ratio = voxel_out_nm / voxel_in_nm
    shape_in = np.array(filtered.shape, dtype=np.float64)
    shape_out = np.maximum(np.ceil(shape_in / ratio).astype(int) + 1, 4)
    offset = (shape_in - 1) / 2 - ratio * (shape_out - 1) / 2
    out = ndimage.affine_transform(
        filtered, np.full(3, ratio), offset=offset, output_shape=tuple(shape_out), order=3
    )
    return out.astype(np.float32)


def _read_mrc(
    path: str | os.PathLike[str], voxel_size_angstrom: float | None = None
) -> tuple[np.ndarray, float]:
    try:
        with mrcfile.open(path, permissive=False) as mrc:
            data = np.array(mrc.data, dtype=np.float32)
            voxel_angstrom = float(voxel_size_angstrom or mrc.voxel_size.x)
    except (OSError, ValueError) as exc:
        raise MrcError(f"cannot read density map {path}: {exc}; give a valid MRC volume") from exc
    if data.ndim != 3:
        raise MrcError(f"{path} is not a 3D volume (shape {data.shape}); give a 3D density map")
    if not np.isfinite(data).all():
        raise MrcError(f"{path} has non-finite voxels; fix or regenerate the map")
    if voxel_angstrom <= 0:
        raise MrcError(
            f"{path} has no voxel size in its header; give it (--map-voxel-size) or set it"
        )
    return data, voxel_angstrom / 10.0


def map_from_mrc_file(
    path: str | os.PathLike[str],
    mass_da: float | None = None,
    voxel_size_nm: float = 1.0,
    resolution_nm: float = 4.0,
    name: str | None = None,
    voxel_size_angstrom: float | None = None,
) -> ClassMap:
    """A class map from any MRC density (molecule positive), resampled and low-passed.

    Args:
        path: MRC file with the voxel size in its header.
        mass_da: molecular mass (sets the mask volume at 0.81 Da/A^3). If None it is estimated
            from the volume enclosed at 10% of the maximum of the filtered map.
        voxel_size_nm: target voxel size.
        resolution_nm: low-pass resolution.
        name: class name (default: the file stem).
        voxel_size_angstrom: the map's voxel size (default: its header's).

    Raises:
        MrcError: the file is not a readable 3D MRC volume with a voxel size.
    """
    data, voxel_in_nm = _read_mrc(path, voxel_size_angstrom)
    volume = resample(data, voxel_in_nm, voxel_size_nm, resolution_nm)
    if mass_da is None:
        n_inside = int((volume > 0.1 * volume.max()).sum())
        mass_da = n_inside * voxel_size_nm**3 * 810.0
    stem = os.path.splitext(os.path.basename(os.fspath(path)))[0]
    return finish_map(name or stem, volume, voxel_size_nm, resolution_nm, mass_da, filtered=True)


@functools.lru_cache(maxsize=64)
def load_real(name: str, voxel_size_nm: float, resolution_nm: float) -> ClassMap:
    """One of :data:`REAL_CLASSES` at the given voxel size (cached)."""
    if name not in REAL_MASS_KDA:
        raise InputError(f"unknown real class {name!r}; choose one of {', '.join(REAL_CLASSES)}")
    ref = resources.files("cosnet_index.simulate") / "structures" / f"{name}.mrc"
    with resources.as_file(ref) as path:
        return map_from_mrc_file(
            path, REAL_MASS_KDA[name] * 1000.0, voxel_size_nm, resolution_nm, name
        )
