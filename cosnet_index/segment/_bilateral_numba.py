"""The bilateral filter's splat and slice as numba kernels, with the range quadrature truncated.

:func:`cosnet_index.segment._filters.bilateral_filter` evaluates every quadrature level at every
voxel: ``L`` levels (often 25-30) times the spatial rank ``r`` per voxel, twice (splat, slice), as
many small batched matrix products. The level weights ``phi_l(I) = exp(-(I - c_l)^2 / beta^2)``
are negligible far from the voxel's own intensity: with levels ``step >= beta`` apart, the
``K = 8`` levels around it (at most 3-4 ``step`` away) hold all but ``exp(-9) ~ 1e-4`` of each
weight sum, far below the quadrature's own ripple (1.4%). These kernels visit only those ``K``
levels, in compiled loops over the voxels (parallel over image planes), so the filter does
``K * r`` instead of ``L * r`` multiply-adds per voxel and never builds the ``(b, d, h, L, w)``
weight array.

Why hand-written: neither torch nor scipy has a banded (per-voxel window) splat/slice; torch's
``scatter_add`` / ``gather`` with expanded indices measured slower than the dense products here.
The torch path stays the reference (CUDA, gradients); ``tests/test_crf.py`` checks that both
agree. Used only for CPU inference, when numba is installed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

try:  # optional: the CPU fast path
    import numba
except ImportError:  # pragma: no cover - exercised where numba is absent
    numba = None

__all__ = ["TRUNCATED_LEVELS", "BandedLevels", "available", "banded_bilateral_filter"]

TRUNCATED_LEVELS = 8  # levels visited per voxel: floor(t) - 3 .. floor(t) + 4
_K = TRUNCATED_LEVELS
_MAX_KRON = 64  # rank product up to which the d and h factors are applied as one matrix


def available() -> bool:
    """Whether the compiled kernels can run (numba importable)."""
    return numba is not None


if numba is not None:

    @numba.njit(inline="always")
    def _first_level(value, lo, step, half):  # pragma: no cover - compiled
        return math.floor((value - lo) / step) - half

    @numba.njit(parallel=True, cache=True, fastmath=True)
    def _splat(x, inten, lo, step, inv_beta2, down_wt, n_levels, k_levels):  # pragma: no cover
        b, d, h, w = x.shape
        r = down_wt.shape[1]
        half = k_levels // 2 - 1
        decay = math.exp(-2.0 * inv_beta2 * step * step)
        grid = np.zeros((b, d, h, n_levels, r), dtype=np.float32)
        for plane in numba.prange(b * d):
            bi = plane // d
            di = plane % d
            for hi in range(h):
                for wi in range(w):
                    value = inten[bi, di, hi, wi]
                    xv = x[bi, di, hi, wi]
                    k0 = _first_level(value, lo[bi], step, half)
                    # phi at consecutive levels by recurrence: 2 exps per voxel, not K
                    diff = value - (lo[bi] + k0 * step)
                    phi = math.exp(-diff * diff * inv_beta2) * xv
                    ratio = math.exp(inv_beta2 * step * (2.0 * diff - step))
                    for k in range(k_levels):
                        level = k0 + k
                        if 0 <= level < n_levels:
                            for ri in range(r):
                                grid[bi, di, hi, level, ri] += phi * down_wt[wi, ri]
                        phi *= ratio
                        ratio *= decay
        return grid

    @numba.njit(parallel=True, cache=True, fastmath=True)
    def _slice(grid, inten, lo, step, inv_beta2, up_w):  # pragma: no cover - compiled
        b, d, h, n_levels, r = grid.shape
        w = inten.shape[-1]
        k_levels = _K
        half = k_levels // 2 - 1
        decay = math.exp(-2.0 * inv_beta2 * step * step)
        out = np.zeros((b, d, h, w), dtype=np.float32)
        for plane in numba.prange(b * d):
            bi = plane // d
            di = plane % d
            for hi in range(h):
                for wi in range(w):
                    value = inten[bi, di, hi, wi]
                    k0 = _first_level(value, lo[bi], step, half)
                    diff = value - (lo[bi] + k0 * step)
                    phi = math.exp(-diff * diff * inv_beta2)
                    ratio = math.exp(inv_beta2 * step * (2.0 * diff - step))
                    acc = 0.0
                    for k in range(k_levels):
                        level = k0 + k
                        if 0 <= level < n_levels:
                            s = 0.0
                            for ri in range(r):
                                s += grid[bi, di, hi, level, ri] * up_w[wi, ri]
                            acc += phi * s
                        phi *= ratio
                        ratio *= decay
                    out[bi, di, hi, wi] = acc
        return out


class BandedLevels:
    """The quadrature levels of one chunk, as the kernels read them.

    Same levels as :func:`~cosnet_index.segment._filters.bilateral_levels` (``lo``, ``step``,
    ``n_levels`` from :func:`~cosnet_index.segment._filters.level_grid`); each kernel computes a
    voxel's ``K`` weights where it needs them instead of storing them.
    """

    def __init__(
        self, intensity: torch.Tensor, lo: torch.Tensor, step: float, n_levels: int, beta: float
    ) -> None:
        self.intensity = np.ascontiguousarray(intensity.detach().cpu().numpy(), dtype=np.float32)
        self.lo = np.ascontiguousarray(lo.detach().cpu().numpy(), dtype=np.float64)
        self.step = float(step)
        self.inv_beta2 = 1.0 / float(beta) ** 2
        self.n_levels = int(n_levels)


def match_torch_threads() -> int:
    """Run numba's parallel kernels on as many threads as torch uses now (``--threads``,
    ``COSNET_INDEX_THREADS`` or the count ``AdaptiveThreads`` measured), at most numba's pool
    (``NUMBA_NUM_THREADS``, fixed when numba loads); returns the count. Without it they take
    every core the machine reports, beside torch's threads and other jobs on a shared node."""
    want = max(1, min(torch.get_num_threads(), int(numba.config.NUMBA_NUM_THREADS)))
    if numba.get_num_threads() != want:
        numba.set_num_threads(want)
    return want


