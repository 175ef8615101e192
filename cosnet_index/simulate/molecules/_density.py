"""Shared steps that turn raw densities into simulator-ready class maps.

Every class map, whatever its source, goes through :func:`finish_map`: low-pass to the
simulator's resolution, centre its centre of mass on voxel ``d // 2``, trim to the support, scale
so that the mean density inside the molecular volume is 1, and find the mask threshold that
encloses the molecular volume expected from the mass (0.81 Da/A^3, i.e. 810 Da/nm^3, the mean
density of protein, 1.35 g/cm^3).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

__all__ = ["DALTON_PER_NM3", "DALTON_PER_RESIDUE", "ClassMap", "finish_map", "lowpass", "splat"]

DALTON_PER_NM3 = 810.0  # protein: 1.35 g/cm^3 = 0.81 Da/A^3
DALTON_PER_RESIDUE = 110.0  # mean residue mass; one procedural pseudo-atom = one residue


@dataclass(frozen=True, eq=False)
class ClassMap:
    """A simulator-ready density map of one class.

    Attributes:
        name: class name.
        density: (d, d, d) float32, positive density, centre of mass at voxel ``d // 2``,
            mean 1 inside the molecular volume. Read-only.
        threshold: mask rule: voxels of the (posed, noise-free) density above this value.
        radius_voxels: largest distance of a mask voxel from the centre (+1 voxel).
        mass_da: mass in dalton.
        voxel_size_nm: voxel size of ``density``.
    """

    name: str
    density: np.ndarray
    threshold: float
    radius_voxels: float
    mass_da: float
    voxel_size_nm: float


def lowpass(volume: np.ndarray, voxel_size_nm: float, resolution_nm: float) -> np.ndarray:
    """Gaussian low-pass to ``resolution_nm`` (UCSF Chimera ``molmap`` convention).

    Real-space sigma = 0.225 x resolution, i.e. the Fourier amplitude falls to 1/e at
    ``1 / resolution``. A Gaussian keeps positive densities positive (no ringing).
    """
    shape = volume.shape
    freqs = np.meshgrid(
        np.fft.fftfreq(shape[0], voxel_size_nm),
        np.fft.fftfreq(shape[1], voxel_size_nm),
        np.fft.rfftfreq(shape[2], voxel_size_nm),
        indexing="ij",
        sparse=True,
    )
    k2 = sum(f**2 for f in freqs)  # 1/nm^2
    sigma_nm = 0.225 * resolution_nm
    filt = np.exp(-2.0 * np.pi**2 * sigma_nm**2 * k2)
    out = np.fft.irfftn(np.fft.rfftn(volume) * filt, s=shape, axes=(0, 1, 2))
    return out.astype(np.float32)


def splat(
    points_nm: np.ndarray, weights: np.ndarray, voxel_size_nm: float, pad_nm: float
) -> np.ndarray:
    """Trilinear splat of points (x, y, z in nm, around the origin) into a cubic (z, y, x) grid."""
    points = np.asarray(points_nm, dtype=np.float64) / voxel_size_nm
    extent = np.abs(points).max() if len(points) else 1.0
    half = int(np.ceil(extent + pad_nm / voxel_size_nm)) + 2
    size = 2 * half + 1
    idx = points[:, ::-1] + half  # z, y, x continuous index
    base = np.floor(idx).astype(np.int64)
    frac = idx - base
    grid = np.zeros(size**3, dtype=np.float64)
    for dz in (0, 1):
        wz = frac[:, 0] if dz else 1 - frac[:, 0]
        for dy in (0, 1):
            wy = frac[:, 1] if dy else 1 - frac[:, 1]
            for dx in (0, 1):
                wx = frac[:, 2] if dx else 1 - frac[:, 2]
                flat = ((base[:, 0] + dz) * size + base[:, 1] + dy) * size + base[:, 2] + dx
                grid += np.bincount(flat, weights=weights * wz * wy * wx, minlength=size**3)
    return grid.reshape(size, size, size).astype(np.float32)


def _centre_and_trim(volume: np.ndarray) -> np.ndarray:
    """Shift the centre of mass to voxel ``d // 2`` of a cube just holding the support."""
    positive = np.clip(volume, 0, None)
    com = np.array(ndimage.center_of_mass(positive))  # z, y, x
    support = np.abs(volume) > 1e-2 * np.abs(volume).max()
    coords = np.argwhere(support)
    half = int(np.ceil(np.abs(coords - com).max())) + 1
    size = 2 * half + 1
    # output index o maps to input index o - half + com (pure translation, cubic interpolation)
    offset = com - half
    out = ndimage.affine_transform(
        volume, np.eye(3), offset=offset, output_shape=(size, size, size), order=3, mode="constant"
    )
    return out.astype(np.float32)


def finish_map(
    name: str,
    volume: np.ndarray,
    voxel_size_nm: float,
    resolution_nm: float,
    mass_da: float,
    filtered: bool = False,
) -> ClassMap:
    """Low-pass (unless ``filtered``), centre, trim, normalise a map; derive its mask rule."""
    if not filtered:
        padded = np.pad(volume, int(np.ceil(resolution_nm / voxel_size_nm)) + 2)
        volume = lowpass(padded, voxel_size_nm, resolution_nm)
    filtered_volume = volume
    density = _centre_and_trim(filtered_volume)
    n_inside = max(1, round(mass_da / DALTON_PER_NM3 / voxel_size_nm**3))
    flat = np.sort(density.ravel())[::-1]
    n_inside = min(n_inside, flat.size - 1)
    threshold = float(0.5 * (flat[n_inside - 1] + flat[n_inside]))
    inside = density > threshold
    scale = float(density[inside].mean())
    density = density / scale
    threshold /= scale
    centre = density.shape[0] // 2
    coords = np.argwhere(inside)
    radius = float(np.sqrt(((coords - centre) ** 2).sum(axis=1)).max()) + 1.0
    density.setflags(write=False)
    return ClassMap(name, density, threshold, radius, float(mass_da), float(voxel_size_nm))
