"""The training loss of one step: balanced BCE over every pair of each episode, plus Dice.

Each episode is two support sets A and B over the same ``ways`` classes; all their boxes are
embedded in one batch and every (A_i, B_j) pair is scored through the head. The BCE weighs
positives and negatives half each, whatever ``ways`` is (the authors' independent pairs gave
~1/14 positives); Dice on the decoder masks is added (the paper's unweighted sum), and optionally
a prototypical (softmax) term.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from cosnet_index.data.episodes import Episode
from cosnet_index.model import CosNet
from cosnet_index.model.losses import dice_loss
from cosnet_index.model.normalize import normalize_boxes

__all__ = ["episode_loss"]


def _episode_logits(model: CosNet, f_a: torch.Tensor, f_b: torch.Tensor) -> torch.Tensor:
    """``(n, n)`` head logits of every (A_i, B_j) pair."""
    diff = (f_a[:, None, :] - f_b[None, :, :]).abs()  # (n, n, d)
    return model.head_b + (diff * model.head_w).sum(-1)


def episode_loss(
    model: CosNet,
    episodes: Sequence[Episode],
    dice_weight: float = 1.0,
    metric_weight: float = 0.0,
    decoder_fraction: float = 1.0,
    channels_last: bool = False,
) -> dict[str, torch.Tensor]:
    """Balanced BCE over all pairs of every episode + Dice on the boxes' masks.

    The decoder trains on the first ``ceil(decoder_fraction * n)`` boxes of each episode's A and
    B sets (the decoder is ~40% of a step's compute; every box still trains the embedding).
    ``channels_last`` runs the convolutions in ``channels_last_3d`` (same values).

    With ``metric_weight > 0`` a prototypical term is added: for every query ``B_j`` a softmax
    cross-entropy over its head logits against the n supports ``A_i`` (and symmetrically for
    every support over the queries). The BCE asks each pair's probability to be right on an
    absolute scale; this term only asks the right support to rank first, which is what n-way
    classification and search use.

    Returns:
        ``loss`` (backpropagate this) and detached ``bce``, ``dice``, ``metric`` (the
        prototypical term, 0 when off), ``acc`` (n-way accuracy of B_j against the A support
        set), ``pos_p``/``neg_p`` (mean probabilities).
    """
    device = next(model.parameters()).device
    vols = torch.cat([torch.cat([e.volumes_a, e.volumes_b]) for e in episodes])
    x = normalize_boxes(vols.unsqueeze(1)).to(device)  # (m, 1, B, B, B)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last_3d)
    features = model.forward_features(x)
    f = model.forward_embedding(features)
    bce_terms, metric_terms, accs, pos_p, neg_p = [], [], [], [], []
    start = 0
    for e in episodes:
        n = len(e.classes)
        f_a, f_b = f[start : start + n], f[start + n : start + 2 * n]
        start += 2 * n
        logits = _episode_logits(model, f_a, f_b)
        eye = torch.eye(n, device=device)
        weight = eye * (0.5 / n) + (1 - eye) * (0.5 / (n * (n - 1)))
        bce_terms.append(
            F.binary_cross_entropy_with_logits(logits, eye, weight=weight, reduction="sum")
        )
        if metric_weight:
            target = torch.arange(n, device=device)
            metric_terms.append(
                0.5 * (F.cross_entropy(logits.T, target) + F.cross_entropy(logits, target))
            )
        with torch.no_grad():
            accs.append((logits.argmax(0) == torch.arange(n, device=device)).float().mean())
            p = torch.sigmoid(logits)
            pos_p.append(p.diagonal().mean())
            neg_p.append((p.sum() - p.diagonal().sum()) / (n * (n - 1)))
    bce = torch.stack(bce_terms).mean()
    metric = torch.stack(metric_terms).mean() if metric_terms else torch.zeros((), device=device)
    dice = torch.zeros((), device=device)
    keep = _decoder_rows(episodes, decoder_fraction)
    mask_logits = model.forward_decoder(features if keep is None else features[keep])
    if mask_logits is not None:
        masks = torch.cat([torch.cat([e.masks_a, e.masks_b]) for e in episodes]).to(device)
        dice = dice_loss(torch.sigmoid(mask_logits), masks if keep is None else masks[keep])
    return {
        "loss": bce + dice_weight * dice + metric_weight * metric,
        "bce": bce.detach(),
        "metric": metric.detach(),
        "dice": dice.detach(),
        "acc": torch.stack(accs).mean(),
        "pos_p": torch.stack(pos_p).mean(),
        "neg_p": torch.stack(neg_p).mean(),
    }


def _decoder_rows(episodes: Sequence[Episode], fraction: float) -> torch.Tensor | None:
    """Indices of the boxes the decoder trains on (None: all of them)."""
    if fraction >= 1.0:
        return None
    rows, start = [], 0
    for e in episodes:
        n = len(e.classes)
        k = max(1, math.ceil(fraction * n))
        rows += [*range(start, start + k), *range(start + n, start + n + k)]
        start += 2 * n
    return torch.tensor(rows, dtype=torch.long)
