"""One prediction per molecule: per-class non-maximum suppression of a result table.

Picking stores several candidates on one molecule (its centre and off-centre peaks, at least
``--min-distance`` apart). After classification, candidates of the same class closer than a
molecule's radius are the same molecule: :func:`suppress_duplicates` keeps the most probable.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from cosnet_index.errors import InputError
from cosnet_index.pick._peaks import non_maximum_suppression

__all__ = ["suppress_duplicates"]


def suppress_duplicates(
    table: pd.DataFrame, min_distance_voxels: float, *, score: str = "probability"
) -> pd.DataFrame:
    """Rows of ``table`` after greedy NMS within each (tomogram, class), best ``score`` first.

    Args:
        table: a classify or search table (``tomogram, x, y, z, class`` and ``score``).
        min_distance_voxels: rows of one class and tomogram closer than this are one molecule.
        score: the column that ranks them.

    Returns:
        The kept rows, in their original order.

    Raises:
        InputError: missing columns or a negative distance.
    """
    need = {"tomogram", "x", "y", "z", "class", score}
    if not need <= set(table.columns):
        raise InputError(f"the table lacks the columns {sorted(need - set(table.columns))}")
    if not min_distance_voxels >= 0:
        raise InputError(f"the minimum distance must be >= 0 voxels, got {min_distance_voxels}")
    keep = np.zeros(len(table), dtype=bool)
    positions = table[["x", "y", "z"]].to_numpy(np.float64)
    scores = table[score].to_numpy(np.float64)
    for rows in table.groupby(["tomogram", "class"], sort=False).indices.values():
        kept = non_maximum_suppression(positions[rows], scores[rows], min_distance_voxels)
        keep[rows[kept]] = True
    return table[keep]
