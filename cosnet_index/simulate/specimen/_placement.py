"""Placing molecules in a tomogram: random poses, no overlap, rendered into one density.

Molecules of random classes get uniform random rotations and random positions whose mask
spheres do not intersect (random sequential placement, the largest first); their posed densities
are summed into the (z, y, x) volume, with a label volume (particle row + 1 inside each mask)
when asked. Poses follow ``_pose.py`` (reference -> tomogram, x, y, z).
"""

from __future__ import annotations

import functools
import logging

import numpy as np
import torch

from cosnet_index.simulate._pose import pose_maps, random_rotations
from cosnet_index.simulate.molecules import ClassMap

__all__ = ["place_molecules", "render_molecules"]

logger = logging.getLogger(__name__)


@functools.lru_cache(maxsize=4096)
def _support_radius(info: ClassMap) -> float:
    """Euclidean radius (voxels) of the map's support (> 1% of its maximum)."""
    density = info.density
    centre = density.shape[0] // 2
    coords = np.argwhere(density > 0.01 * density.max())
    return float(np.sqrt(((coords - centre) ** 2).sum(axis=1)).max()) + 1.0


def _place(
    rng: np.random.Generator,
    shape_zyx: tuple[int, int, int],
    radii: np.ndarray,
    margin: float,
    max_tries: int = 200,
) -> tuple[np.ndarray, np.ndarray]:
    """Random sequential placement of non-overlapping spheres inside the volume.

    Centres keep at least ``max(radius, margin)`` voxels from every face.

    Returns the (k, 3) x, y, z centres and the indices (into ``radii``) of those placed.
    """
    upper = np.array(shape_zyx[::-1], dtype=np.float64) - 1.0
    centres: list[np.ndarray] = []
    placed_r: list[float] = []
    kept: list[int] = []
    order = np.argsort(-radii, kind="stable")  # big molecules first: they are the hard ones
    for i in order:
        r = radii[i]
        keep_out = max(r, margin)
        if np.any(2 * keep_out > upper):
            continue
        for _ in range(max_tries):
            candidate = rng.uniform(keep_out, upper - keep_out)
            if not centres:
                break
            dist = np.linalg.norm(np.asarray(centres) - candidate, axis=1)
            if np.all(dist >= np.asarray(placed_r) + r):
                break
        else:
            continue
        centres.append(candidate)
        placed_r.append(float(r))
        kept.append(int(i))
    kept_arr = np.asarray(kept, dtype=np.int64)
    order_back = np.argsort(kept_arr, kind="stable")
    return np.asarray(centres, dtype=np.float64).reshape(-1, 3)[order_back], kept_arr[order_back]


def place_molecules(
    rng: np.random.Generator,
    shape: tuple[int, int, int],
    infos: list[ClassMap],
    n_particles: int,
    margin: int,
    name: str,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draw classes, place them without overlap, rotate them: ``(centres, class_idx, rotations)``.

    Fewer than ``n_particles`` come back (with a warning) when the volume is too full.
    """
    wanted = rng.integers(0, len(infos), n_particles)
    radii = np.array([infos[c].radius_voxels for c in wanted])
    centres, kept = _place(rng, shape, radii, margin)
    if len(kept) < n_particles:
        logger.warning(
            "%s: only %d of %d molecules fit without overlap", name, len(kept), n_particles
        )
    return centres, wanted[kept], random_rotations(rng, len(kept))


def render_molecules(
    shape_zyx: tuple[int, int, int],
    infos: list[ClassMap],
    class_idx: np.ndarray,
    centres_xyz: np.ndarray,
    rotations: np.ndarray,
    with_labels: bool,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Sum of the posed densities (and the label volume), (z, y, x)."""
    volume = torch.zeros(shape_zyx, dtype=torch.float32)
    labels = torch.zeros(shape_zyx, dtype=torch.int32) if with_labels else None
    base = np.floor(centres_xyz + 0.5).astype(np.int64)
    frac = centres_xyz - base
    for c in np.unique(class_idx):
        rows = np.nonzero(class_idx == c)[0]
        info = infos[c]
        patch = 2 * int(np.ceil(_support_radius(info))) + 3
        posed = pose_maps(
            torch.tensor(info.density),
            torch.as_tensor(rotations[rows], dtype=torch.float32),
            torch.as_tensor(frac[rows], dtype=torch.float32),
            patch,
        )
        for k, row in enumerate(rows):
            lo = base[row][::-1] - patch // 2  # z, y, x
            src = tuple(
                slice(max(0, -lo[a]), patch - max(0, lo[a] + patch - shape_zyx[a]))
                for a in range(3)
            )
            dst = tuple(slice(max(0, lo[a]), min(shape_zyx[a], lo[a] + patch)) for a in range(3))
            volume[dst] += posed[k][src]
            if labels is not None:
                inside = posed[k][src] > info.threshold
                labels[dst][inside] = int(row) + 1
    return volume, labels
