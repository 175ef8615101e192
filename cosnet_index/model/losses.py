"""Training losses: BCE on the match + soft Dice on both masks (the paper's unweighted sum)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["cosnet_loss", "dice_loss", "soft_dice"]


def soft_dice(prob: Tensor, target: Tensor, smooth: float = 1.0) -> Tensor:
    """Per-sample soft Dice of ``(n, ...)`` probabilities vs. ``(n, ...)`` binary masks."""
    prob = prob.reshape(prob.shape[0], -1)
    target = target.reshape(target.shape[0], -1).to(prob.dtype)
    inter = (prob * target).sum(1)
    return (2 * inter + smooth) / (prob.sum(1) + target.sum(1) + smooth)


def dice_loss(prob: Tensor, target: Tensor, smooth: float = 1.0) -> Tensor:
    """``1 - mean soft Dice`` (smooth 1, as the authors' code)."""
    return 1.0 - soft_dice(prob, target, smooth).mean()


def cosnet_loss(
    out: dict[str, Tensor | None],
    label: Tensor,
    mask_support: Tensor | None = None,
    mask_target: Tensor | None = None,
) -> dict[str, Tensor]:
    """BCE(match logit, label) + Dice(support mask) + Dice(target mask).

    Args:
        out: :meth:`CosNet.forward` output.
        label: ``(n,)`` 1 for same class, 0 otherwise.
        mask_support, mask_target: ``(n, B, B, B)`` ground-truth masks (ignored without decoder).

    Returns:
        ``loss`` (to backpropagate), ``bce`` and ``dice`` (detached parts).
    """
    logit = out["logit"]
    assert logit is not None
    bce = F.binary_cross_entropy_with_logits(logit, label.to(logit.dtype))
    dice = torch.zeros((), device=logit.device)
    if out.get("mask_support") is not None and mask_support is not None and mask_target is not None:
        dice = dice_loss(out["mask_support"], mask_support) + dice_loss(
            out["mask_target"], mask_target
        )
    return {"loss": bce + dice, "bce": bce.detach(), "dice": dice.detach()}
