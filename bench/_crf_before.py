"""The dense CRF as it was before the speed-up (commit be88d52), frozen as the bench reference.

``bench/segment.py`` times it beside today's ``crf_refine`` in the same run ("old CRF"). Copied
from ``cosnet_index/segment/_filters.py`` and ``crf.py`` of that commit; not used by the package.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch

from cosnet_index.errors import InputError
from cosnet_index.segment.crf import normalise_intensity, unary_logit
from cosnet_index.segment.params import CRFParams

# Keep eigenpairs of a 1-D Gaussian matrix down to this fraction of the largest eigenvalue.
_EIG_TOL = 1e-5
# Above this rank, a plain (n, n) matrix product is cheaper than two low-rank products.
_MAX_LOW_RANK = 16


def gaussian_matrix(
    n: int, theta: torch.Tensor | float, *, device=None, dtype=None
) -> torch.Tensor:
    """``(n, n)`` matrix ``exp(-(i - j)^2 / (2 theta^2))`` (differentiable in ``theta``)."""
    idx = torch.arange(n, device=device, dtype=dtype or torch.float32)
    diff2 = (idx[:, None] - idx[None, :]) ** 2  # (n, n)
    theta = torch.as_tensor(theta, device=idx.device, dtype=idx.dtype)
    return torch.exp(-diff2 / (2 * theta**2))


def axis_factors(
    n: int, theta: torch.Tensor | float, *, low_rank: bool = True, device=None, dtype=None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Factors ``(down, up)`` with ``G ~ up @ down`` for the 1-D Gaussian matrix of one axis.

    ``down`` is ``(r, n)`` and ``up`` is ``(n, r)``. With ``low_rank`` and a wide Gaussian, ``r`` is
    the numerical rank (eigenvalues above ``1e-5`` of the largest); otherwise ``down = G`` and
    ``up`` is ``None``-like identity (returned as an empty tensor) so that a single product is done.
    The low-rank path uses ``eigh`` and is meant for inference (no gradient through it).
    """
    g = gaussian_matrix(n, theta, device=device, dtype=dtype)  # (n, n)
    if low_rank:
        with torch.no_grad():
            evals, evecs = torch.linalg.eigh(g.double())  # ascending
            keep = evals > _EIG_TOL * evals[-1]
            rank = int(keep.sum())
        if rank <= _MAX_LOW_RANK:
            a = (evecs[:, keep] * evals[keep].clamp_min(0).sqrt()).to(g.dtype)  # (n, r)
            return a.T.contiguous(), a.contiguous()
    return g, torch.empty(0, device=g.device, dtype=g.dtype)


def _apply_axes(x: torch.Tensor, mats: Sequence[torch.Tensor]) -> torch.Tensor:
    """Multiply ``x (..., d, h, w)`` by ``mats[k] (m_k, n_k)`` along the last three axes."""
    lead = x.shape[:-3]
    for mat in reversed(mats):  # w, then h, then d; each round rotates the axes once
        d, h, w = x.shape[-3:]
        x = (x.reshape(-1, w) @ mat.T).reshape(*lead, d, h, mat.shape[0])
        x = x.permute(*range(len(lead)), -1, -3, -2)  # (..., w', d, h)
    return x.contiguous()


def separable_filter(
    x: torch.Tensor, factors: Sequence[tuple[torch.Tensor, torch.Tensor]]
) -> torch.Tensor:
    """Gaussian-filter ``x (..., d, h, w)`` with one ``(down, up)`` pair per axis (d, h, w)."""
    downs = [f[0] for f in factors]
    x = _apply_axes(x, downs)
    ups = [f[1] for f in factors]
    if all(u.numel() > 0 for u in ups):
        x = _apply_axes(x, ups)
    elif any(u.numel() > 0 for u in ups):
        # mixed: expand only the axes that were reduced
        eye = [
            u if u.numel() > 0 else torch.eye(d.shape[0], device=x.device, dtype=x.dtype)
            for u, d in zip(ups, downs, strict=True)
        ]
        x = _apply_axes(x, eye)
    return x


