"""A mask volume prior: keep the most probable voxels up to the molecule's volume.

The decoder's ``p > 0.5`` mask is the wrong size on molecules and imaging it was not trained on
(too large on small molecules: docs/segmentation.md, hard benchmark). When the class's volume
is known (a class made from a map or a model records it, or the user gives the mass:
``mass / 0.81 Da/A^3``, the mass-based contour the project's truth masks use; ``prior.py`` says
which volume each hit gets), the prior keeps the ``n`` voxels of highest probability, ``n``
being that volume in voxels, and of them the connected component nearest the box centre (the
hit is centred; neighbours touching it are other components or are cut off by the volume limit).
That component is then grown back to ``n`` voxels through its most probable neighbours that the
decoder does not rule out (``p > FILL_MIN_PROBABILITY``; the better half of its outer shell at a
time), so that the mask has the molecule's volume and stays one piece: without it the masks were
0.78 of the truth's volume (median) on a small probe of the hard benchmark, with it 0.85, and
Dice rose from 0.343 to 0.381 (docs/segmentation.md).
The probability still decides *where* the mask is; the volume decides *how much*.
"""

from __future__ import annotations

import functools
import math

import numpy as np
from scipy import ndimage

from cosnet_index.errors import InputError
from cosnet_index.geometry import (
    PROTEIN_DENSITY_DA_PER_A3,
    mass_kda_to_volume_nm3,
    volume_nm3_to_voxels,
)

__all__ = [
    "FILL_MIN_PROBABILITY",
    "PROTEIN_DENSITY_DA_PER_A3",
    "centre_component_voxels",
    "mass_voxels",
    "parse_masses",
    "volume_prior_masks",
]


FILL_MIN_PROBABILITY = 0.1
"""The prior's component grows only through voxels more probable than this."""


def mass_voxels(mass_kda: float, voxel_angstrom: float) -> int:
    """Voxels of a molecule of ``mass_kda`` at ``voxel_angstrom`` (>= 1)."""
    if not (mass_kda > 0 and math.isfinite(mass_kda)):
        raise InputError(f"a molecular mass must be a positive number of kDa, got {mass_kda}")
    return volume_nm3_to_voxels(mass_kda_to_volume_nm3(mass_kda), voxel_angstrom)


def _nearest_component(mask: np.ndarray, centre: np.ndarray) -> np.ndarray:
    """The connected component of ``mask`` whose centre of mass is nearest ``centre``."""
    labels, n = ndimage.label(mask)
    if n <= 1:
        return mask
    inside = np.flatnonzero(mask)  # (k,) the mask's voxels only
    flat = labels.ravel()[inside]
    counts = np.bincount(flat, minlength=n + 1)[1:].astype(np.float64)
    distance = np.zeros(n)
    for axis, coordinate in enumerate(_coordinates(mask.shape)):  # centres of mass
        sums = np.bincount(flat, weights=coordinate[inside], minlength=n + 1)[1:]
        distance += (sums / counts - centre[axis]) ** 2
    return labels == 1 + int(np.argmin(distance))


@functools.lru_cache(maxsize=8)
def _coordinates(shape: tuple[int, ...]) -> tuple[np.ndarray, ...]:
    """Each voxel's index along each axis, flattened (read-only, cached per box shape)."""
    out = tuple(np.ascontiguousarray(a.ravel(), dtype=np.float64) for a in np.indices(shape))
    for a in out:
        a.setflags(write=False)
    return out


def _shell(mask: np.ndarray) -> np.ndarray:
    """The voxels face-adjacent to ``mask`` and outside it (``binary_dilation`` with the cross)."""
    grown = mask.copy()
    for axis in range(mask.ndim):
        lo = [slice(None)] * mask.ndim
        hi = [slice(None)] * mask.ndim
        lo[axis], hi[axis] = slice(None, -1), slice(1, None)
        grown[tuple(hi)] |= mask[tuple(lo)]
        grown[tuple(lo)] |= mask[tuple(hi)]
    return grown & ~mask


