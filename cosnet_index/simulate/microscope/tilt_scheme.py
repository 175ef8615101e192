"""The tilt scheme of a single-axis series: its angles and the order they are recorded in.

Tilts are about the y axis, in degrees, 0 included. The order sets how much dose each tilt has
received before its own exposure (:mod:`~cosnet_index.simulate.microscope.dose`).
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["TILT_ORDERS", "acquisition_order", "tilt_angles_deg"]

TILT_ORDERS = ("dose-symmetric", "bidirectional")


def tilt_angles_deg(tilt_min_deg: float, tilt_max_deg: float, step_deg: float) -> np.ndarray:
    """Tilt angles of a series, ascending: 0, +-step, ... within [tilt_min, tilt_max] (float64)."""
    lo = math.ceil(tilt_min_deg / step_deg - 1e-9)
    hi = math.floor(tilt_max_deg / step_deg + 1e-9)
    return np.arange(lo, hi + 1, dtype=np.float64) * step_deg


def acquisition_order(angles_deg: np.ndarray, scheme: str) -> np.ndarray:
    """Index (into ``angles_deg``) of each tilt in the order it was recorded.

    ``dose-symmetric`` (Hagen et al. 2017): 0, then groups of two on alternating sides
    (+1, +2, -1, -2, +3, +4, ... steps). ``bidirectional``: 0 up to the positive end, then from the
    first negative tilt down to the negative end.
    """
    angles = np.asarray(angles_deg)
    zero = int(np.argmin(np.abs(angles)))
    positive = [i for i in np.argsort(angles) if angles[i] > angles[zero]]
    negative = [i for i in np.argsort(-angles) if angles[i] < angles[zero]]
    if scheme == "bidirectional":
        return np.array([zero, *positive, *negative], dtype=np.int64)
    order = [zero]
    p = n = 0
    side = 0
    while p < len(positive) or n < len(negative):
        group = positive if side == 0 else negative
        start = p if side == 0 else n
        order.extend(group[start : start + 2])
        if side == 0:
            p += 2
        else:
            n += 2
        side = 1 - side
    return np.array(order, dtype=np.int64)
