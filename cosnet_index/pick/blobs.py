"""Classical candidate detector: multi-scale difference of Gaussians, slab by slab.

For molecules of diameter ``d`` the Laplacian of Gaussian of a 3D ball of radius ``r = d / 2``
peaks at ``sigma = r / sqrt(3)``; the difference of Gaussians ``G(sigma) - G(1.6 sigma)``,
divided by ``0.6``, approximates the scale-normalised ``-sigma^2 LoG`` and so compares across
scales; each scale is measured in units of its own robust noise spread.

**Scale groups** (:func:`scale_groups`). The diameters are grouped by octave and each group is
computed on the volume block-averaged by ``floor(sigma_min / 1.5)`` of its own smallest sigma, so
large molecules cost ``1 / bin^3`` and searching diameters an octave apart costs about the sum of
each alone. The volume is read in slabs of z (a multiple of every group's bin, with a halo wide
enough for the filters), so memory stays at the memory map plus one slab per group and a
band-passed copy binned like the finest group.

**Peaks.** A peak is a local maximum of one scale's DoG (cube of half the smallest diameter), in
tomogram voxels whatever its group. Each scale keeps its own maxima (a crowd of small molecules
is one large blob to the large scales, so a maximum over scales would lose them); greedy
non-maximum suppression at half the smallest diameter keeps the best of close peaks. A peak's
score is a robust z-score of the response (the maximum over every scale; median and MAD of a
regular grid of the whole volume), so a threshold means the same in any tomogram.

**Re-centring** (``refine``). Every peak is moved to the centre of mass of the band-passed
density in a sphere of each diameter (:func:`refine_centres`), and each centre is scored by
:func:`sphere_fit`: the density's mean in the sphere minus its mean in the shell out to 1.5 radii
(a filled-sphere template), as a robust z-score against the same at ~512 grid points of the
tomogram. A peak keeps two centres (:func:`centres_kept`): its blob centred by the
second-smallest sphere (one step larger than the smallest molecule, so that the lobes of a
two-lobed or elongated small molecule converge on its centre; the smallest sphere's centre where
that one strayed off the blob, pulled into a crowd, or is more than 1.5x the smallest), and the
centre of the largest diameter above it whose fit is at least 2 (the molecule it is part of: a
hollow shell's or a ring's wall peaks converge on its centre, a large complex's lobes on its
centre of mass); with the default diameters, spheres 1.2x and 1.44x the largest take that
centre where one fits better than every large diameter searched (a molecule larger than them: a
35 nm capsid whose voxel size is off; ``pick_diameter_angstrom`` then says the grown diameter;
given ``--diameter``, only those are used). Suppression then
knows the spheres' sizes (:func:`~cosnet_index.pick._peaks.size_aware_suppression`): best score
first (a peak's copies: the better fit first), a centre merges the centres of its own diameter
within the fraction of it that ``min_distance`` is of the smallest, and the smaller centres
inside its sphere that fit worse (a lobe or a wall blob of the molecule it explains better; a
blob is judged by the better of the two small spheres). A crowd of small molecules keeps one
candidate per molecule: each is explained better by its own sphere than a large sphere over the
crowd explains the crowd; two touching ones are one molecule (a dimer), centred between them.

What is true and what is derived: the positions are in voxels of the tomogram read (x, y, z,
0-based voxel centres, as coordinate files give them); the score depends on the tomogram's own
noise, not on any model.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.ndimage as ndi

from cosnet_index.errors import InputError
from cosnet_index.pick._peaks import (
    non_maximum_suppression,
    robust_spread,
    size_aware_suppression,
)
from cosnet_index.pick._recentre import (
    grown_diameters,
    recentre_peaks,
    refine_centres,
    sphere_fit,
)
from cosnet_index.pick._scales import (
    _K,
    _TRUNCATE,
    ScaleGroup,
    _bin,
    _dog,
    _scale_peaks,
    _sigma_voxels,
    _wide_smooth,
    scale_groups,
)

__all__ = [
    "DEFAULT_DIAMETERS_ANGSTROM",
    "DEFAULT_DOG_THRESHOLD",
    "DEFAULT_MIN_DISTANCE_FRACTION",
    "ScaleGroup",
    "check_diameters",
    "detect_blobs",
    "refine_centres",
    "scale_groups",
    "sphere_fit",
]

logger = logging.getLogger(__name__)

DEFAULT_DIAMETERS_ANGSTROM: tuple[float, ...] = (120.0, 170.0, 240.0, 350.0)
"""Molecule diameters searched when none are given: about 100 kDa complexes to 35 nm capsids
(two scale groups, binned 2 and 4 at 10 A voxels)."""

DEFAULT_DOG_THRESHOLD = 4.0
"""Robust z-score a DoG candidate needs (docs/picking.md measures the choice)."""

DEFAULT_MIN_DISTANCE_FRACTION = 0.35
"""Candidates are at least this fraction of the smallest diameter apart (docs/picking.md)."""


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


def _probe_centres(n: int) -> list[int]:
    return sorted({n // 4, n // 2, (3 * n) // 4})


def _lookup(core: np.ndarray, z0: int, factor: int, zyx: np.ndarray) -> np.ndarray:
    """Values of one group's slab ``core`` (binned by ``factor``, first binned slice ``z0``)
    at ``(n, 3)`` integer tomogram voxels ``zyx``: the binned voxel holding each, clipped."""
    index = zyx // factor - np.array([z0, 0, 0])
    index = np.clip(index, 0, np.asarray(core.shape) - 1)
    return core[tuple(index.T)]


@dataclass
class _Plan:
    """One scale group's filters and the peaks it found so far."""

    group: ScaleGroup
    sigmas: list[float]  # binned voxels
    radius: int  # local-maximum cube half side, binned voxels
    halo: int  # binned slices read beyond a slab's own
    shape: tuple[int, int, int]  # binned (z, y, x)
    spreads: list[float] = field(default_factory=list)
    peaks: list[np.ndarray] = field(default_factory=list)  # (n, 3) tomogram voxels, z y x
    values: list[np.ndarray] = field(default_factory=list)
    scales: list[np.ndarray] = field(default_factory=list)


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
        slab: z-slices of the finest scale group (binned) processed at a time (plus the
            filters' halo).
        max_candidates: keep at most this many, best first (None: no cap).
        refine: re-centre the peaks (:func:`refine_centres`, module docstring) before the
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
    uncapped = scale_groups(diameters, voxel_size_angstrom)[0].factor
    if min(int(s) // uncapped for s in volume.shape) < 3:
        raise InputError(
            f"the volume {volume.shape} is too small for molecules of {diameters[0]} A at "
            f"{voxel_size_angstrom} A voxels; give smaller --diameter values"
        )
    groups = scale_groups(diameters, voxel_size_angstrom, volume.shape)
    fine = groups[0].factor
    peak_distance = 0.5 * diameters[0] / voxel_size_angstrom  # voxels between raw peaks
    # refinement works on a band-passed copy binned like the finest group: smoothed at 2
    # voxels (slab by slab), minus the background at the largest radius (once, on the whole
    # copy: 1 / fine^3 of the volume's voxels)
    band_sigmas = (2.0 / fine, 0.5 * diameters[-1] / voxel_size_angstrom / fine)
    sign = 1.0 if invert_contrast else -1.0
    plans = []
    for g in groups:
        sigmas = [_sigma_voxels(d, voxel_size_angstrom) / g.factor for d in g.diameters_angstrom]
        radius = max(1, int(peak_distance / g.factor))
        widest = _K**0.5 * max(sigmas)
        if refine and g is groups[0]:
            widest = max(widest, band_sigmas[0])
        halo = math.ceil(_TRUNCATE * widest) + radius + 1
        binned = tuple(int(s) // g.factor for s in volume.shape)
        plans.append(_Plan(g, sigmas, radius, halo, binned))  # type: ignore[arg-type]

    def read(plan: _Plan, lo: int, hi: int) -> np.ndarray:
        f, (_, ny, nx) = plan.group.factor, plan.shape
        raw = volume[lo * f : hi * f, : ny * f, : nx * f]
        return _bin(sign * np.asarray(raw, dtype=np.float32), f)  # (hi - lo, ny, nx)

    # each scale's noise spread, from three fixed slabs of its group (independent of ``slab``):
    # small scales respond more to noise, so scales compete in units of their own spread
    for plan in plans:
        width = 8 + 2 * plan.halo
        nzb = plan.shape[0]
        probes = [read(plan, max(0, c - width // 2), min(nzb, c + width // 2))
                  for c in _probe_centres(nzb)]  # fmt: skip
        for sigma in plan.sigmas:
            values = np.concatenate([_dog(p, sigma).ravel() for p in probes])
            plan.spreads.append(robust_spread(values))
    # slabs of tomogram slices, a multiple of every group's factor: the groups' cores align
    step = math.lcm(*(g.factor for g in groups))
    slab_voxels = step * math.ceil(slab * fine / step)
    band = np.zeros(plans[0].shape, dtype=np.float32) if refine else None
    samples = []
    # each group's latest slab core: a coarse group whose binned slices end before the volume's
    # last ones is looked up in its last slice there
    cores: list[tuple[np.ndarray, int] | None] = [None] * len(plans)
    for z0 in range(0, plans[0].shape[0] * fine, slab_voxels):
        for i, plan in enumerate(plans):
            f, nzb = plan.group.factor, plan.shape[0]
            zb0, zb1 = z0 // f, min((z0 + slab_voxels) // f, nzb)
            if zb0 >= zb1:
                continue
            lo, hi = max(0, zb0 - plan.halo), min(nzb, zb1 + plan.halo)
            block = read(plan, lo, hi)
            core = (zb0 - lo, zb1 - lo)
            zyx, value, scale, response = _scale_peaks(
                block, plan.sigmas, plan.spreads, plan.radius, core
            )
            if band is not None and i == 0:
                narrow = ndi.gaussian_filter(
                    block, band_sigmas[0], mode="reflect", truncate=_TRUNCATE
                )
                band[zb0:zb1] = narrow[core[0] : core[1]]
            plan.peaks.append((zyx + np.array([lo, 0, 0])) * f + (f - 1) // 2)  # tomogram z y x
            plan.values.append(value)
            plan.scales.append(scale + plan.group.first)
            cores[i] = (response[core[0] : core[1]], zb0)
        # the response's distribution: a regular grid of the finest group (even binned z),
        # each point the maximum over every group
        core_0, zb0_0 = cores[0]  # type: ignore[misc]
        zs = np.arange(zb0_0 + zb0_0 % 2, zb0_0 + len(core_0), 2)
        grid = np.stack(
            np.meshgrid(zs, np.arange(0, core_0.shape[1], 3), np.arange(0, core_0.shape[2], 3),
                        indexing="ij"), axis=-1,
        ).reshape(-1, 3) * fine + (fine - 1) // 2  # fmt: skip
        sample = _lookup(core_0, zb0_0, fine, grid)
        for j, other in enumerate(plans[1:], start=1):
            if cores[j] is not None:
                core_j, zb0_j = cores[j]
                sample = np.maximum(sample, _lookup(core_j, zb0_j, other.group.factor, grid))
        samples.append(sample)
    if band is not None:  # minus the background: the whole binned copy, in memory already
        band -= _wide_smooth(band, band_sigmas[1])
    zyx = np.concatenate([p for plan in plans for p in plan.peaks]).astype(np.float64)
    value = np.concatenate([v for plan in plans for v in plan.values])
    scale = np.concatenate([s for plan in plans for s in plan.scales])
    sample = np.concatenate(samples).astype(np.float64)
    score = (value - float(np.median(sample))) / robust_spread(sample)
    # binned voxel centre: i * f + (f - 1) / 2; the integer voxel above is its floor
    factors = np.concatenate(
        [np.full(len(p), plan.group.factor) for plan in plans for p in plan.peaks]
    )
    xyz = zyx[:, ::-1] + ((factors - 1) % 2 / 2.0)[:, None]
    # the filters reflect at the faces: maxima within a radius of a face are artefacts there
    border = 0.5 * diameters[0] / voxel_size_angstrom
    upper = np.asarray(volume.shape[::-1], dtype=np.float64) - 1.0 - border
    keep = (score >= threshold) & np.all((xyz >= border) & (xyz <= upper), axis=1)
    xyz, score, scale = xyz[keep], score[keep], scale[keep]
    if refine:
        first = non_maximum_suppression(xyz, score, peak_distance)
        xyz, score, scale = xyz[first], score[first], scale[first]
        assert band is not None
        binned = (xyz - (fine - 1) / 2.0) / fine
        d_binned = [d / voxel_size_angstrom / fine for d in diameters]
        # the default diameters grow beyond the largest (a user's --diameter knows the sizes)
        grow = diameters_angstrom is None
        moved, keep, fit = recentre_peaks(band, binned, d_binned, grow)
        centred_by = grown_diameters(diameters, grow)
        xyz = np.concatenate(moved)[keep.ravel()] * fine + (fine - 1) / 2.0
        score = np.tile(score, len(centred_by))[keep.ravel()]
        scale = np.repeat(np.arange(len(centred_by)), len(first))[keep.ravel()]
        # a centre merges the centres of its own diameter within the same fraction of it as
        # --min-distance is of the smallest (two centres of one molecule), and the smaller ones
        # inside its sphere that fit worse (parts of it)
        order = size_aware_suppression(
            xyz,
            score,
            np.asarray(centred_by)[scale] / voxel_size_angstrom,
            fit.ravel()[keep.ravel()],
            min_distance / voxel_size_angstrom,
            min_distance / diameters[0],
        )
    else:
        centred_by = list(diameters)
        order = non_maximum_suppression(xyz, score, min_distance / voxel_size_angstrom)
    if max_candidates is not None:
        order = order[: int(max_candidates)]
    logger.info(
        "DoG: %d candidates (diameters %s A at bin %s, threshold %.2f)",
        len(order),
        ", ".join(f"{d:g}" for d in diameters),
        ", ".join(str(g.factor) for g in groups for _ in g.diameters_angstrom),
        threshold,
    )
    return pd.DataFrame(
        {
            "x": np.round(xyz[order, 0], 2),
            "y": np.round(xyz[order, 1], 2),
            "z": np.round(xyz[order, 2], 2),
            "pick_score": score[order].astype(np.float32),
            "pick_diameter_angstrom": np.asarray(centred_by, dtype=np.float32)[scale[order]],
        }
    )
