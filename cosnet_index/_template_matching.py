"""Baseline: rotational-search template matching with missing-wedge-aware normalised
cross-correlation (constrained correlation, Förster et al. 2008 / Xu et al. 2012 style).

For each rotation ``R`` of a grid the reference is rotated in real space (its sampled Fourier
region rotates with it), and the correlation with the target is computed in Fourier space over
the region that BOTH volumes sample (``R(W) ∩ W``, band-limited to the data's resolution), for
every translation at once (inverse FFT), normalised by the energies over that same region.
The score of a (reference, target) pair is the maximum over rotations and translations.

Geometry matches the simulator: volumes are (z, y, x), the tilt axis is y, and the sampled
region is ``|kz| <= tan(tilt_max) |kx|``.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch
import torch.nn.functional as F
from scipy.spatial.transform import Rotation

__all__ = ["rotation_grid", "template_match_scores"]


def rotation_grid(count: int, seed: int = 0) -> np.ndarray:
    """``count`` rotation matrices (acting on x, y, z) covering SO(3): the identity plus a
    seeded quasi-uniform set (random quaternions), shape (count, 3, 3)."""
    rots = Rotation.random(max(0, count - 1), random_state=seed).as_matrix()
    return np.ascontiguousarray(np.concatenate([np.eye(3)[None], rots.reshape(-1, 3, 3)])[:count])


def _freqs(box: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    kz = torch.fft.fftfreq(box)[:, None, None].expand(box, box, box // 2 + 1)
    ky = torch.fft.fftfreq(box)[None, :, None].expand(box, box, box // 2 + 1)
    kx = torch.fft.rfftfreq(box)[None, None, :].expand(box, box, box // 2 + 1)
    return kx, ky, kz


def _sampled(kx: torch.Tensor, kz: torch.Tensor, tilt_max_deg: float) -> torch.Tensor:
    return kz.abs() <= math.tan(math.radians(tilt_max_deg)) * kx.abs() + 1e-9


@functools.lru_cache(maxsize=4)
def _sampling_grid(box: int, rotations_bytes: bytes) -> torch.Tensor:
    rot = np.frombuffer(rotations_bytes, dtype=np.float64).reshape(-1, 3, 3)
    theta = torch.zeros(rot.shape[0], 3, 4, dtype=torch.float32)
    theta[:, :, :3] = torch.from_numpy(rot.transpose(0, 2, 1).copy())  # output -> input: R^T
    return F.affine_grid(theta, [rot.shape[0], 1, box, box, box], align_corners=False)


def _rotate(volumes: torch.Tensor, rotations: np.ndarray) -> torch.Tensor:
    """Rotate one ``(1, 1, B, B, B)`` volume by each ``(k, 3, 3)`` rotation about the centre."""
    k = rotations.shape[0]
    box = volumes.shape[-1]
    grid = _sampling_grid(box, np.ascontiguousarray(rotations, dtype=np.float64).tobytes())
    src = volumes.expand(k, 1, box, box, box)
    return F.grid_sample(src, grid, mode="bilinear", padding_mode="zeros", align_corners=False)[
        :, 0
    ]


@functools.lru_cache(maxsize=8)
def _regions(
    box: int, rotations_bytes: bytes, tilt_max_deg: float, max_frequency: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Fourier region sampled by both the rotated reference and the target, per rotation
    (k, B, B, B/2+1) float, and the same weighted for the rfft half-spectrum."""
    kx, ky, kz = _freqs(box)
    band = (kx**2 + ky**2 + kz**2 <= max_frequency**2) & ((kx != 0) | (ky != 0) | (kz != 0))
    target_w = _sampled(kx, kz, tilt_max_deg) & band  # (B, B, B/2+1)
    rot = torch.from_numpy(
        np.frombuffer(rotations_bytes, dtype=np.float64).reshape(-1, 3, 3).copy()
    )
    # region sampled by the rotated reference: k is sampled iff R^T k is in the wedge
    kvec = torch.stack([kx, ky, kz], dim=-1).reshape(-1, 3).double()  # (m, 3)
    k_ref = torch.einsum("kji,mj->kmi", rot, kvec)  # R^T k, (k, m, 3)
    ref_w = _sampled(k_ref[..., 0], k_ref[..., 2], tilt_max_deg).reshape(-1, *kx.shape)
    region = (ref_w & target_w).float()  # (k, B, B, B/2+1)
    # rfft bins with kx > 0 (except Nyquist) stand for two bins of the full spectrum
    weight = torch.full((box // 2 + 1,), 2.0)
    weight[0] = 1.0
    if box % 2 == 0:
        weight[-1] = 1.0
    return region, region * weight


def template_match_scores(
    references: torch.Tensor,
    targets: torch.Tensor,
    rotations: np.ndarray,  # float64
    tilt_max_deg: float = 60.0,
    max_frequency: float = 0.25,
    max_shift: int = 7,
) -> torch.Tensor:
    """Max constrained NCC of every (reference, target) pair over rotations and translations.

    Args:
        references: ``(r, B, B, B)`` single references (e.g. one support box per class).
        targets: ``(t, B, B, B)`` boxes to score.
        rotations: ``(k, 3, 3)`` rotation grid (see :func:`rotation_grid`).
        tilt_max_deg: tilt range of both volumes' tilt series.
        max_frequency: band limit in cycles/voxel (0.25 = 4 voxels, the data's resolution).
        max_shift: translations searched, in voxels per axis (circular).

    Returns:
        ``(r, t)`` scores in [-1, 1]. The score is symmetric in its two volumes, and each
        reference is rotated once for all targets: put the FEWER volumes first (e.g. one query
        against its N supports: ``template_match_scores(query[None], supports, ...)``).
    """
    box = references.shape[-1]
    rotations = np.ascontiguousarray(rotations, dtype=np.float64)  # (k, 3, 3) on (x, y, z)
    region, region_w = _regions(box, rotations.tobytes(), tilt_max_deg, max_frequency)

    # everything above max_frequency is masked out, so the correlation can be computed on a
    # Fourier-cropped grid (box/2 when max_frequency <= 0.25: 8x fewer voxels to transform);
    # translations are then searched in steps of box/grid voxels
    grid = box // 2 if max_frequency <= 0.25 else box
    keep = torch.cat([torch.arange(grid // 2), torch.arange(box - grid // 2, box)])
    keep_x = torch.arange(grid // 2 + 1)

    def crop(spec: torch.Tensor) -> torch.Tensor:
        return spec[..., keep, :, :][..., keep, :][..., keep_x]

    region, region_w = crop(region), crop(region_w)
    ft = crop(torch.fft.rfftn(targets.float(), dim=(-3, -2, -1)))  # (t, g, g, g/2+1)
    e_tgt = torch.einsum("tzyx,kzyx->tk", ft.abs() ** 2, region_w)  # (t, k)
    step = box // grid
    reach = -(-max_shift // step)
    shifts = torch.arange(-reach, reach + 1) % grid
    scores = torch.full((references.shape[0], targets.shape[0]), -1.0)
    for i, ref in enumerate(references):
        rotated = _rotate(ref[None, None].float(), rotations)
        fr = crop(torch.fft.rfftn(rotated, dim=(-3, -2, -1)))  # (k, g, g, g/2+1)
        e_ref = (fr.abs() ** 2 * region_w).sum(dim=(-3, -2, -1))  # (k,)
        cross = fr[None].conj() * ft[:, None] * region[None]  # (t, k, ...)
        # irfftn(..) * grid^3 = sum over the (cropped) half spectrum, as the energies
        corr = torch.fft.irfftn(cross, s=(grid, grid, grid), dim=(-3, -2, -1)) * grid**3
        corr = corr[..., shifts][..., shifts, :][..., shifts, :, :]
        best = corr.flatten(2).amax(dim=2)  # (t, k)
        ncc = best / torch.sqrt(e_ref[None] * e_tgt).clamp_min(1e-12)
        scores[i] = ncc.amax(dim=1)
    return scores
