"""Tomogram background for the realistic path: carbon edge, membranes, gold, crowders, ice gradient.

Densities are relative to the protein level 1 above vitreous ice (0): amorphous carbon
(~2.0 g/cm^3) ~2.5, lipid head groups ~1.2, gold (saturating) 8, low-density crowders 0.3-0.5.
Background never enters a labelled particle's mask (it is zeroed there), so labels stay true.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from cosnet_index.simulate._fourier import gaussian_lowpass
from cosnet_index.simulate.microscope.imaging import Imaging

__all__ = ["add_background", "ice_gain"]


def _coords(shape: tuple[int, int, int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    z, y, x = (torch.arange(s, dtype=torch.float32) for s in shape)
    return z[:, None, None], y[None, :, None], x[None, None, :]


def _ramp(shape: tuple[int, int, int], angle_deg: float) -> torch.Tensor:
    """(ny, nx) linear ramp, -1 .. 1 across the field along ``angle_deg`` in xy."""
    _, ny, nx = shape
    y = (torch.arange(ny, dtype=torch.float32) - ny / 2) / (ny / 2)
    x = (torch.arange(nx, dtype=torch.float32) - nx / 2) / (nx / 2)
    a = math.radians(angle_deg)
    return (math.cos(a) * x[None, :] + math.sin(a) * y[:, None]) / max(
        abs(math.cos(a)) + abs(math.sin(a)), 1e-6
    )


def ice_gain(shape: tuple[int, int, int], imaging: Imaging) -> torch.Tensor | None:
    """(ny, nx) relative noise amplitude from an ice-thickness gradient (None without one)."""
    if imaging.ice_gradient <= 0:
        return None
    return (1.0 + imaging.ice_gradient * _ramp(shape, imaging.ice_gradient_angle_deg)).clamp_min(
        0.2
    )


def add_background(
    density: torch.Tensor,
    occupied: torch.Tensor,
    imaging: Imaging,
    rng: np.random.Generator,
    voxel_size_nm: float,
) -> tuple[torch.Tensor, dict[str, int]]:
    """Add the background ``imaging`` asks for to a (z, y, x) density; returns it and counts.

    Args:
        density: (nz, ny, nx) the particles' density.
        occupied: (nz, ny, nx) bool, voxels of labelled particles (kept free of background).
        imaging: ``carbon_edge``, ``n_membranes``, ``n_gold``, ``crowder_fraction``,
            ``ice_gradient``.
        rng: draws positions and sizes (a fixed number of draws per element).
        voxel_size_nm: the data's voxel size (sizes below are in nm).
    """
    shape = tuple(density.shape)
    nz, ny, nx = shape
    z, y, x = _coords(shape)
    extra = torch.zeros(shape, dtype=torch.float32)
    nm = 1.0 / voxel_size_nm
    if imaging.carbon_edge:
        angle = rng.uniform(0, 2 * math.pi)
        offset = rng.uniform(-0.3, 0.3) * min(nx, ny)
        thickness = rng.uniform(10.0, 20.0) * nm
        side = (x - nx / 2) * math.cos(angle) + (y - ny / 2) * math.sin(angle) - offset
        in_plane = torch.sigmoid(side / (1.0 * nm))
        across = torch.sigmoid((thickness - z) / (1.0 * nm))  # a film at the bottom face
        extra += 2.5 * in_plane * across
    for _ in range(imaging.n_membranes):
        normal = rng.standard_normal(3)
        normal /= np.linalg.norm(normal)
        centre = rng.uniform(0, 1, 3) * np.array([nx, ny, nz])
        radius = rng.uniform(30.0, 80.0) * nm
        dist = (
            (x - centre[0]) * normal[0] + (y - centre[1]) * normal[1] + (z - centre[2]) * normal[2]
        )
        r2 = (x - centre[0]) ** 2 + (y - centre[1]) ** 2 + (z - centre[2]) ** 2 - dist**2
        leaflets = torch.exp(-((dist - 2 * nm) ** 2) / (2 * (0.8 * nm) ** 2)) + torch.exp(
            -((dist + 2 * nm) ** 2) / (2 * (0.8 * nm) ** 2)
        )
        extra += 1.2 * leaflets * torch.sigmoid((radius**2 - r2) / (radius * 2 * nm))
    for _ in range(imaging.n_gold):
        centre = rng.uniform(0, 1, 3) * np.array([nx, ny, nz])
        radius = rng.uniform(2.5, 5.0) * nm
        r = torch.sqrt((x - centre[0]) ** 2 + (y - centre[1]) ** 2 + (z - centre[2]) ** 2)
        extra += 8.0 * torch.sigmoid((radius - r) / 0.5)
    if imaging.crowder_fraction > 0:
        sigma = 1.5 * nm
        blob_volume = (2 * math.pi) ** 1.5 * sigma**3
        seed = int(rng.integers(0, 2**63 - 1))
        generator = torch.Generator().manual_seed(seed)
        points = (
            torch.rand(shape, generator=generator) < imaging.crowder_fraction / blob_volume
        ).float()
        peak = 1.0 / blob_volume
        amplitude = float(rng.uniform(0.3, 0.5))
        extra += amplitude / peak * gaussian_lowpass(points, sigma).clamp_min(0.0)
    if imaging.ice_gradient > 0:
        extra += 0.5 * imaging.ice_gradient * _ramp(shape, imaging.ice_gradient_angle_deg)[None]
    extra = extra * (~occupied)
    counts = {
        "carbon_edge": int(imaging.carbon_edge),
        "membranes": imaging.n_membranes,
        "gold": imaging.n_gold,
    }
    return density + extra, counts
