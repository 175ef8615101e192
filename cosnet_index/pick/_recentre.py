"""Re-centring of DoG peaks (``detect_blobs(refine=True)``, module docstring of
:mod:`cosnet_index.pick.blobs`): centre of mass in a sphere of each diameter, how well one filled
sphere explains the density there, and which centres a peak keeps."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import scipy.ndimage as ndi

from cosnet_index.pick._peaks import robust_spread

__all__ = [
    "GROWTH",
    "centres_kept",
    "grown_diameters",
    "recentre_peaks",
    "refine_centres",
    "sample_grid",
    "sphere_fit",
]

_SHELL = 1.5  # the sphere-contrast shell's outer radius over the sphere's
_FIT_SIGNIFICANT = 2.0  # sphere fit (robust z) of a large re-centred copy kept beside the best
_CENTRING_STEP = 1.5  # the second diameter centres a blob when at most this times the first
# spheres beyond the largest diameter (factors of it) that may centre a molecule larger than it
GROWTH = (1.2, 1.44)


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


def _sphere_contrast(band: np.ndarray, xyz: np.ndarray, diameter_voxels: float) -> np.ndarray:
    """Mean of ``band`` in a sphere of ``diameter_voxels`` around each ``(x, y, z)`` minus its
    mean in the shell out to 1.5 times that radius: how well one ball of that diameter there
    explains the density (a filled-sphere template, normalised per voxel)."""
    radius = max(1.0, diameter_voxels / 2.0)
    outer = _SHELL * radius
    pad = math.ceil(outer)
    shape = np.asarray(band.shape)
    out = np.zeros(len(xyz))
    for k, (cx, cy, cz) in enumerate(np.asarray(xyz, dtype=np.float64).reshape(-1, 3)):
        centre = np.round([cz, cy, cx]).astype(np.int64)
        lo, hi = np.maximum(centre - pad, 0), np.minimum(centre + pad + 1, shape)
        cube = band[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
        z, y, x = np.ogrid[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
        r2 = (x - cx) ** 2 + (y - cy) ** 2 + (z - cz) ** 2
        inside, shell = r2 <= radius**2, (r2 > radius**2) & (r2 <= outer**2)
        if inside.any() and shell.any():
            out[k] = float(cube[inside].mean()) - float(cube[shell].mean())
    return out


def sphere_fit(
    band: np.ndarray, centres: Sequence[np.ndarray], diameters_voxels: Sequence[float]
) -> np.ndarray:
    """How well one filled sphere explains the density around centres, per diameter.

    The sphere contrast (:func:`_sphere_contrast`) of ``centres[i]`` at ``diameters_voxels[i]``,
    as a robust z-score against the same contrast on a regular grid of about 512 points of
    ``band`` (the tomogram's own background, clutter and crowding at that diameter).

    Args:
        band: ``(z, y, x)`` band-passed density, molecules positive.
        centres: per diameter, ``(n, 3)`` positions ``(x, y, z)`` in voxels of ``band``.
        diameters_voxels: the sphere diameters, in voxels of ``band``.

    Returns:
        ``(len(diameters_voxels), n)`` z-scores.
    """
    grid = sample_grid(band.shape)
    out = []
    for xyz, diameter in zip(centres, diameters_voxels, strict=True):
        reference = _sphere_contrast(band, grid, diameter)
        spread = robust_spread(reference)
        out.append((_sphere_contrast(band, xyz, diameter) - np.median(reference)) / spread)
    return np.stack(out).reshape(len(diameters_voxels), -1)


def centres_kept(
    fit: np.ndarray, strayed: np.ndarray | None = None, centring: int | None = None
) -> np.ndarray:
    """``(diameters, peaks)`` mask of the re-centred copies kept (module docstring).

    Per peak: the centre of the second-smallest diameter (the smallest when it is the only
    one): the blob the peak sits on, centred by a sphere one step larger than the smallest
    molecule so that the lobes of a two-lobed or elongated small molecule converge on its
    centre, where the smallest sphere stays on the lobe it started on (docs/picking.md measures
    both); the smallest diameter's centre instead where that larger sphere ``strayed`` off the
    peak's blob (pulled into a crowd of neighbours); and the centre of the largest diameter above
    it whose sphere fit is at least ``_FIT_SIGNIFICANT`` (the molecule the peak is part of: a
    hollow shell, a ring, a large complex), where there is one, and beside it the centre of the
    best-fitting diameter above the blob's where that is another one.

    Args:
        fit: ``(diameters, peaks)`` sphere fits (:func:`sphere_fit`).
        strayed: ``(peaks,)`` the second-smallest diameter's centre moved further from the peak
            than the smallest diameter's radius (None: nowhere).
        centring: the diameter (index) that centres the blob (None: the second-smallest, or
            the only one); 0 keeps the smallest sphere's centre.
    """
    n_diameters, n = fit.shape
    columns = np.arange(n)
    if centring is None:
        centring = min(1, n_diameters - 1)
    keep = np.zeros(fit.shape, dtype=bool)
    keep[centring] = True
    if strayed is not None and centring > 0:
        keep[centring] &= ~strayed
        keep[0] = strayed
    significant = fit >= _FIT_SIGNIFICANT
    significant[: centring + 1] = False
    has = significant.any(axis=0)
    largest = n_diameters - 1 - np.argmax(significant[::-1], axis=0)
    keep[largest[has], columns[has]] = True
    # and the large diameter that fits best, where that is another (a ring or a compact complex
    # between two diameters: the largest significant sphere reaches past it)
    if n_diameters > centring + 1:
        best = centring + 1 + np.argmax(fit[centring + 1 :], axis=0)
        keep[best[has], columns[has]] = True
    return keep


def grown_diameters(diameters: Sequence[float], grow: bool = True) -> list[float]:
    """The diameters :func:`recentre_peaks` centres with: ``diameters`` and, with ``grow`` and
    a diameter above the one that centres the blobs, the largest times each :data:`GROWTH`."""
    out = [float(d) for d in diameters]
    if grow and len(out) > 1 + _centring(out):
        out += [out[-1] * g for g in GROWTH]
    return out


def _centring(diameters: Sequence[float]) -> int:
    """The diameter (index) that centres a blob: the next one when it is a small step up (the
    default 170 after 120 A); a far larger one (--diameter 100 --diameter 290) would reach
    across a crowd."""
    if len(diameters) > 1 and diameters[1] <= _CENTRING_STEP * diameters[0]:
        return 1
    return 0


def recentre_peaks(
    band: np.ndarray, peaks: np.ndarray, diameters_voxels: Sequence[float], grow: bool = True
) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """Re-centre each peak once per diameter and choose the centres it keeps.

    A hollow or ring-shaped molecule peaks on its wall at small scales and is centred by a
    sphere that holds all of it; each centre is scored by how well one filled sphere of that
    diameter explains the density there (:func:`sphere_fit`), and the peak keeps two
    (:func:`centres_kept`). A molecule larger than the largest diameter (a 35 nm capsid whose
    voxel size is 15% off) is centred by a larger sphere (:func:`grown_diameters`) where that
    fits it better than every large diameter searched (``grow``; the detector grows the default
    diameters, not a user's: who gives ``--diameter`` knows the sizes).

    Args:
        band: ``(z, y, x)`` band-passed density, molecules positive.
        peaks: ``(n, 3)`` positions ``(x, y, z)`` in voxels of ``band``.
        diameters_voxels: ascending sphere diameters, in voxels of ``band``.

    Returns:
        ``(centres, keep, fit)``: per diameter of :func:`grown_diameters` the ``(n, 3)``
        centres; the ``(diameters, n)`` mask of those kept; ``(diameters, n)`` sphere fits for
        the suppression, where a blob's own centre is judged by the better of the two smallest
        spheres.
    """
    searched = list(diameters_voxels)
    moved = [refine_centres(band, peaks, d, 1.0, sigma=0, background=False) for d in searched]
    fit = sphere_fit(band, moved, searched)  # (diameters, peaks)
    centring = _centring(searched)
    strayed = None
    if centring:
        strayed = np.linalg.norm(moved[1] - peaks, axis=1) > 0.5 * searched[0]
    keep = centres_kept(fit, strayed, centring)
    blob_fit = fit.copy()
    blob_fit[centring] = fit[: centring + 1].max(axis=0)
    grown = grown_diameters(searched, grow)[len(searched) :]
    if not grown:
        return moved, keep, blob_fit
    # a molecule that outgrows the largest sphere is one that sphere fits significantly (its
    # centre is kept): only those centres are grown, each distinct one once (the wall peaks of a
    # shell converge on one centre); a larger sphere takes the molecule's centre where it fits
    # better than every large diameter searched
    n = len(peaks)
    grown_moved = [moved[-1].copy() for _ in grown]
    grown_fit = np.full((len(grown), n), -np.inf)
    outgrown = np.flatnonzero(keep[-1])
    if len(outgrown):
        starts, inverse = np.unique(np.round(moved[-1][outgrown]), axis=0, return_inverse=True)
        centres = [refine_centres(band, starts, d, 1.0, sigma=0, background=False) for d in grown]
        scores = sphere_fit(band, centres, grown)
        for k in range(len(grown)):
            grown_moved[k][outgrown] = centres[k][inverse.ravel()]
            grown_fit[k, outgrown] = scores[k, inverse.ravel()]
    best = np.argmax(grown_fit, axis=0)
    columns = np.arange(n)
    wins = (grown_fit[best, columns] >= _FIT_SIGNIFICANT) & (
        grown_fit[best, columns] > fit[centring + 1 :].max(axis=0)
    )
    keep = np.concatenate([keep, np.zeros((len(grown), n), dtype=bool)])
    keep[centring + 1 : len(searched), wins] = False
    keep[len(searched) + best[wins], columns[wins]] = True
    return moved + grown_moved, keep, np.concatenate([blob_fit, grown_fit])


def sample_grid(shape_zyx: Sequence[int], n: int = 512) -> np.ndarray:
    """About ``n`` points of a regular grid over a volume, ``(n, 3)`` x, y, z."""
    step = max(1.0, (float(np.prod(shape_zyx)) / n) ** (1.0 / 3.0))
    axes = [np.arange(step / 2.0, s, step) for s in shape_zyx]
    z, y, x = np.meshgrid(*axes, indexing="ij")
    return np.stack([x.ravel(), y.ravel(), z.ravel()], axis=1)