def centre_component_voxels(probability: np.ndarray) -> np.ndarray:
    """``(n,)`` voxels of each box's ``p > 0.5`` component nearest the centre (0: empty mask).

    The size the decoder gives a centred molecule without its touching neighbours; the median
    over a class's confident hits is ``segment --estimate-volume``'s class volume.
    """
    probability = np.asarray(probability)
    centre = (np.array(probability.shape[1:]) - 1) / 2
    return np.array(
        [int(_nearest_component(p > 0.5, centre).sum()) for p in probability], dtype=np.int64
    )


def _grow(
    mask: np.ndarray, p: np.ndarray, score: np.ndarray, k: int, max_steps: int = 64
) -> np.ndarray:
    """Add ``mask``'s best-scored (lowest) outer neighbours with ``p > FILL_MIN_PROBABILITY``
    until it has ``k`` voxels (or none is left)."""
    need = k - int(mask.sum())
    flat_score, flat_p = score.ravel(), p.ravel()
    for _ in range(max_steps):
        if need <= 0:
            break
        shell = np.flatnonzero(_shell(mask))
        shell = shell[flat_p[shell] > FILL_MIN_PROBABILITY]
        if shell.size == 0:
            break
        take = min(need, max(1, -(-shell.size // 2)))  # the better half of the shell
        if take < shell.size:
            shell = shell[np.argpartition(flat_score[shell], take - 1)[:take]]
        mask.ravel()[shell] = True
        need -= shell.size
    return mask


def volume_prior_masks(
    probability: np.ndarray, n_inside: np.ndarray, *, fill: bool = True
) -> np.ndarray:
    """Per box: the ``n_inside`` most probable voxels, the component nearest the centre, grown
    back to ``n_inside`` voxels through its most probable neighbours (``fill``).

    Args:
        probability: ``(n, s, s, s)`` foreground probability (decoder ``p`` or CRF ``Q_1``).
        n_inside: ``(n,)`` voxels per box; a box with ``n_inside <= 0`` keeps ``p > 0.5``.
        fill: grow the component back to ``n_inside`` voxels through voxels with
            ``p > FILL_MIN_PROBABILITY`` (False: the component alone, the rule before class
            volumes).

    Ties (saturated probabilities) go to the voxels nearer the box centre, so the result does not
    depend on the array's memory order.
    """
    probability = np.asarray(probability)
    n_inside = np.asarray(n_inside, dtype=np.int64)
    if probability.ndim != 4 or len(n_inside) != len(probability):
        raise InputError(
            f"volume_prior_masks takes (n, s, s, s) probabilities and n counts, got "
            f"{probability.shape} and {n_inside.shape}"
        )
    shape = probability.shape[1:]
    axes = [np.arange(n, dtype=np.float64) - (n - 1) / 2 for n in shape]
    r2 = sum(np.meshgrid(*[a**2 for a in axes], indexing="ij", sparse=True))
    centre = (np.array(shape) - 1) / 2
    out = probability > 0.5
    for i, p in enumerate(probability):
        if n_inside[i] <= 0:
            continue
        k = int(min(n_inside[i], p.size))
        score = -p.astype(np.float64) + 1e-9 * r2  # r2 < 1e4 voxels^2: breaks ties only
        flat = np.zeros(p.size, dtype=bool)
        flat[np.argpartition(score.ravel(), k - 1)[:k]] = True
        mask = _nearest_component(flat.reshape(shape), centre)
        out[i] = _grow(mask, p, score, k) if fill else mask
    return out


def parse_masses(values: tuple[str, ...] | list[str]) -> dict[str | None, float]:
    """``("ribosome=3300", "120")`` -> ``{"ribosome": 3300.0, None: 120.0}`` (None: every class).

    Raises:
        InputError: a value that is not ``KDA`` or ``CLASS=KDA`` with a positive number.
    """
    masses: dict[str | None, float] = {}
    for value in values:
        name, _, number = value.rpartition("=")
        try:
            kda = float(number)
        except ValueError:
            kda = math.nan
        if not (kda > 0 and math.isfinite(kda)) or (value.count("=") > 0 and not name):
            raise InputError(
                f"--mass-kda {value!r}: give the molecular mass in kDa, for every hit (120) or "
                "per class (ribosome=3300); repeat the option for several classes"
            )
        key = name or None
        if key in masses:
            raise InputError(f"--mass-kda gives {key or 'the all-class mass'} twice")
        masses[key] = kda
    return masses
