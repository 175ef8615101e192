"""A mask volume prior from the molecule's mass: keep the most probable voxels up to its volume.

The decoder's ``p > 0.5`` mask is often too small on molecules and imaging it was not trained on
(docs/segmentation.md, hard benchmark). When the class's mass is known (the user knows what a
ribosome weighs; a class made from a map or a model has it), the expected volume is known too:
``mass / 0.81 Da/A^3`` (the mass-based contour the project's truth masks use). The prior then
keeps the ``n`` voxels of highest probability, ``n`` being that volume in voxels, and of them the
connected component nearest the box centre (the hit is centred; neighbours touching it are
other components or are cut off by the volume limit). The probability still decides *where* the
mask is; the mass decides *how much*.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from cosnet_index.errors import InputError

__all__ = ["PROTEIN_DENSITY_DA_PER_A3", "mass_voxels", "parse_masses", "volume_prior_masks"]

PROTEIN_DENSITY_DA_PER_A3 = 0.81  # the project's mass-based contour (simulate.maps uses it too)


def mass_voxels(mass_kda: float, voxel_angstrom: float) -> int:
    """Voxels of a molecule of ``mass_kda`` at ``voxel_angstrom`` (>= 1)."""
    if not (mass_kda > 0 and math.isfinite(mass_kda)):
        raise InputError(f"a molecular mass must be a positive number of kDa, got {mass_kda}")
    volume_a3 = mass_kda * 1000.0 / PROTEIN_DENSITY_DA_PER_A3
    return max(1, round(volume_a3 / voxel_angstrom**3))


def volume_prior_masks(probability: np.ndarray, n_inside: np.ndarray) -> np.ndarray:
    """Per box: the ``n_inside`` most probable voxels, then the component nearest the centre.

    Args:
        probability: ``(n, s, s, s)`` foreground probability (decoder ``p`` or CRF ``Q_1``).
        n_inside: ``(n,)`` voxels per box; a box with ``n_inside <= 0`` keeps ``p > 0.5``.

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
        mask = flat.reshape(shape)
        labels, n = ndimage.label(mask)
        if n > 1:
            coms = np.array(ndimage.center_of_mass(mask, labels, range(1, n + 1)))
            mask = labels == 1 + int(np.argmin(((coms - centre) ** 2).sum(axis=1)))
        out[i] = mask
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
