"""A mask volume prior: keep the most probable voxels up to the molecule's volume.

The decoder's ``p > 0.5`` mask is the wrong size on molecules and imaging it was not trained on
(too large on small molecules: docs/segmentation.md, hard benchmark). When the class's volume
is known (a class made from a map or a model records it, or the user gives the mass:
``mass / 0.81 Da/A^3``, the mass-based contour the project's truth masks use; ``prior.py`` says
which volume each hit gets), the prior keeps the ``n`` voxels of highest probability, ``n``
being that volume in voxels, and of them the connected component nearest the box centre (the
hit is centred; neighbours touching it are other components or are cut off by the volume limit).
The probability still decides *where* the mask is; the volume decides *how much*.
"""

from __future__ import annotations

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
    "PROTEIN_DENSITY_DA_PER_A3",
    "centre_component_voxels",
    "mass_voxels",
    "parse_masses",
    "volume_prior_masks",
]


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
    coms = np.array(ndimage.center_of_mass(mask, labels, range(1, n + 1)))
    return labels == 1 + int(np.argmin(((coms - centre) ** 2).sum(axis=1)))


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
        out[i] = _nearest_component(flat.reshape(shape), centre)
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
