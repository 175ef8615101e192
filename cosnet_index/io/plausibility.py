"""Contrast and voxel-size plausibility of a tomogram, from its particle boxes, before indexing.

The two commonest silent failures in cryo-ET are inverted contrast (some reconstruction tools
write molecules bright, the model expects them dark) and a wrong voxel size in the header (a
tomogram binned 4x whose header still says 2.5 A). Both are read from the data the same way:

1. up to ``n_particles`` particle boxes and as many **background boxes** (random positions in
   the picks' z range, at least half the median pick spacing from every pick) are cut twice:
   at the model's scale (``box`` voxels of ``model_voxel_angstrom``; the same resampling rule
   as indexing, edges padded) and in the tomogram's own voxels (``box`` of them, no
   resampling: there a header voxel size 4x too small still leaves molecules several voxels
   wide, where the model's scale shrinks them to one or two);
2. **contrast**: the mean of each box's central sphere (radius :data:`CENTRE_RADIUS_NM` at the
   model's scale, the same number of voxels in the tomogram's); a Welch t of particles against
   background at each scale, the larger |t| deciding, says whether the particles are darker
   (``dark``: what the model expects), brighter (``bright``) or indistinguishable (``unclear``:
   too few picks, or picks on nothing visible);
3. **size**: the radial profile of the mean particle box minus the mean background box; the
   radius where it falls to half its centre value gives an apparent diameter (FWHM, angstrom
   at the header's voxel size). Below :data:`MIN_DIAMETER_ANGSTROM` (read in the tomogram's
   voxels) nothing molecular is that small: the header voxel size is probably too small
   (binned data, unbinned header). A profile that never falls to half within the model's box
   means molecules fill the 32 nm box: very large molecules, or a header voxel size too large.

Measured on simulated tomograms in ``docs/ecosystem.md`` (``bench/plausibility.py``).

The estimates only read the tomogram. What happens on a finding (error, warning) is decided by
:func:`check_plausibility`, which indexing calls before the store is touched.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from cosnet_index.errors import InputError
from cosnet_index.geometry import source_box_side
from cosnet_index.io.boxes import extract_boxes
from cosnet_index.io.mrc import TomogramInfo

__all__ = [
    "CONTRAST_CHECKS",
    "ContrastError",
    "Plausibility",
    "check_plausibility",
    "estimate_plausibility",
]

logger = logging.getLogger(__name__)

CONTRAST_CHECKS = ("error", "warn", "off")
"""``--contrast-check``: stop on bright molecules, only warn, or skip the check."""

CENTRE_RADIUS_NM = 2.0
"""Radius of the central sphere whose mean is compared (inside any molecule), at the model's
scale (the same number of voxels in the tomogram's own)."""

MIN_PARTICLES = 8
"""Fewer picks than this in a tomogram: no verdict (``unclear``)."""

T_THRESHOLD = 3.0
"""|Welch t| above which particles are called darker or brighter than the background."""

MIN_DIAMETER_ANGSTROM = 30.0
"""Apparent diameters (FWHM of the mean particle) below this are not molecules at this size."""

_CHUNK = 8  # boxes resampled at a time (a 128^3 source box is 8 MiB)


class ContrastError(InputError):
    """Molecules are brighter than the background: the tomogram needs ``--invert-contrast``."""


@dataclass(frozen=True)
class Plausibility:
    """What the particle boxes of one tomogram say about its contrast and voxel size.

    Attributes:
        tomogram: its name.
        n_particles: particle boxes measured.
        n_background: background boxes measured.
        contrast: ``"dark"`` (molecules darker than background), ``"bright"`` or ``"unclear"``.
        t: Welch t of particle against background centre means, the larger |t| of the two
            scales (negative: darker).
        voxel_size_angstrom: the voxel size the boxes were cut with (header or override).
        diameter_angstrom: apparent diameter (FWHM of the mean particle) at that voxel size;
            ``inf`` when the profile never falls to half within the box, ``nan`` when not
            measured (contrast unclear).
        box_angstrom: the side of the measured box (model box x model voxel size).
    """

    tomogram: str
    n_particles: int
    n_background: int
    contrast: str
    t: float
    voxel_size_angstrom: float
    diameter_angstrom: float
    box_angstrom: float

    @property
    def size_problem(self) -> str | None:
        """A sentence on an implausible apparent size, or None."""
        if np.isnan(self.diameter_angstrom):
            return None
        voxel = self.voxel_size_angstrom
        if self.diameter_angstrom < MIN_DIAMETER_ANGSTROM:
            return (
                f"the molecules of {self.tomogram} look {self.diameter_angstrom:.0f} A across "
                f"at the voxel size of {voxel:.4g} A, smaller than any macromolecule: the voxel "
                "size is probably too small (a binned tomogram whose header keeps the unbinned "
                "pixel size?); give the true one with --voxel-size, or --no-size-check to "
                "silence this"
            )
        if np.isinf(self.diameter_angstrom):
            return (
                f"the molecules of {self.tomogram} fill the whole {self.box_angstrom:.0f} A box "
                f"at the voxel size of {voxel:.4g} A: either they are larger than ~300 A (see "
                "README: box size and large molecules) or the voxel size is too large; check "
                "it (--voxel-size), or --no-size-check to silence this"
            )
        return None


def _radii(box: int) -> np.ndarray:
    c = (box - 1) / 2.0 if box % 2 else box / 2.0
    z, y, x = np.indices((box, box, box), dtype=np.float64)
    return np.sqrt((x - c) ** 2 + (y - c) ** 2 + (z - c) ** 2)


def _background_positions(
    shape_zyx: tuple[int, int, int],
    xyz: np.ndarray,
    n: int,
    min_distance: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """Up to ``n`` random x, y, z positions in the picks' z range, ``min_distance`` from picks."""
    nz, ny, nx = shape_zyx
    z_lo, z_hi = float(np.min(xyz[:, 2])), float(np.max(xyz[:, 2]))
    z_lo, z_hi = max(z_lo, 0.0), min(z_hi, nz - 1.0)
    candidates = np.column_stack(
        [
            rng.uniform(0, nx - 1, 20 * n),
            rng.uniform(0, ny - 1, 20 * n),
            rng.uniform(z_lo, z_hi, 20 * n) if z_hi > z_lo else np.full(20 * n, z_lo),
        ]
    )
    far = _nearest_distance(candidates, xyz) >= min_distance
    return candidates[far][:n]


def _nearest_distance(queries: np.ndarray, points: np.ndarray, exclude_self: bool = False):
    """Distance from each of ``queries`` to its nearest of ``points`` (both ``(n, 3)``).

    Brute force in blocks of numpy, by hand rather than ``scipy.spatial.cKDTree``: the check sees
    at most a few thousand against a few hundred points (milliseconds), and importing
    ``scipy.spatial`` costs about a second of CPU in every ``index`` process.
    """
    points = np.asarray(points, dtype=np.float64)
    centre = points.mean(axis=0)  # |q - p|^2 = |q|^2 + |p|^2 - 2 q.p, about the centre (round-off)
    points = points - centre
    p2 = (points**2).sum(axis=1)
    out = np.empty(len(queries))
    block = max(1, 2**20 // max(1, len(points)))  # ~8 MiB of distances at a time
    for start in range(0, len(queries), block):
        q = np.asarray(queries[start : start + block], dtype=np.float64) - centre
        d2 = (q**2).sum(axis=1)[:, None] + p2[None, :] - 2.0 * (q @ points.T)
        if exclude_self:  # queries are the points themselves: skip each one's own distance
            d2[np.arange(len(q)), np.arange(start, start + len(q))] = np.inf
        out[start : start + len(q)] = np.sqrt(np.maximum(d2.min(axis=1), 0.0))
    return out


def _boxes(volume: np.ndarray, xyz: np.ndarray, box: int, source_box: int) -> Iterable[np.ndarray]:
    # resampled boxes a few at a time (a 128^3 source box is 8 MiB); unresampled ones 8 MiB' worth
    chunk = _CHUNK if source_box != box else max(_CHUNK, 2**21 // box**3)
    for start in range(0, len(xyz), chunk):
        yield extract_boxes(
            volume, xyz[start : start + chunk], box, source_box=source_box, edge="pad"
        )[0]


def estimate_plausibility(
    tomogram: TomogramInfo,
    xyz_voxels: np.ndarray,
    *,
    box: int = 32,
    model_voxel_angstrom: float = 10.0,
    n_particles: int = 200,
    seed: int = 0,
) -> Plausibility:
    """Measure contrast and apparent molecule size from the particle boxes of one tomogram.

    Args:
        tomogram: the validated tomogram (reopened read-only here).
        xyz_voxels: ``(n, 3)`` particle centres in its voxels; a random ``n_particles`` are used.
        box: the model's box side; ``model_voxel_angstrom``: its voxel size.
        n_particles: particle (and background) boxes measured at most.
        seed: seeds the choice of particles and background positions.

    Returns:
        A :class:`Plausibility`.
    """
    rng = np.random.default_rng(seed)
    xyz = np.asarray(xyz_voxels, dtype=np.float64).reshape(-1, 3)
    inside = np.all((xyz >= -0.5) & (xyz < np.asarray(tomogram.shape_zyx[::-1]) - 0.5), axis=1)
    xyz = xyz[inside]
    voxel = float(tomogram.voxel_size_angstrom)
    box_angstrom = box * model_voxel_angstrom
    nan = float("nan")
    if len(xyz) < MIN_PARTICLES:
        return Plausibility(tomogram.name, len(xyz), 0, "unclear", nan, voxel, nan, box_angstrom)
    if len(xyz) > n_particles:
        xyz = xyz[rng.choice(len(xyz), n_particles, replace=False)]
    source_box = source_box_side(box, voxel, model_voxel_angstrom)
    # background boxes keep half the median pick spacing from every pick: no scale assumed
    spacing = float(np.median(_nearest_distance(xyz, xyz, exclude_self=True)))
    background = _background_positions(
        tomogram.shape_zyx, xyz, len(xyz), min_distance=spacing / 2, rng=rng
    )
    if len(background) < MIN_PARTICLES:
        return Plausibility(
            tomogram.name, len(xyz), len(background), "unclear", nan, voxel, nan, box_angstrom
        )
    centre_voxels = CENTRE_RADIUS_NM * 10.0 / model_voxel_angstrom
    with tomogram.open() as tomo:
        # at the model's scale (what indexing sees), and in the tomogram's own voxels (where a
        # header voxel size 4x too small leaves the molecules several voxels wide)
        t_model, profile_model = _measure(
            tomo.data, xyz, background, box, source_box, centre_voxels
        )
        if source_box == box:  # no resampling: the two scales read the very same boxes
            t_native, profile_native = t_model, profile_model
        else:
            t_native, profile_native = _measure(tomo.data, xyz, background, box, box, centre_voxels)
    t = t_model if abs(t_model) >= abs(t_native) else t_native
    contrast = "dark" if t < -T_THRESHOLD else "bright" if t > T_THRESHOLD else "unclear"
    diameter = nan
    if contrast != "unclear":
        sign = -1.0 if contrast == "dark" else 1.0
        native = _fwhm_voxels(sign * profile_native) * voxel
        model = _fwhm_voxels(sign * profile_model) * model_voxel_angstrom
        # small sizes are read in the tomogram's voxels, "fills the box" at the model's scale
        diameter = native if native < MIN_DIAMETER_ANGSTROM or np.isnan(model) else model
    return Plausibility(
        tomogram.name, len(xyz), len(background), contrast, t, voxel, diameter, box_angstrom
    )


def _measure(
    volume: np.ndarray,
    particles: np.ndarray,
    background: np.ndarray,
    box: int,
    source_box: int,
    centre_radius: float,
) -> tuple[float, np.ndarray]:
    """Welch t of particle vs background centre means, and the mean radial profile difference."""
    radii = _radii(box)
    centre = radii <= centre_radius
    shells = np.minimum(np.round(radii).astype(int), box // 2).ravel()
    counts = np.bincount(shells, minlength=box // 2 + 1)

    def centres_and_profile(positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        centres, profile = [], np.zeros(box // 2 + 1)
        for boxes in _boxes(volume, positions, box, source_box):
            centres.append(boxes[:, centre].mean(axis=1))
            profile += np.bincount(shells, weights=boxes.sum(axis=0).ravel(), minlength=len(counts))
        return np.concatenate(centres), profile / counts / len(positions)

    p, p_profile = centres_and_profile(particles)
    b, b_profile = centres_and_profile(background)
    spread = np.sqrt(p.var(ddof=1) / len(p) + b.var(ddof=1) / len(b))
    return float((p.mean() - b.mean()) / max(spread, 1e-12)), p_profile - b_profile


def _fwhm_voxels(profile: np.ndarray) -> float:
    """Twice the radius where a radial profile falls to half its centre (inf: never; nan: no
    peak)."""
    peak = float(profile[:2].mean())
    if peak <= 0:
        return float("nan")
    below = np.flatnonzero(profile[1:] <= peak / 2) + 1
    if len(below) == 0:
        return float("inf")
    r = int(below[0])  # interpolate the half crossing between r - 1 and r
    a, b = profile[r - 1], profile[r]
    return float(2 * (r - 1 + (a - peak / 2) / (a - b) if a != b else r))


def check_plausibility(
    tomograms: Iterable[TomogramInfo],
    coordinates: pd.DataFrame,
    *,
    box: int,
    model_voxel_angstrom: float,
    invert_contrast: bool = False,
    contrast_check: str = "error",
    size_check: bool = True,
    seed: int = 0,
) -> list[Plausibility]:
    """Check every tomogram's contrast and apparent molecule size before indexing it.

    Args:
        tomograms: the validated tomograms.
        coordinates: ``tomogram, x, y, z`` (voxels) as :func:`~cosnet_index.io.read_coordinates`
            returns them.
        box, model_voxel_angstrom: the model's box side and voxel size.
        invert_contrast: the boxes will be negated (``--invert-contrast``): bright molecules are
            then expected, and dark ones only get a warning.
        contrast_check: ``"error"`` (bright molecules stop indexing), ``"warn"`` or ``"off"``.
        size_check: warn on implausible apparent molecule sizes (``--no-size-check``: False).
        seed: seeds the boxes measured.

    Returns:
        One :class:`Plausibility` per tomogram measured (none when both checks are off).

    Raises:
        ContrastError: molecules brighter than background and ``contrast_check="error"``.
        InputError: an unknown ``contrast_check``.
    """
    if contrast_check not in CONTRAST_CHECKS:
        raise InputError(
            f"--contrast-check must be one of {', '.join(CONTRAST_CHECKS)}, got {contrast_check!r}"
        )
    if contrast_check == "off" and not size_check:
        return []
    found = []
    for tomogram in tomograms:
        rows = coordinates[coordinates["tomogram"] == tomogram.name]
        xyz = rows[["x", "y", "z"]].to_numpy(dtype=np.float64)
        if len(xyz) == 0:
            continue
        result = estimate_plausibility(
            tomogram, xyz, box=box, model_voxel_angstrom=model_voxel_angstrom, seed=seed
        )
        found.append(result)
        logger.info(
            "%s: molecules look %s (t = %.1f, %d picks vs %d background boxes), apparent "
            "diameter %.0f A",
            result.tomogram,
            result.contrast,
            result.t,
            result.n_particles,
            result.n_background,
            result.diameter_angstrom,
        )
        if contrast_check != "off":
            _report_contrast(result, invert_contrast, contrast_check)
        if size_check and result.size_problem:
            logger.warning(result.size_problem)
    return found


def _report_contrast(result: Plausibility, invert_contrast: bool, contrast_check: str) -> None:
    if result.contrast == "bright" and not invert_contrast:
        message = (
            f"the molecules of {result.tomogram} are brighter than the background around them "
            f"(t = {result.t:.1f} over {result.n_particles} picks); the model expects dark "
            "molecules on bright ice: index it again with --invert-contrast (nothing was "
            "written), or --contrast-check off if you are sure"
        )
        if contrast_check == "error":
            raise ContrastError(message)
        logger.warning(message)
    elif result.contrast == "dark" and invert_contrast:
        logger.warning(
            "the molecules of %s are already darker than the background (t = %.1f) but "
            "--invert-contrast makes them bright: drop --invert-contrast unless you are sure",
            result.tomogram,
            result.t,
        )
