"""Scale groups of the DoG detector (:func:`scale_groups`, module docstring of
:mod:`cosnet_index.pick.blobs`): which diameters are computed together at which binning, and the
filters each group runs on a slab."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.ndimage as ndi

from cosnet_index.pick._peaks import local_maxima

__all__ = ["ScaleGroup", "scale_groups"]

_K = 1.6  # ratio of the two Gaussians of a DoG
_TRUNCATE = 3.0  # Gaussian kernels cut at 3 sigma
_OCTAVE = 2.0  # a scale group spans diameters below this ratio to its smallest
_MIN_SIGMA_BINNED = 1.5  # a group's smallest sigma in binned voxels, at least


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


def _wide_smooth(volume: np.ndarray, sigma: float) -> np.ndarray:
    """A Gaussian of a large ``sigma`` approximated by three box filters (their variance is
    ``sigma^2``); the cost does not grow with ``sigma``."""
    width = max(1, round(math.sqrt(4.0 * sigma**2 + 1.0)))
    out = volume
    for _ in range(3):
        out = ndi.uniform_filter(out, size=width, mode="reflect")
    return out


def _scale_peaks(
    block: np.ndarray,
    sigmas: Sequence[float],
    spreads: Sequence[float],
    radius: int,
    core: tuple[int, int],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Local maxima of each scale's DoG (in units of its noise spread) in the slab's core, and
    the maximum over the scales (the response).

    Returns:
        ``(zyx, values, scale, response)``: ``(n, 3)`` indices, their values, the index of the
        scale each is a maximum of, and the ``(z, y, x)`` response.
    """  # fmt: skip
    response = np.full(block.shape, -np.inf, dtype=np.float32)
    zyx, values, scales = [], [], []
    for s, (sigma, spread) in enumerate(zip(sigmas, spreads, strict=True)):
        dog = _dog(block, sigma) / spread
        np.maximum(response, dog, out=response)
        where, value = local_maxima(dog, radius, core)
        zyx.append(where)
        values.append(value)
        scales.append(np.full(len(where), s, dtype=np.int64))
    return np.concatenate(zyx), np.concatenate(values), np.concatenate(scales), response


@dataclass(frozen=True)
class ScaleGroup:
    """Diameters computed together at one binning (:func:`scale_groups`)."""

    factor: int
    """Block-averaging factor of the volume for these scales."""
    diameters_angstrom: tuple[float, ...]
    """The group's diameters, ascending."""
    first: int
    """Index of the group's first diameter among all the diameters searched."""


def scale_groups(
    diameters_angstrom: Sequence[float],
    voxel_size_angstrom: float,
    shape_zyx: Sequence[int] | None = None,
) -> tuple[ScaleGroup, ...]:
    """Diameters grouped by octave, each group binned for its own smallest sigma.

    A group starts at the smallest diameter not yet grouped, ``d0``, and takes every diameter
    below ``2 d0``; it is block-averaged by ``floor(sigma(d0) / 1.5)`` (at least 1), so its
    smallest sigma stays at least 1.5 binned voxels and a group of large molecules costs
    ``1 / factor^3`` of the volume. Searching diameters an octave apart thus costs about the sum
    of searching each alone. With ``shape_zyx``, the factor is capped so that the binned volume
    keeps at least 3 voxels on every side.

    Args:
        diameters_angstrom: molecule diameters, as :func:`check_diameters` returns them
            (ascending, unique).
        voxel_size_angstrom: the volume's voxel size.
        shape_zyx: the volume's shape, to cap the binning of small volumes.

    Returns:
        The groups, finest first.
    """
    diameters = sorted(float(d) for d in diameters_angstrom)
    cap = max(1, min(int(s) for s in shape_zyx) // 3) if shape_zyx is not None else None
    groups: list[ScaleGroup] = []
    start = 0
    while start < len(diameters):
        d0 = diameters[start]
        stop = start + 1
        while stop < len(diameters) and diameters[stop] < _OCTAVE * d0:
            stop += 1
        factor = max(1, int(_sigma_voxels(d0, voxel_size_angstrom) / _MIN_SIGMA_BINNED))
        if cap is not None:
            factor = min(factor, cap)
        groups.append(ScaleGroup(factor, tuple(diameters[start:stop]), start))
        start = stop
    return tuple(groups)


def _sigma_voxels(diameter_angstrom: float, voxel_size_angstrom: float) -> float:
    """The LoG-optimal sigma of a ball of this diameter, in voxels."""
    return diameter_angstrom / 2.0 / math.sqrt(3.0) / voxel_size_angstrom
