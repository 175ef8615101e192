"""Whole-tomogram template matching for bench/pick.py: the baseline beside COS-Net picking.

Fast local normalised cross-correlation (Roseman 2003; as pytom-match-pick and STOPGAP do):
for every rotation of a seeded quasi-uniform grid (``rotation_grid`` and ``_rotate`` of
``cosnet_index._template_matching``), the reference is rotated, given the tomogram's missing
wedge (the simulator's geometry: tilt axis y, ``|kz| <= tan(tilt_max) |kx|``), masked by a
sphere, normalised inside it and correlated with the whole tomogram by FFT; the local mean and
variance under the sphere are computed once. The score map is the maximum over rotations.
Tomogram and reference are block-averaged by ``bin`` first (as template matching is run in
practice); peaks are local maxima, suppressed at a minimum distance, in tomogram voxels.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from cosnet_index._template_matching import _rotate, rotation_grid
from cosnet_index.pick._peaks import local_maxima, non_maximum_suppression


def _bin(volume: np.ndarray, factor: int) -> np.ndarray:
    z, y, x = (s // factor for s in volume.shape)
    v = np.asarray(volume[: z * factor, : y * factor, : x * factor], dtype=np.float32)
    return v.reshape(z, factor, y, factor, x, factor).mean(axis=(1, 3, 5))


def _wedge(shape: tuple[int, int, int], tilt_max_deg: float) -> torch.Tensor:
    kz = torch.fft.fftfreq(shape[0])[:, None, None]
    kx = torch.fft.rfftfreq(shape[2])[None, None, :]
    ky = torch.fft.fftfreq(shape[1])[None, :, None]
    sampled = kz.abs() <= math.tan(math.radians(tilt_max_deg)) * kx.abs() + 1e-9
    return (sampled & (ky.abs() >= 0)).float()  # (z, y, x/2+1)


def match_tomogram(
    volume: np.ndarray,
    reference: np.ndarray,
    *,
    n_rotations: int = 300,
    factor: int = 2,
    tilt_max_deg: float = 60.0,
    seed: int = 0,
) -> tuple[np.ndarray, int]:
    """``(score map of the binned tomogram, factor)``: max over rotations of the local NCC.

    ``reference`` is a cubic box at the tomogram's voxel size (same contrast as the tomogram).
    """
    torch.set_grad_enabled(False)
    tomo = torch.from_numpy(_bin(volume, factor))
    ref = torch.from_numpy(_bin(reference, factor)).float()
    box = ref.shape[0]
    shape = tuple(tomo.shape)
    z, y, x = torch.meshgrid(*[torch.arange(box) - box // 2] * 3, indexing="ij")
    mask = ((z**2 + y**2 + x**2) <= (box // 2 - 1) ** 2).float()
    n = float(mask.sum())

    def padded(small: torch.Tensor) -> torch.Tensor:  # box centred on voxel 0 (circular)
        big = torch.zeros(shape)
        big[:box, :box, :box] = small
        return torch.roll(big, shifts=(-(box // 2),) * 3, dims=(0, 1, 2))

    f_tomo = torch.fft.rfftn(tomo)
    f_mask = torch.fft.rfftn(padded(mask)).conj()
    mean = torch.fft.irfftn(f_tomo * f_mask, s=shape) / n
    mean_sq = torch.fft.irfftn(torch.fft.rfftn(tomo**2) * f_mask, s=shape) / n
    std = (mean_sq - mean**2).clamp_min(1e-12).sqrt()
    wedge = _wedge((box, box, box), tilt_max_deg)
    rotations = rotation_grid(n_rotations, seed)
    best = torch.full(shape, -1.0)
    for start in range(0, len(rotations), 16):
        rotated = _rotate(ref[None, None], rotations[start : start + 16])  # (k, B, B, B)
        rotated = torch.fft.irfftn(torch.fft.rfftn(rotated, dim=(1, 2, 3)) * wedge, s=(box,) * 3)
        for r in rotated:
            inside = r[mask > 0]
            t = (r - inside.mean()) / inside.std().clamp_min(1e-12) * mask
            cc = torch.fft.irfftn(f_tomo * torch.fft.rfftn(padded(t)).conj(), s=shape)
            best = torch.maximum(best, cc / (n * std))
    return best.numpy(), factor


def peaks(
    score_map: np.ndarray, factor: int, min_distance_voxels: float, border_voxels: float
) -> tuple[np.ndarray, np.ndarray]:
    """``(xyz in tomogram voxels, scores)`` of the map's local maxima after NMS, best first."""
    radius = max(1, int(min_distance_voxels / factor))
    zyx, value = local_maxima(score_map - score_map.min() + 1e-6, radius)
    value = score_map[tuple(zyx.T)]
    xyz = zyx[:, ::-1] * factor + (factor - 1) / 2.0
    upper = np.asarray(score_map.shape[::-1]) * factor - 1 - border_voxels
    inside = np.all((xyz >= border_voxels) & (xyz <= upper), axis=1)
    xyz, value = xyz[inside], value[inside]
    keep = non_maximum_suppression(xyz, value, min_distance_voxels)
    return xyz[keep], value[keep]
