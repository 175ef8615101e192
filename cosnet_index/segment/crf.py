"""Batched binary 3D dense CRF (mean-field inference) in torch.

The model is the fully connected CRF of Kraehenbuehl & Koltun (2011) over the voxels of one box,
with the conventions of its reference implementation (pydensecrf), so that the two can be compared
on the same inputs:

- unary ``U_l = -log q_l`` with ``q_1 = sigmoid(unary_scale * logit(p))`` from the decoder's
  foreground probability ``p``;
- two kernels, each including the voxel itself and symmetrically normalised,
  ``K~ = D^-1/2 K D^-1/2`` with ``D = K 1``: the smoothness kernel
  ``exp(-|dp|^2 / 2 theta_gamma^2)`` and the bilateral kernel
  ``exp(-|dp|^2 / 2 theta_alpha^2 - dI^2 / 2 theta_beta^2)`` on z-scored box intensity;
- Potts compatibility, so that one mean-field step is
  ``Q_l <- softmax_l(-U_l + sum_k w_k (K~_k Q_l))``.

With two labels ``Q_0 = 1 - Q_1`` and the update needs one filtered channel per kernel:
``a <- u + sum_k w_k K~_k (2 Q_1 - 1)``, ``Q_1 = sigmoid(a)`` with ``u = U_0 - U_1``.

Filtering is near-exact instead of the permutohedral lattice's approximation: the spatial Gaussian
by separable matrices (exact, or low-rank for wide kernels), the bilateral range kernel by a
quadrature (ripple of about 1.4%, see ``_filters.py``); everything runs on the
device of the input tensors (CUDA when the caller puts them there) and is differentiable, which is
how the parameters are fitted (``fit.py``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import torch

from cosnet_index.errors import InputError
from cosnet_index.segment import _bilateral_numba
from cosnet_index.segment._filters import (
    axis_factors,
    bilateral_filter,
    bilateral_levels,
    level_grid,
    separable_filter,
)
from cosnet_index.segment.params import CRFParams

__all__ = ["crf_refine", "mean_field", "normalise_intensity", "unary_logit"]

log = logging.getLogger(__name__)

_PROB_EPS = 1e-6
_INTENSITY_CLIP = 8.0
# crf_refine stops when no voxel's Q_1 moved by more than this in one iteration (see docs)
DEFAULT_TOL = 0.05


def normalise_intensity(volumes: torch.Tensor) -> torch.Tensor:
    """Z-score each box ``(b, d, h, w)`` and clip to +-8 standard deviations (the CRF's feature)."""
    flat = volumes.reshape(volumes.shape[0], -1).float()
    mean = flat.mean(dim=1).view(-1, 1, 1, 1)
    std = flat.std(dim=1).clamp_min(1e-8).view(-1, 1, 1, 1)
    return ((volumes.float() - mean) / std).clamp(-_INTENSITY_CLIP, _INTENSITY_CLIP)


def unary_logit(probability: torch.Tensor, unary_scale: float | torch.Tensor = 1.0) -> torch.Tensor:
    """``u = U_0 - U_1 = unary_scale * logit(p)``, with ``p`` clipped to ``[1e-6, 1 - 1e-6]``."""
    p = probability.float().clamp(_PROB_EPS, 1 - _PROB_EPS)
    return unary_scale * torch.log(p / (1 - p))


def _normalised(
    filt: Callable[[torch.Tensor], torch.Tensor], like: torch.Tensor
) -> Callable[[torch.Tensor], torch.Tensor]:
    """``q -> K~ q = D^-1/2 K D^-1/2 q`` for a filter ``filt`` (``K``) with ``D = K 1``."""
    inv_sqrt = filt(torch.ones_like(like)).clamp_min(1e-20).rsqrt()  # (b, d, h, w)
    return lambda q: inv_sqrt * filt(inv_sqrt * q)


def mean_field(
    unary: torch.Tensor,
    intensity: torch.Tensor,
    *,
    w_spatial: float | torch.Tensor,
    theta_gamma: float | torch.Tensor,
    w_bilateral: float | torch.Tensor,
    theta_alpha: float | torch.Tensor,
    theta_beta: float | torch.Tensor,
    n_iter: int,
    low_rank: bool = True,
    tol: float = 0.0,
    banded: bool | None = None,
) -> torch.Tensor:
    """Mean-field inference; returns the foreground logit ``a`` ``(b, d, h, w)``.

    Args:
        unary: ``u = U_0 - U_1`` per voxel, ``(b, d, h, w)`` (see :func:`unary_logit`).
        intensity: the bilateral kernel's feature, ``(b, d, h, w)`` (see
            :func:`normalise_intensity`).
        w_spatial, theta_gamma, w_bilateral, theta_alpha, theta_beta, n_iter: see
            :class:`CRFParams`; float or 0-d tensors (tensors carry gradients when fitting).
        low_rank: apply wide Gaussians through their leading eigenvectors (faster; no gradient
            with respect to the widths). Use ``False`` when fitting.
        tol: a box stops iterating (keeps its logit) after the first iteration that moved none
            of its voxels' ``Q_1`` by more than ``tol``, so its result does not depend on its
            batch-mates; the loop ends when every box has stopped or after ``n_iter``
            (0: always ``n_iter`` iterations).
        banded: apply the bilateral kernel through the compiled kernels of
            ``_bilateral_numba`` (each voxel's 8 nearest quadrature levels). ``None``: when they
            can run and apply (numba installed, CPU float32 tensors, ``low_rank``, no gradient).
    """
    shape = unary.shape[-3:]
    dev, dt = unary.device, unary.dtype
    terms = []
    if _positive(w_spatial):
        fac = [axis_factors(n, theta_gamma, low_rank=low_rank, device=dev, dtype=dt) for n in shape]
        terms.append((w_spatial, _normalised(lambda x: separable_filter(x, fac), unary)))
    if _positive(w_bilateral):
        fac_a = [
            axis_factors(n, theta_alpha, low_rank=low_rank, device=dev, dtype=dt) for n in shape
        ]
        if banded is None:
            banded = _can_band(unary, intensity, low_rank, w_bilateral, theta_alpha, theta_beta)
        if banded:
            lo, step, n_levels = level_grid(intensity, theta_beta)
            bands = _bilateral_numba.BandedLevels(intensity, lo, step, n_levels, theta_beta)

            def filt_b(x: torch.Tensor) -> torch.Tensor:
                return _bilateral_numba.banded_bilateral_filter(x, bands, fac_a)

        else:
            phi = bilateral_levels(intensity, theta_beta)  # (b, d, h, L, w)

            def filt_b(x: torch.Tensor) -> torch.Tensor:
                return bilateral_filter(x, phi, fac_a)

        terms.append((w_bilateral, _normalised(filt_b, unary)))

    logit = unary
    signed = 2 * torch.sigmoid(logit) - 1  # Q_1 - Q_0
    active = None  # boxes still iterating (tol > 0); a converged box keeps its logit
    for _ in range(int(n_iter)):
        update = unary
        for weight, apply in terms:
            update = update + weight * apply(signed)
        if tol <= 0:
            logit = update
            signed = 2 * torch.sigmoid(logit) - 1
            continue
        new = 2 * torch.sigmoid(update) - 1
        moved = (new - signed).abs().flatten(1).amax(dim=1) > 2 * tol  # |dQ_1| = |d signed| / 2
        keep = torch.ones_like(moved) if active is None else active
        sel = keep.view(-1, 1, 1, 1)
        logit = torch.where(sel, update, logit)
        signed = torch.where(sel, new, signed)
        active = keep & moved
        if not bool(active.any()):
            break
    return logit


def _can_band(
    unary: torch.Tensor, intensity: torch.Tensor, low_rank: bool, *params: float | torch.Tensor
) -> bool:
    """Whether the compiled banded bilateral filter applies (see :func:`mean_field`)."""
    if not (_bilateral_numba.available() and low_rank):
        return False
    if torch.is_grad_enabled() and any(
        isinstance(t, torch.Tensor) and t.requires_grad for t in (unary, intensity, *params)
    ):
        return False
    return all(t.device.type == "cpu" and t.dtype == torch.float32 for t in (unary, intensity))


def _positive(value: float | torch.Tensor) -> bool:
    """Whether a kernel is used: its weight is > 0, or it is being fitted (carries a gradient)."""
    if isinstance(value, torch.Tensor) and value.requires_grad:
        return True
    return bool(value > 0)


def crf_refine(
    probability: torch.Tensor,
    volumes: torch.Tensor,
    params: CRFParams,
    *,
    batch_size: int = 32,
    tol: float = DEFAULT_TOL,
) -> torch.Tensor:
    """Refine decoder probabilities with the dense CRF; returns the foreground marginal.

    Args:
        probability: decoder foreground probability, ``(b, d, h, w)`` in [0, 1].
        volumes: the boxes the probabilities were predicted from, ``(b, d, h, w)``, any contrast
            and scale (z-scored internally for the bilateral kernel).
        params: the CRF's parameters (the fitted ones: :func:`load_crf_params`).
        batch_size: boxes per chunk (memory grows with it and the number of intensity levels).
        tol: stop a chunk's mean field early once no voxel's ``Q_1`` moves by more than this in
            an iteration (at most ``params.n_iter``); 0 runs exactly ``params.n_iter``.

    Returns:
        ``(b, d, h, w)`` float32 on the input's device: ``Q_1``; the mask is ``Q_1 > 0.5``.

    Raises:
        InputError: shapes differ or are not ``(b, d, h, w)``.
    """
    if probability.ndim != 4 or probability.shape != volumes.shape:
        raise InputError(
            f"crf_refine needs probability and volumes of the same shape (b, d, h, w); got "
            f"{tuple(probability.shape)} and {tuple(volumes.shape)}"
        )
    out = torch.empty(probability.shape, device=probability.device, dtype=torch.float32)
    with torch.no_grad():
        for start in range(0, probability.shape[0], batch_size):
            sl = slice(start, start + batch_size)
            vol = volumes[sl].to(probability.device)
            logit = mean_field(
                unary_logit(probability[sl], params.unary_scale),
                normalise_intensity(vol),
                w_spatial=params.w_spatial,
                theta_gamma=params.theta_gamma,
                w_bilateral=params.w_bilateral,
                theta_alpha=params.theta_alpha,
                theta_beta=params.theta_beta,
                n_iter=params.n_iter,
                low_rank=True,
                tol=tol,
            )
            out[sl] = torch.sigmoid(logit)
    return out
