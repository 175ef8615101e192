"""Classical candidate detector: multi-scale difference of Gaussians, slab by slab.

For molecules of diameter ``d`` the Laplacian of Gaussian of a 3D ball of radius ``r = d / 2``
peaks at ``sigma = r / sqrt(3)``; the difference of Gaussians ``G(sigma) - G(1.6 sigma)``,
divided by ``0.6``, approximates the scale-normalised ``-sigma^2 LoG`` and so compares across
scales. The response is the maximum over the given diameters. The volume is read in slabs of z
(with a halo wide enough for the filters), block-averaged first when the molecules are many
voxels wide (``bin``: the smallest sigma stays at least 1.5 binned voxels), so memory stays at
the memory map plus one slab. A candidate is a local maximum of the response (cube of the
minimum distance); candidates of the whole volume then go through greedy non-maximum suppression
at ``min_distance``. Its score is a robust z-score of the response (median and MAD of a regular
subsample of the whole volume's response), so a threshold means the same in any tomogram.

What is true and what is derived: the positions are in voxels of the tomogram read (x, y, z,
0-based voxel centres, as coordinate files give them); the score depends on the tomogram's own
noise, not on any model.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
import scipy.ndimage as ndi

from cosnet_index.errors import InputError
from cosnet_index.pick._peaks import local_maxima, non_maximum_suppression

__all__ = [
    "DEFAULT_DIAMETERS_ANGSTROM",
    "DEFAULT_DOG_THRESHOLD",
    "DEFAULT_MIN_DISTANCE_FRACTION",
    "check_diameters",
    "detect_blobs",
    "refine_centres",
]

logger = logging.getLogger(__name__)

DEFAULT_DIAMETERS_ANGSTROM: tuple[float, ...] = (120.0, 170.0, 240.0)
"""Molecule diameters searched when none are given: about 150 kDa to 2 MDa complexes."""

DEFAULT_DOG_THRESHOLD = 4.0
"""Robust z-score a DoG candidate needs (docs/picking.md measures the choice)."""

DEFAULT_MIN_DISTANCE_FRACTION = 0.35
"""Candidates are at least this fraction of the smallest diameter apart (docs/picking.md)."""

_K = 1.6  # ratio of the two Gaussians of a DoG
_TRUNCATE = 3.0  # Gaussian kernels cut at 3 sigma


def check_diameters(diameters_angstrom: Sequence[float] | None) -> tuple[float, ...]:
    """The diameters to search (the default when None), validated.

    Raises:
        InputError: an empty list or a diameter that is not a positive number.
    """
    if diameters_angstrom is None:
        return DEFAULT_DIAMETERS_ANGSTROM
    values = tuple(float(d) for d in diameters_angstrom)
    if not values or not all(math.isfinite(d) and d > 0 for d in values):
        raise InputError(
            f"--diameter must be positive molecule diameters in angstrom, got {values}; "
            "e.g. --diameter 150 --diameter 250"
        )
    return tuple(sorted(set(values)))


def _bin(block: np.ndarray, factor: int) -> np.ndarray:
    """Block-average ``(z, y, x)`` by ``factor`` (sizes already multiples of it)."""
    if factor == 1:
        return block
    z, y, x = (s // factor for s in block.shape)
    return block.reshape(z, factor, y, factor, x, factor).mean(axis=(1, 3, 5))


def _dog(block: np.ndarray, sigma: float) -> np.ndarray:
    """Scale-normalised DoG at ``sigma`` (the pair's geometric mean scale)."""
    narrow = ndi.gaussian_filter(block, sigma / _K**0.5, mode="reflect", truncate=_TRUNCATE)
    wide = ndi.gaussian_filter(block, sigma * _K**0.5, mode="reflect", truncate=_TRUNCATE)
    return (narrow - wide) / (_K - 1.0)


def _robust_spread(values: np.ndarray) -> float:
    median = float(np.median(values))
    return 1.4826 * float(np.median(np.abs(values - median))) or float(values.std()) or 1.0


def _response(
    block: np.ndarray, sigmas: Sequence[float], spreads: Sequence[float]
) -> tuple[np.ndarray, np.ndarray]:
    """DoG in units of each scale's noise spread, max over scales, and the winning scale."""
    best = np.full(block.shape, -np.inf, dtype=np.float32)
    which = np.zeros(block.shape, dtype=np.int8)
    for s, (sigma, spread) in enumerate(zip(sigmas, spreads, strict=True)):
        dog = _dog(block, sigma) / spread
        better = dog > best
        best[better] = dog[better]
        which[better] = s
    return best, which


def refine_centres(
    volume: np.ndarray,
    xyz: np.ndarray,
    diameter_voxels: float,
    sign: float = -1.0,
    *,
    sigma: float = 2.0,
    background: bool = True,
    iterations: int = 5,
) -> np.ndarray:
    """Move each ``(x, y, z)`` to the centre of mass of the molecule density in a sphere around it.

    The density is ``sign * volume`` (molecules dark: ``sign=-1``), smoothed by a Gaussian of
    ``sigma`` voxels (0: not smoothed), minus its median in the region read (``background``;
    leave it out for a band-passed volume), clipped at 0, inside a sphere of
    ``diameter_voxels / 2`` around the current centre; repeated until it moves less than
    0.25 voxel (at most ``iterations`` times). Only a small cube around each point is read.

    Returns:
        ``(n, 3)`` refined positions (unchanged where the sphere holds no density).
    """
    out = np.asarray(xyz, dtype=np.float64).reshape(-1, 3).copy()
    shape = np.asarray(volume.shape)
    radius = max(1.0, diameter_voxels / 2.0)
    pad = math.ceil(radius + 2 * sigma)
    for k in range(len(out)):
        for _ in range(iterations):
            centre = np.round(out[k][::-1]).astype(np.int64)  # z, y, x
            lo, hi = np.maximum(centre - pad, 0), np.minimum(centre + pad + 1, shape)
            cube = sign * np.asarray(
                volume[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]], dtype=np.float32
            )
            if sigma > 0:
                cube = ndi.gaussian_filter(cube, sigma, mode="nearest")
            if background:
                cube = cube - np.median(cube)
            z, y, x = np.ogrid[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
            cx, cy, cz = out[k]
            inside = (x - cx) ** 2 + (y - cy) ** 2 + (z - cz) ** 2 <= radius**2
            weight = np.where(inside, np.clip(cube, 0.0, None), 0.0)
            total = float(weight.sum())
            if total <= 0:
                break
            new = (
                np.array(
                    [
                        (weight.sum(axis=(0, 1)) * x[0, 0]).sum(),
                        (weight.sum(axis=(0, 2)) * y[0, :, 0]).sum(),
                        (weight.sum(axis=(1, 2)) * z[:, 0, 0]).sum(),
                    ]
                )
                / total
            )
            moved = float(np.abs(new - out[k]).max())
            out[k] = new
            if moved < 0.25:
                break
    return out


def _probe_centres(n: int) -> list[int]:
    return sorted({n // 4, n // 2, (3 * n) // 4})


def detect_blobs(
    volume: np.ndarray,
    voxel_size_angstrom: float,
    diameters_angstrom: Sequence[float] | None = None,
    *,
    min_distance_angstrom: float | None = None,
    threshold: float = DEFAULT_DOG_THRESHOLD,
    invert_contrast: bool = False,
    slab: int = 48,
    max_candidates: int | None = None,
    refine: bool = True,
) -> pd.DataFrame:
    """Candidate molecule centres of a ``(z, y, x)`` volume by multi-scale DoG (module docstring).

    Args:
        volume: ``(z, y, x)`` array, typically a read-only memory map (read slab by slab).
        voxel_size_angstrom: the volume's voxel size.
        diameters_angstrom: molecule diameters to search (default
            :data:`DEFAULT_DIAMETERS_ANGSTROM`).
        min_distance_angstrom: two candidates are at least this far apart (default
            ``DEFAULT_MIN_DISTANCE_FRACTION`` of the smallest diameter).
        threshold: robust z-score a candidate needs (``-inf`` keeps every local maximum).
        invert_contrast: molecules are bright (default: dark on bright ice).
        slab: binned z-slices processed at a time (plus the filters' halo).
        max_candidates: keep at most this many, best first (None: no cap).
        refine: re-centre every peak once per diameter (:func:`refine_centres`) before the
            suppression; ``pick_diameter_angstrom`` is then the diameter that centred it.

    Returns:
        Columns ``x, y, z`` (voxels of ``volume``), ``pick_score`` (robust z-score) and
        ``pick_diameter_angstrom`` (the diameter whose scale responded most), best score first.

    Raises:
        InputError: bad diameters, voxel size, slab or a volume smaller than the filters.
    """
    diameters = check_diameters(diameters_angstrom)
    if not (math.isfinite(voxel_size_angstrom) and voxel_size_angstrom > 0):
        raise InputError(f"voxel size must be positive angstrom, got {voxel_size_angstrom}")
    if slab < 1:
        raise InputError(f"slab must be at least 1 slice, got {slab}")
    min_distance = (
        DEFAULT_MIN_DISTANCE_FRACTION * diameters[0]
        if min_distance_angstrom is None
        else min_distance_angstrom
    )
    if not (math.isfinite(min_distance) and min_distance >= 0):
        raise InputError(f"--min-distance must be >= 0 angstrom, got {min_distance}")
    sigmas = [d / 2.0 / math.sqrt(3.0) / voxel_size_angstrom for d in diameters]  # voxels
    factor = max(1, int(min(sigmas) / 1.5))
    shape = tuple(int(s) // factor for s in volume.shape)
    if min(shape) < 3:
        raise InputError(
            f"the volume {volume.shape} is too small for molecules of {diameters[0]} A at "
            f"{voxel_size_angstrom} A voxels; give smaller --diameter values"
        )
    sigmas_b = [s / factor for s in sigmas]
    peak_distance = 0.5 * diameters[0] / voxel_size_angstrom  # voxels between raw peaks
    radius = max(1, int(peak_distance / factor))
    # refinement works on a band-passed copy binned like the response: smoothed at 2 voxels,
    # minus the background at the largest radius (1 / bin^3 of the volume's voxels)
    band_sigmas = (2.0 / factor, 0.5 * diameters[-1] / voxel_size_angstrom / factor)
    widest = max(_K**0.5 * max(sigmas_b), band_sigmas[1] if refine else 0.0)
    halo = math.ceil(_TRUNCATE * widest) + radius + 1
    sign = 1.0 if invert_contrast else -1.0
    nzb, nyb, nxb = shape

    def read(lo: int, hi: int) -> np.ndarray:
        raw = volume[lo * factor : hi * factor, : nyb * factor, : nxb * factor]
        return _bin(sign * np.asarray(raw, dtype=np.float32), factor)  # (hi - lo, nyb, nxb)

    # each scale's noise spread, from three fixed slabs (independent of ``slab``): small scales
    # respond more to noise, so scales compete in units of their own spread
    width = 8 + 2 * halo
    spreads = []
    probes = [read(max(0, c - width // 2), min(nzb, c + width // 2)) for c in _probe_centres(nzb)]
    for sigma in sigmas_b:
        spreads.append(_robust_spread(np.concatenate([_dog(p, sigma).ravel() for p in probes])))
    peaks, values, scales, samples = [], [], [], []
    band = np.zeros(shape, dtype=np.float32) if refine else None
    for z0 in range(0, nzb, slab):
        lo, hi = max(0, z0 - halo), min(nzb, z0 + slab + halo)
        block = read(lo, hi)
        response, which = _response(block, sigmas_b, spreads)
        core = (z0 - lo, min(z0 + slab, nzb) - lo)
        if band is not None:
            fine, coarse = (
                ndi.gaussian_filter(block, s, mode="reflect", truncate=_TRUNCATE)
                for s in band_sigmas
            )
            band[z0 : z0 + core[1] - core[0]] = (fine - coarse)[core[0] : core[1]]
        zyx, value = local_maxima(response, radius, core)
        peaks.append(zyx + np.array([lo, 0, 0]))
        values.append(value)
        scales.append(which[tuple(zyx.T)])
        samples.append(response[core[0] + z0 % 2 : core[1] : 2, ::3, ::3].ravel())  # even z
    zyx = np.concatenate(peaks)
    value = np.concatenate(values)
    scale = np.concatenate(scales).astype(np.int64)
    sample = np.concatenate(samples).astype(np.float64)
    score = (value - float(np.median(sample))) / _robust_spread(sample)
    xyz = zyx[:, ::-1] * factor + (factor - 1) / 2.0  # binned index -> tomogram voxel centre
    # the filters reflect at the faces: maxima within a radius of a face are artefacts there
    border = 0.5 * diameters[0] / voxel_size_angstrom
    upper = np.asarray(volume.shape[::-1], dtype=np.float64) - 1.0 - border
    keep = (score >= threshold) & np.all((xyz >= border) & (xyz <= upper), axis=1)
    xyz, score, scale = xyz[keep], score[keep], scale[keep]
    if refine:
        first = non_maximum_suppression(xyz, score, peak_distance)
        xyz, score, scale = xyz[first], score[first], scale[first]
        # every peak is re-centred once per diameter: a hollow or ring-shaped molecule peaks on
        # its wall at small scales and is centred by the largest diameter's sphere
        assert band is not None
        binned = (xyz - (factor - 1) / 2.0) / factor
        d_binned = [d / voxel_size_angstrom / factor for d in diameters]
        moved = [refine_centres(band, binned, d, 1.0, sigma=0, background=False) for d in d_binned]
        xyz = np.concatenate(moved) * factor + (factor - 1) / 2.0
        score = np.tile(score, len(diameters))
        scale = np.repeat(np.arange(len(diameters)), len(first))
    order = non_maximum_suppression(xyz, score, min_distance / voxel_size_angstrom)
    if max_candidates is not None:
        order = order[: int(max_candidates)]
    logger.info(
        "DoG: %d candidates (bin %d, diameters %s A, threshold %.2f)",
        len(order),
        factor,
        ", ".join(f"{d:g}" for d in diameters),
        threshold,
    )
    return pd.DataFrame(
        {
            "x": np.round(xyz[order, 0], 2),
            "y": np.round(xyz[order, 1], 2),
            "z": np.round(xyz[order, 2], 2),
            "pick_score": score[order].astype(np.float32),
            "pick_diameter_angstrom": np.asarray(diameters, dtype=np.float32)[scale[order]],
        }
    )
