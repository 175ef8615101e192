"""Tiny synthetic data for the CRF and segmentation tests: noisy dark spheres with known masks."""

from __future__ import annotations

import torch


def noisy_spheres(
    n_boxes: int, noise: float, seed: int, size: int = 32
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(truth bool, volume float, probability float)``, each ``(n_boxes, size, size, size)``.

    A dark sphere (radius 5-9 voxels, near the centre) in a box with Gaussian noise of std
    ``noise`` (contrast 1), and a "decoder" probability whose logit is a clipped signed distance
    to the surface plus independent noise of std ``3 * noise``.
    """
    gen = torch.Generator().manual_seed(seed)
    coords = torch.arange(size, dtype=torch.float32)
    zz, yy, xx = torch.meshgrid(coords, coords, coords, indexing="ij")
    truth, volume, probability = [], [], []
    for _ in range(n_boxes):
        centre = (size - 1) / 2 + 2 * torch.randn(3, generator=gen)
        radius = 5 + 4 * torch.rand(1, generator=gen)
        dist = ((zz - centre[0]) ** 2 + (yy - centre[1]) ** 2 + (xx - centre[2]) ** 2).sqrt()
        truth.append(dist < radius)
        shape = (size, size, size)
        volume.append(
            -torch.sigmoid(2 * (radius - dist)) + noise * torch.randn(shape, generator=gen)
        )
        logit = 2 * (radius - dist).clamp(-3, 3) + 3 * noise * torch.randn(shape, generator=gen)
        probability.append(torch.sigmoid(logit))
    return torch.stack(truth), torch.stack(volume), torch.stack(probability)
