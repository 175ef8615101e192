"""Per-box intensity normalisation: the only preprocessing the model expects."""

from __future__ import annotations

import torch
from torch import Tensor

from cosnet_index.errors import InputError

__all__ = ["as_box_batch", "normalize_boxes"]


def as_box_batch(x: Tensor, box: int) -> Tensor:
    """Return ``x`` as a float32 ``(n, 1, box, box, box)`` tensor.

    Accepts ``(n, box, box, box)`` or ``(n, 1, box, box, box)``.

    Raises:
        InputError: any other shape, or non-finite voxels.
    """
    if x.ndim == 4:
        x = x.unsqueeze(1)
    if x.ndim != 5 or x.shape[1] != 1 or tuple(x.shape[2:]) != (box, box, box):
        raise InputError(
            f"expected boxes of shape (n, {box}, {box}, {box}) or (n, 1, {box}, {box}, {box}), "
            f"got {tuple(x.shape)}: extract {box}^3 boxes at the model's voxel size"
        )
    return x.float()


def normalize_boxes(x: Tensor, eps: float = 1e-6) -> Tensor:
    """Zero-mean, unit-standard-deviation per box.

    Args:
        x: ``(n, ...)`` boxes (any trailing shape), any contrast (molecules dark in tomograms).

    Returns:
        The same shape, float32; a constant box becomes all zeros.
    """
    x = x.float()
    flat = x.reshape(x.shape[0], -1)
    mean = flat.mean(dim=1, keepdim=True)
    std = flat.std(dim=1, keepdim=True, unbiased=False)
    flat = (flat - mean) / torch.clamp(std, min=eps)
    return flat.reshape(x.shape)
