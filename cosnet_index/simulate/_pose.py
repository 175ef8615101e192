"""Random poses and batched rotation + shift of density maps (torch ``grid_sample``).

Convention: a rotation ``R`` (3x3, acting on (x, y, z) column vectors) and a shift ``s``
(x, y, z voxels) pose a reference map ``f`` (centred on voxel ``d // 2``) into a box centred on
voxel ``box // 2``: ``posed(p) = f(R^T (p - c_box - s) + c_map)``. A point at offset ``q`` from the
reference centre lands at ``c_box + R q + s``.
"""

from __future__ import annotations

import functools

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
    """Sampling grid (n, box, box, box, 3) of affine matrices (n, 3, 4)."""
    base = _base_grid(box, str(theta.device))  # (box^3, 4)
    return torch.einsum("pk,njk->npj", base, theta).view(theta.shape[0], box, box, box, 3)


def pose_maps(
    maps: torch.Tensor, rotations: torch.Tensor, shifts: torch.Tensor, box: int
) -> torch.Tensor:
    """Rotate and shift each map into a box (trilinear; zero outside the map).

    Args:
        maps: (n, m, m, m) reference maps (z, y, x), centred on voxel ``m // 2``; one per pose
            (a single (m, m, m) map is posed ``n`` times without copying it).
        rotations: (n, 3, 3); shifts: (n, 3) x, y, z voxels.
        box: output side.

    Returns:
        (n, box, box, box) posed densities.
    """
    n, m = rotations.shape[0], maps.shape[-1]
    theta = rotation_theta(rotations.to(maps.dtype), shifts.to(maps.dtype), box, m)
    grid = _grid(theta, box)
    if maps.dim() == 3:  # one map, n poses: stack the grids along depth
        out = F.grid_sample(
            maps[None, None],
            grid.reshape(1, n * box, box, box, 3),
            mode="bilinear",
            padding_mode="zeros",
            align_corners=True,
        )
    else:
        out = F.grid_sample(
            maps[:, None], grid, mode="bilinear", padding_mode="zeros", align_corners=True
        )
    return out.view(n, box, box, box)


def pose_map(
    density: torch.Tensor, rotations: torch.Tensor, shifts: torch.Tensor, box: int
) -> torch.Tensor:
    """Pose one (m, m, m) map ``n`` times, (n, box, box, box) (see :func:`pose_maps`)."""
    return pose_maps(density, rotations, shifts, box)
