"""The molecular volume of a class, from a mass, a density map or an atomic model.

``segment`` keeps each hit's most probable voxels up to its class's volume (the mask prior,
``cosnet_index.segment.volume``), so a class that knows its volume gets masks of the molecule's
size without any flag. Where the volume comes from (``class_catalog.VOLUME_SOURCES``):

- a mass (``--mass-kda``; ``map-mass`` when given with a map): ``mass / 0.81 Da/A^3``, the
  project's mass-based contour (``geometry.mass_kda_to_volume_nm3``);
- an atomic model (``--model``): the sum of its atomic masses (waters removed; one hydrogen per
  heavy atom added when the file has none, as the real-molecule library counts them), first
  biological assembly when the file defines one, as ``simulate.map_from_atomic_model`` builds it;
- a density map (``--map``) alone: the volume it encloses at its contour. ``--contour LEVEL``
  (e.g. EMDB's recommended level; MRC headers record neither a contour nor a mass) counts the
  map's own voxels above LEVEL. Without it the contour is estimated: the map is low-passed to
  ``ESTIMATE_RESOLUTION_NM`` and the contour is ``ESTIMATE_FRACTION`` of the median density
  inside it (iterated from 10% of the maximum: a fixed point). On the project's ten PDB-derived
  maps this encloses 0.83-1.18 of the mass-based volume (median 1.03); on the 270 library maps
  0.80-1.39 (10th-90th percentile, median 0.99) (docs/segmentation.md); a fraction of the
  maximum alone (the simulator's rule for a map without a mass) gives 2.3-3.8.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from cosnet_index.errors import InputError, MrcError
from cosnet_index.geometry import mass_kda_to_volume_nm3
from cosnet_index.store.class_catalog import ClassVolume

__all__ = [
    "ESTIMATE_FRACTION",
    "ESTIMATE_RESOLUTION_NM",
    "estimated_contour",
    "model_mass_kda",
    "volume_of_map",
    "volume_of_mass",
    "volume_of_model",
]

log = logging.getLogger(__name__)

ESTIMATE_RESOLUTION_NM = 2.0
"""The map is low-passed to this before its contour is estimated (finer detail is dropped)."""
ESTIMATE_FRACTION = 0.7
"""The estimated contour is this fraction of the median density above it."""
_FINEST_GRID_NM = 0.5  # finer maps are resampled to this before the estimate (memory)


def volume_of_mass(mass_kda: float, source: str = "mass-kda", note: str = "") -> ClassVolume:
    """The class volume of a molecular mass: ``mass / 0.81 Da/A^3``.

    Raises:
        InputError: a mass that is not a positive number.
    """
    try:
        mass = float(mass_kda)
    except (TypeError, ValueError):
        mass = float("nan")
    if not (np.isfinite(mass) and mass > 0):
        raise InputError(f"--mass-kda must be a positive number of kDa, got {mass_kda!r}")
    return ClassVolume(mass_kda_to_volume_nm3(mass), source, mass, note or f"{mass:g} kDa")


def estimated_contour(density: np.ndarray) -> float:
    """The contour ``ESTIMATE_FRACTION`` x the median density above it (a fixed point).

    ``density``: a low-passed map, molecule positive. Starts at 10% of the maximum; each step
    sets the contour to the fraction of the median of the voxels above the current one.
    """
    top = float(density.max())
    level = 0.1 * top
    for _ in range(100):
        inside = density[density > level]
        if inside.size == 0:
            break
        new = ESTIMATE_FRACTION * float(np.median(inside))
        if abs(new - level) <= 1e-6 * top:
            return new
        level = new
    return level


def volume_of_map(
    path: str | os.PathLike[str],
    *,
    contour: float | None = None,
    mass_kda: float | None = None,
    voxel_size_angstrom: float | None = None,
) -> ClassVolume:
    """The class volume of a density map (molecule positive, as EMDB writes them).

    Args:
        path: the MRC map.
        contour: the map's contour level in its own units (EMDB's recommended level): the volume
            is its voxels above it. Default: estimated (module docstring).
        mass_kda: the molecule's mass: the volume is ``mass / 0.81 Da/A^3`` (``map-mass``);
            the map is not read.
        voxel_size_angstrom: the map's voxel size when its header's is wrong or missing.

    Raises:
        InputError: a bad mass, a contour and a mass together, a contour that encloses nothing.
        MrcError: not a readable 3D MRC volume with a voxel size, or non-finite voxels.
    """
    if mass_kda is not None:
        if contour is not None:
            raise InputError(
                "give the map's --contour or its --mass-kda, not both (the mass is the better "
                "guide: it sets the volume directly)"
            )
        return volume_of_mass(mass_kda, "map-mass", f"{float(mass_kda):g} kDa given with the map")
    from cosnet_index.io import check_finite, open_tomogram

    if voxel_size_angstrom is not None and not voxel_size_angstrom > 0:
        raise InputError(f"--map-voxel-size must be > 0 A, got {voxel_size_angstrom}")
    if voxel_size_angstrom is None and _header_voxel_angstrom(path) == 0.0:
        raise MrcError(f"{path} has no voxel size in its header; give it with --map-voxel-size")
    with open_tomogram(path, voxel_size_angstrom=voxel_size_angstrom) as volume:
        check_finite(volume)
        voxel_nm = volume.voxel_size_angstrom / 10.0
        if contour is None:
            data = np.array(volume.data, dtype=np.float32)  # a copy: the map closes next
        else:
            voxels = int((volume.data > contour).sum())  # the map's own voxels, unfiltered
            top = float(volume.data.max())
    if contour is None:
        volume_nm3, note = _estimated_volume_nm3(data, voxel_nm, path)
    elif voxels == 0:
        raise InputError(
            f"contour {contour:g} encloses no voxel of {path} (its maximum is {top:g}); give the "
            "level in the map's own units, or leave --contour out to estimate it"
        )
    else:
        volume_nm3, note = voxels * voxel_nm**3, f"contour {contour:g} given"
    log.info("map %s: %.0f nm^3 at its contour (%s)", path, volume_nm3, note)
    return ClassVolume(volume_nm3, "map-contour", None, note)


def _estimated_volume_nm3(
    data: np.ndarray, voxel_nm: float, path: str | os.PathLike[str]
) -> tuple[float, str]:
    """The volume above :func:`estimated_contour` of the map low-passed to 2 nm, and a note."""
    from cosnet_index.simulate.molecules._real import resample

    grid_nm = max(voxel_nm, _FINEST_GRID_NM)
    smooth = resample(data, voxel_nm, grid_nm, ESTIMATE_RESOLUTION_NM)  # low-passed
    if not float(smooth.max()) > 0:
        raise InputError(f"{path} holds no positive density; give a map with the molecule positive")
    voxels = int((smooth > estimated_contour(smooth)).sum())
    note = (
        f"contour estimated: {ESTIMATE_FRACTION:g} x the median density inside, map low-passed "
        f"to {ESTIMATE_RESOLUTION_NM:g} nm"
    )
    return voxels * grid_nm**3, note


def _header_voxel_angstrom(path: str | os.PathLike[str]) -> float | None:
    """The header's voxel size (0.0: none recorded), or None when the header cannot be read
    (``open_tomogram`` then says why)."""
    import mrcfile

    try:
        with mrcfile.open(path, header_only=True, permissive=True) as mrc:
            voxel = float(mrc.voxel_size.x)
    except (OSError, ValueError, EOFError):
        return None
    return voxel if np.isfinite(voxel) and voxel > 0 else 0.0


def model_mass_kda(path: str | os.PathLike[str], assembly: bool = True) -> float:
    """The mass of an atomic model in kDa: the sum of its atomic masses.

    Waters are removed; a model without hydrogens gets 1.008 Da per heavy atom (the library's
    rule); with ``assembly`` the first biological assembly is built when the file defines one.

    Raises:
        InputError: gemmi is not installed, or the file cannot be read or has no atoms.
    """
    from cosnet_index.simulate.molecules.atomic import read_atomic_model

    path = Path(path)
    model = read_atomic_model(path, assembly, hydrogens=True)
    heavy = hydrogens = 0
    mass_da = 0.0
    for chain in model:
        for residue in chain:
            for atom in residue:
                mass_da += atom.element.weight * atom.occ
                if atom.element.is_hydrogen:
                    hydrogens += 1
                else:
                    heavy += 1
    if heavy == 0:
        raise InputError(f"{path} has no atoms (after removing waters)")
    if hydrogens == 0:
        mass_da += 1.008 * heavy
    return mass_da / 1000.0


def volume_of_model(path: str | os.PathLike[str]) -> ClassVolume:
    """The class volume of an atomic model: its mass (:func:`model_mass_kda`) / 0.81 Da/A^3.

    Raises:
        InputError: see :func:`model_mass_kda`.
    """
    mass = model_mass_kda(path)
    return volume_of_mass(mass, "atomic-model", f"{mass:.1f} kDa, sum of the atomic masses")
