"""Random poses and batched rotation + shift of density maps (torch ``grid_sample``).

Convention: a rotation ``R`` (3x3, acting on (x, y, z) column vectors) and a shift ``s``
(x, y, z voxels) pose a reference map ``f`` (centred on voxel ``d // 2``) into a box centred on
voxel ``box // 2``: ``posed(p) = f(R^T (p - c_box - s) + c_map)``. A point at offset ``q`` from the
reference centre lands at ``c_box + R q + s``.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["pose_map", "pose_maps", "random_rotations", "rotation_theta"]


def random_rotations(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` rotation matrices uniform on SO(3) (normalised Gaussian quaternions), (n, 3, 3)."""
    q = rng.standard_normal((n, 4))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    w, x, y, z = q.T
    return np.stack(
        [
            np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], -1),
            np.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], -1),
            np.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], -1),
        ],
        axis=1,
    )


def rotation_theta(
    rotations: torch.Tensor, shifts: torch.Tensor, box: int, map_size: int
) -> torch.Tensor:
    """``affine_grid`` matrices (n, 3, 4) for ``align_corners=True`` (see module docstring)."""
    rt = rotations.transpose(1, 2)  # R^T, (n, 3, 3)
    d = torch.full((3,), (box - 1) / 2 - box // 2, dtype=rt.dtype, device=rt.device)
    linear = rt * ((box - 1) / (map_size - 1))
    trans = (2.0 / (map_size - 1)) * (
        torch.einsum("nij,nj->ni", rt, d - shifts) + map_size // 2
    ) - 1.0
    return torch.cat([linear, trans[:, :, None]], dim=2)


@functools.lru_cache(maxsize=16)
def _base_grid(box: int, device: str) -> torch.Tensor:
    """Normalised output coordinates (x, y, z, 1) of a box, (box^3, 4) (``align_corners=True``)."""
    theta = torch.eye(3, 4)[None]
    grid = F.affine_grid(theta, [1, 1, box, box, box], align_corners=True).reshape(-1, 3)
    return torch.cat([grid, torch.ones(grid.shape[0], 1)], dim=1).to(device)


def _grid(theta: torch.Tensor, box: int) -> torch.Tensor:
    """Sampling grid (n, box, box, box, 3) of affine matrices (n, 3, 4): one batched matmul."""
    base = _base_grid(box, str(theta.device))
    grid = torch.matmul(base, theta.transpose(1, 2))  # (n, box^3, 3)
    return grid.view(theta.shape[0], box, box, box, 3)


def pose_map(
    density: torch.Tensor, rotations: torch.Tensor, shifts: torch.Tensor, box: int
) -> torch.Tensor:
    """Rotate and shift one map into ``n`` boxes (trilinear; zero outside the map).

    Args:
        density: (m, m, m) reference map (z, y, x), centred on voxel ``m // 2``.
        rotations: (n, 3, 3); shifts: (n, 3) x, y, z voxels.
        box: output side.

    Returns:
        (n, box, box, box) posed densities.
    """
    n, m = rotations.shape[0], density.shape[-1]
    theta = rotation_theta(rotations.to(density.dtype), shifts.to(density.dtype), box, m)
    grid = _grid(theta, box).reshape(1, n * box, box, box, 3)
    out = F.grid_sample(
        density[None, None], grid, mode="bilinear", padding_mode="zeros", align_corners=True
    )
    return out.view(n, box, box, box)


def pose_maps(
    maps: Sequence[torch.Tensor],
    map_index: torch.Tensor,
    rotations: torch.Tensor,
    shifts: torch.Tensor,
    box: int,
) -> torch.Tensor:
    """Pose ``maps[map_index[i]]`` with rotation ``i`` and shift ``i``, (n, box, box, box).

    One ``grid_sample`` per distinct map, no copy of the maps.
    """
    n = rotations.shape[0]
    out = torch.empty((n, box, box, box), dtype=maps[0].dtype, device=rotations.device)
    order = torch.argsort(map_index, stable=True)
    sorted_index = map_index[order]
    values, counts = torch.unique_consecutive(sorted_index, return_counts=True)
    start = 0
    for value, count in zip(values.tolist(), counts.tolist(), strict=True):
        rows = order[start : start + count]
        out[rows] = pose_map(maps[value], rotations[rows], shifts[rows], box)
        start += count
    return out
