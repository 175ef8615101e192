"""A crowded specimen around a subtomogram: neighbour molecules that touch the centre one.

A neighbour is another posed molecule of the same batch (its class and pose), softly windowed to
its box and moved by whole voxels next to the centre molecule, so crowding costs no extra
interpolation. Its centre sits at ``(r_centre + r_neighbour) * (1 + U(0, gap))`` from the centre
molecule in a random direction; neighbours add to the density, never to the mask.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch

from cosnet_index.simulate.config import SimulationConfig

__all__ = ["Neighbours", "add_neighbours", "draw_neighbours", "neighbour_offsets"]


@dataclass(frozen=True)
class Neighbours:
    """The neighbours of a batch: ``owner[k]`` gets a copy of molecule ``source[k]``.

    Attributes:
        owner: (m,) the box each neighbour is added to.
        source: (m,) the box whose posed molecule is copied (another box of the batch).
        direction: (m, 3) unit x, y, z direction from the centre molecule.
        gap: (m,) ``1 + U(0, crowding_gap_fraction)``, the factor on the sum of the radii.
    """

    owner: np.ndarray
    source: np.ndarray
    direction: np.ndarray
    gap: np.ndarray


def draw_neighbours(
    rng: np.random.Generator, n: int, config: SimulationConfig
) -> Neighbours | None:
    """0..``config.crowding_max_neighbours`` neighbours per box (None, and no draw, when 0)."""
    if not config.crowding_max_neighbours:
        return None
    k = config.crowding_max_neighbours
    n_neigh = rng.integers(0, k + 1, n)
    owner = np.repeat(np.arange(n), n_neigh)
    source = (owner + 1 + rng.integers(0, max(n - 1, 1), owner.size)) % n if n > 1 else owner
    direction = rng.standard_normal((owner.size, 3))
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    gap = 1.0 + rng.uniform(0.0, config.crowding_gap_fraction, owner.size)
    return Neighbours(owner, source, direction, gap)


def neighbour_offsets(neighbours: Neighbours, radii: np.ndarray, shifts: np.ndarray) -> np.ndarray:
    """(m, 3) whole-voxel z, y, x offset of each neighbour's box from its owner's.

    Args:
        neighbours: from :func:`draw_neighbours`.
        radii: (n,) mask radius (voxels) of each box's molecule.
        shifts: (n, 3) x, y, z shift of each box's molecule from the box centre.
    """
    owner, source = neighbours.owner, neighbours.source
    dist = (radii[owner] + radii[source]) * neighbours.gap
    offsets = shifts[owner] + neighbours.direction * dist[:, None] - shifts[source]  # x, y, z
    return np.rint(offsets[:, ::-1]).astype(int)


def add_neighbours(
    posed: torch.Tensor, owner: np.ndarray, source: np.ndarray, offsets_zyx: np.ndarray
) -> torch.Tensor:
    """``posed[owner[k]] += posed[source[k]]`` translated by ``offsets_zyx[k]`` voxels.

    The source is first multiplied by a soft spherical window (cosine edge over the outer 4
    voxels of the box) so that a molecule cut by its own box edge has no sharp cut.
    """
    out = posed.clone()
    box = posed.shape[-1]
    sources = posed * _window(box, str(posed.device))
    for i, j, offset in zip(owner.tolist(), source.tolist(), offsets_zyx.tolist(), strict=True):
        if max(abs(o) for o in offset) >= box:
            continue
        dst = tuple(slice(max(o, 0), box + min(o, 0)) for o in offset)
        src = tuple(slice(max(-o, 0), box - max(o, 0)) for o in offset)
        out[i][dst] += sources[j][src]
    return out


@functools.lru_cache(maxsize=8)
def _window(box: int, device: str) -> torch.Tensor:
    """(box, box, box) radial window: 1 inside ``box/2 - 4``, cosine to 0 at ``box/2``."""
    axis = torch.arange(box, dtype=torch.float32) - box // 2
    r = torch.sqrt(axis[:, None, None] ** 2 + axis[None, :, None] ** 2 + axis[None, None, :] ** 2)
    t = ((r - (box / 2 - 4)) / 4).clamp(0, 1)
    return (0.5 * (1 + torch.cos(torch.pi * t))).to(device)
