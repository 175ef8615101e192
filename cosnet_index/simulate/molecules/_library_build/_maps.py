"""Step (6) of the build, per molecule: its stored 1 nm map, its size and its shape class."""

from __future__ import annotations

import numpy as np

from cosnet_index.simulate.molecules._density import _centre_and_trim, splat
from cosnet_index.simulate.molecules._real import resample

__all__ = ["MAP_RESOLUTION_NM", "MAP_VOXEL_NM", "density_map", "geometry"]

MAP_VOXEL_NM = 1.0  # stored maps: 1 nm voxels,
MAP_RESOLUTION_NM = 2.0  # Gaussian low-pass to 2 nm (the loader adds the rest)


def density_map(coords: np.ndarray, atomic_number: np.ndarray) -> np.ndarray:
    """The stored 1 nm map of a molecule: (d, d, d) float32, max 1.

    Atoms splatted with weight Z on a 0.5 nm grid, low-passed to 2 nm (Gaussian) and resampled
    to 1 nm, centre of mass on voxel ``d // 2``, trimmed to the support.
    """
    points_nm = (coords - coords.mean(axis=0)) / 10.0
    fine = splat(points_nm, atomic_number.astype(np.float64), 0.5, pad_nm=2 * MAP_RESOLUTION_NM)
    volume = resample(fine, 0.5, MAP_VOXEL_NM, MAP_RESOLUTION_NM)
    volume = _centre_and_trim(volume)
    return volume / volume.max()


def geometry(coords: np.ndarray, atom_mass: np.ndarray, recipe: str) -> tuple[float, float, str]:
    """(max diameter nm, radius of gyration nm, shape class) of a molecule.

    Shape rule (in this order): helical recipes are ``filament``, lattice patches
    ``membrane-like``; a molecule with no atom within 0.5 Rg of its centre is ``ring`` when flat
    (smallest principal axis < 0.6 x largest) else ``hollow``; flat ones (smallest < 0.45 x middle)
    are ``membrane-like``; long ones (largest > 1.8 x middle) ``elongated``; else ``globular``.
    """
    from scipy.spatial import ConvexHull, cKDTree

    centre = np.average(coords, axis=0, weights=atom_mass)
    rel = coords - centre
    rg = float(np.sqrt(np.average((rel**2).sum(axis=1), weights=atom_mass)))
    hull = coords[ConvexHull(coords).vertices] if len(coords) > 4 else coords
    diff = hull[:, None, :] - hull[None, :, :]
    diameter = float(np.sqrt((diff**2).sum(-1)).max())
    axes = np.sqrt(np.maximum(np.linalg.eigvalsh(np.cov(rel.T)), 0))[::-1]  # largest first
    empty_centre = cKDTree(coords).query(centre, k=1)[0] > 0.5 * rg
    if recipe.startswith("H"):
        shape = "filament"
    elif recipe.startswith("P"):
        shape = "membrane-like"
    elif empty_centre:
        shape = "ring" if axes[2] < 0.6 * axes[0] else "hollow"
    elif axes[2] < 0.45 * axes[1]:
        shape = "membrane-like"
    elif axes[0] > 1.8 * axes[1]:
        shape = "elongated"
    else:
        shape = "globular"
    return diameter / 10.0, rg / 10.0, shape