def bilateral_levels(
    intensity: torch.Tensor,
    theta_beta: torch.Tensor | float,
    *,
    spacing: float = 1.0,
    max_levels: int = 64,
) -> torch.Tensor:
    """Quadrature weights ``phi (b, d, h, L, w)`` of the range kernel at ``(b, d, h, w)`` values.

    Levels are evenly spaced, ``spacing * beta`` apart (at most ``max_levels``; the spacing widens
    when the intensity range would need more), from each box's lowest intensity minus
    ``1.5 beta`` (three standard deviations of the quadrature's integrand) up to past its highest
    plus ``1.5 beta``; all boxes get the number of levels of the widest (extra levels far above a
    box's range only add terms below 1e-4).
    """
    beta = torch.as_tensor(theta_beta, device=intensity.device, dtype=intensity.dtype)
    b = intensity.shape[0]
    with torch.no_grad():
        flat = intensity.reshape(b, -1)
        lo = flat.min(dim=1).values - 1.5 * float(beta)  # (b,)
        span = flat.max(dim=1).values + 1.5 * float(beta) - lo
        step = max(spacing * float(beta), float(span.max()) / (max_levels - 1))
        n_levels = max(2, math.ceil(float(span.max()) / step) + 1)
        offsets = step * torch.arange(n_levels, device=intensity.device, dtype=intensity.dtype)
        centres = lo[:, None] + offsets[None, :]  # (b, L): a box's levels ignore its batch-mates
    diff = intensity.unsqueeze(3) - centres.view(b, 1, 1, n_levels, 1)  # (b, d, h, L, w)
    if torch.is_grad_enabled() and (intensity.requires_grad or beta.requires_grad):
        return torch.exp(-(diff**2) / beta**2).contiguous()  # differentiable (the CRF fit)
    # inference: the same values in place (this array is the CRF's largest, ~L volumes)
    return diff.square_().mul_(-1.0 / float(beta) ** 2).exp_()


def bilateral_filter(
    x: torch.Tensor, phi: torch.Tensor, factors: Sequence[tuple[torch.Tensor, torch.Tensor]]
) -> torch.Tensor:
    """``sum_l phi_l * G(phi_l * x)``: the bilateral kernel (up to a constant) applied to ``x``.

    ``x`` is ``(b, d, h, w)``, ``phi`` from :func:`bilateral_levels` ``(b, d, h, L, w)``, and
    ``factors`` the spatial ``(down, up)`` pairs of axes d, h, w. The range weights are folded into
    two batched matrix products per image row (splat + w-projection, then slicing), so the
    ``L`` filtered copies of the volume are never materialised at full resolution.
    """
    b, d, h, n_levels, w = phi.shape
    (down_d, up_d), (down_h, up_h), (down_w, up_w) = factors
    rows = phi.reshape(b * d * h, n_levels, w)
    xa = x.reshape(b * d * h, w, 1) * down_w.T  # (rows, w, r): x_w * A[w, r]
    grid = torch.bmm(rows, xa)  # (rows, L, r): splat onto the levels, projected along w
    r = grid.shape[-1]
    grid = grid.reshape(b, d, h, n_levels * r)
    grid = torch.matmul(down_h, grid)  # (b, d, rh, C), C = L * r
    grid = torch.matmul(down_d, grid.transpose(1, 2))  # (b, rh, rd, C)
    if up_d.numel() > 0:
        grid = torch.matmul(up_d, grid)  # (b, rh, d, C)
    grid = grid.transpose(1, 2)  # (b, d, rh, C)
    if up_h.numel() > 0:
        grid = torch.matmul(up_h, grid)  # (b, d, h, C)
    grid = grid.reshape(b * d * h, n_levels, r)
    sliced = torch.bmm(rows.transpose(1, 2), grid)  # (rows, w, r): sum_l phi_l(w) grid[l, r]
    if up_w.numel() > 0:
        y = (sliced * up_w).sum(-1)  # (rows, w)
    else:
        y = sliced.diagonal(dim1=1, dim2=2)  # full-rank w: column v of the filter is voxel v
    return y.reshape(b, d, h, w)


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
        phi = bilateral_levels(intensity, theta_beta)  # (b, d, h, L, w)

        def filt_b(x: torch.Tensor) -> torch.Tensor:
            return bilateral_filter(x, phi, fac_a)

        terms.append((w_bilateral, _normalised(filt_b, unary)))

    logit = unary
    for _ in range(int(n_iter)):
        signed = 2 * torch.sigmoid(logit) - 1  # Q_1 - Q_0
        logit = unary
        for weight, apply in terms:
            logit = logit + weight * apply(signed)
    return logit


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
) -> torch.Tensor:
    """Refine decoder probabilities with the dense CRF; returns the foreground marginal.

    Args:
        probability: decoder foreground probability, ``(b, d, h, w)`` in [0, 1].
        volumes: the boxes the probabilities were predicted from, ``(b, d, h, w)``, any contrast
            and scale (z-scored internally for the bilateral kernel).
        params: the CRF's parameters (the fitted ones: :func:`load_crf_params`).
        batch_size: boxes per chunk (memory grows with it and the number of intensity levels).

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
            )
            out[sl] = torch.sigmoid(logit)
    return out
