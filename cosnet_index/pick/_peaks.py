"""Peak finding shared by the detectors: local maxima of a response and greedy NMS."""

from __future__ import annotations

import numpy as np
import scipy.ndimage as ndi
from scipy.spatial import cKDTree

__all__ = ["local_maxima", "non_maximum_suppression", "robust_spread", "size_aware_suppression"]


def local_maxima(
    response: np.ndarray, radius: int, core: tuple[int, int] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Voxels that are the maximum of the ``(2 radius + 1)``^3 cube around them and positive.

    Args:
        response: ``(z, y, x)`` float array.
        radius: half side of the cube, in voxels of ``response``.
        core: keep maxima whose z lies in ``[core[0], core[1])`` (a slab's own slices, its
            halo left out); None keeps all.

    Returns:
        ``(zyx, values)``: ``(n, 3)`` int64 indices and their ``(n,)`` responses.
    """
    size = 2 * max(1, int(radius)) + 1
    peak = ndi.maximum_filter(response, size=size, mode="nearest")
    mask = (response == peak) & (response > 0)
    if core is not None:
        mask[: core[0]] = False
        mask[core[1] :] = False
    zyx = np.argwhere(mask)
    return zyx.astype(np.int64), response[mask].astype(np.float64)


def non_maximum_suppression(xyz: np.ndarray, scores: np.ndarray, min_distance: float) -> np.ndarray:
    """Greedy NMS: best score first, drop every point closer than ``min_distance`` to a kept one.

    Args:
        xyz: ``(n, 3)`` positions.
        scores: ``(n,)``; ties keep the earlier point.
        min_distance: in the units of ``xyz``; 0 keeps everything.

    Returns:
        ``(k,)`` int64 indices of the kept points, best score first.
    """
    xyz = np.asarray(xyz, dtype=np.float64).reshape(-1, 3)
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    if len(order) == 0 or min_distance <= 0:
        return order.astype(np.int64)
    tree = cKDTree(xyz)
    return _greedy(order, lambda i: tree.query_ball_point(xyz[i], r=min_distance * (1 - 1e-9)))


def _greedy(order: np.ndarray, dropped) -> np.ndarray:  # type: ignore[no-untyped-def]
    """Walk ``order``, keep each point not yet removed and remove ``dropped(i)`` of it."""
    removed = np.zeros(len(order), dtype=bool)
    kept = []
    for i in order:
        if removed[i]:
            continue
        kept.append(i)
        removed[dropped(i)] = True
    return np.asarray(kept, dtype=np.int64)


def size_aware_suppression(
    xyz: np.ndarray,
    scores: np.ndarray,
    sizes: np.ndarray,
    fit: np.ndarray,
    min_distance: float,
    fraction: float,
) -> np.ndarray:
    """Greedy NMS of centres found by spheres of several sizes.

    Best score first (ties: the better ``fit``, then the earlier point). A kept centre drops
    every centre closer than ``min_distance``; every centre of its own size closer than
    ``fraction * size`` (two centres of one molecule, merged at its scale); and every smaller
    centre inside its sphere (closer than ``size / 2``) that fits worse (a lobe, or a blob on
    the wall of a ring or a shell, of the molecule the larger sphere explains better). A larger
    sphere never hides a smaller molecule that fits better than it (one of a crowd), and a
    small centre never hides the centre of a larger molecule.

    Args:
        xyz: ``(n, 3)`` positions.
        scores: ``(n,)``.
        sizes: ``(n,)`` each centre's sphere diameter, in the units of ``xyz``.
        fit: ``(n,)`` how well that sphere explains the density there (larger: better).
        min_distance: every two kept centres are at least this far apart.
        fraction: of a centre's own size, its merging radius for centres of that size.

    Returns:
        ``(k,)`` int64 indices of the kept centres, best first.
    """
    xyz = np.asarray(xyz, dtype=np.float64).reshape(-1, 3)
    scores = np.asarray(scores, dtype=np.float64)
    sizes = np.asarray(sizes, dtype=np.float64)
    fit = np.asarray(fit, dtype=np.float64)
    order = np.lexsort((-fit, -scores))  # stable: full ties keep the earlier point
    if len(order) == 0:
        return order.astype(np.int64)
    tree = cKDTree(xyz)

    def dropped(i: int) -> np.ndarray:
        reach = max(min_distance, fraction * sizes[i], 0.5 * sizes[i])
        near = np.asarray(tree.query_ball_point(xyz[i], r=reach * (1 - 1e-9)), dtype=np.int64)
        d = np.linalg.norm(xyz[near] - xyz[i], axis=1)
        drop = (
            (d < min_distance)
            | ((sizes[near] == sizes[i]) & (d < fraction * sizes[i]))
            | ((sizes[near] < sizes[i]) & (fit[near] < fit[i]) & (d < 0.5 * sizes[i]))
        )
        return near[drop]

    return _greedy(order, dropped)


def robust_spread(values: np.ndarray) -> float:
    median = float(np.median(values))
    return 1.4826 * float(np.median(np.abs(values - median))) or float(values.std()) or 1.0