def banded_bilateral_filter(
    x: torch.Tensor, levels: BandedLevels, factors: Sequence[tuple[torch.Tensor, torch.Tensor]]
) -> torch.Tensor:
    """``sum_l phi_l * G(phi_l * x)`` like ``bilateral_filter``, over each voxel's ``K`` levels.

    ``x`` is ``(b, d, h, w)`` float32 on the CPU; ``factors`` the spatial ``(down, up)`` pairs of
    axes d, h, w (:func:`~cosnet_index.segment._filters.axis_factors`). The kernels run on
    torch's current thread count (:func:`match_torch_threads`).
    """
    match_torch_threads()
    (down_d, up_d), (down_h, up_h), (down_w, up_w) = factors
    n = x.shape[-1]
    if up_w.numel() == 0:  # full-rank w factor: the slice reads column v for voxel v
        up_w = torch.eye(n, dtype=down_w.dtype)
    xs = np.ascontiguousarray(x.detach().numpy(), dtype=np.float32)
    grid = _splat(
        xs,
        levels.intensity,
        levels.lo,
        levels.step,
        levels.inv_beta2,
        np.ascontiguousarray(down_w.numpy().T),
        levels.n_levels,
        TRUNCATED_LEVELS,
    )
    b, d, h, n_levels, r = grid.shape
    g = torch.from_numpy(grid).reshape(b, d, h, n_levels * r)
    if up_d.numel() > 0 and up_h.numel() > 0 and down_d.shape[0] * down_h.shape[0] <= _MAX_KRON:
        # both low-rank: the d and h factors as one (rd rh, d h) matrix, two large products
        # instead of 2 b d small ones
        flat = g.reshape(b, d * h, n_levels * r)
        g = torch.kron(up_d, up_h) @ (torch.kron(down_d, down_h) @ flat)
    else:
        g = torch.matmul(down_h, g)  # (b, d, rh, C)
        g = torch.matmul(down_d, g.transpose(1, 2))  # (b, rh, rd, C)
        if up_d.numel() > 0:
            g = torch.matmul(up_d, g)  # (b, rh, d, C)
        g = g.transpose(1, 2)  # (b, d, rh, C)
        if up_h.numel() > 0:
            g = torch.matmul(up_h, g)  # (b, d, h, C)
    g = np.ascontiguousarray(g.reshape(b, d, h, n_levels, r).numpy())
    out = _slice(
        g,
        levels.intensity,
        levels.lo,
        levels.step,
        levels.inv_beta2,
        np.ascontiguousarray(up_w.numpy()),
    )
    return torch.from_numpy(out)
