"""Dice overlap of binary masks, batched."""

from __future__ import annotations

import numpy as np
import torch

from cosnet_index.errors import InputError

__all__ = ["dice"]


def dice(pred: torch.Tensor | np.ndarray, truth: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Dice ``2|A n B| / (|A| + |B|)`` per box of two boolean masks ``(b, ...)``; returns ``(b,)``.

    Two empty masks agree perfectly (Dice 1). Non-boolean inputs are thresholded at 0.5.
    """
    a = torch.as_tensor(pred)
    b = torch.as_tensor(truth)
    if a.shape != b.shape:
        raise InputError(
            f"dice needs masks of the same shape, got {tuple(a.shape)} and {tuple(b.shape)}"
        )
    a = (a if a.dtype == torch.bool else a > 0.5).reshape(a.shape[0], -1)
    b = (b if b.dtype == torch.bool else b > 0.5).reshape(b.shape[0], -1).to(a.device)
    inter = (a & b).sum(dim=1).double()
    total = (a.sum(dim=1) + b.sum(dim=1)).double()
    return torch.where(total > 0, 2 * inter / total.clamp_min(1), torch.ones_like(total))
