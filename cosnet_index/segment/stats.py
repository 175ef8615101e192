"""Per-hit statistics of segmented masks: size, volume, centroid, principal extents."""

from __future__ import annotations

import numpy as np

__all__ = ["STAT_COLUMNS", "mask_statistics"]

STAT_COLUMNS = (
    "voxels",
    "volume_nm3",
    "centroid_x",
    "centroid_y",
    "centroid_z",
    "extent_major_nm",
    "extent_mid_nm",
    "extent_minor_nm",
    "mean_probability",
)


def mask_statistics(
    masks: np.ndarray,
    probability: np.ndarray,
    start_zyx: np.ndarray,
    voxel_size_angstrom: float,
) -> dict[str, np.ndarray]:
    """Statistics of ``(n, d, h, w)`` boolean masks placed at ``start_zyx (n, 3)`` in a tomogram.

    Returns one ``(n,)`` array per name of :data:`STAT_COLUMNS`:

    - ``voxels``: voxels in the mask; ``volume_nm3``: that times the voxel volume;
    - ``centroid_x/y/z``: the mask's centre of mass in voxels of the tomogram (x, y, z, the
      convention of coordinate tables; a voxel index names the voxel's centre);
    - ``extent_major/mid/minor_nm``: full lengths along the principal axes of the inertia
      tensor, ``2 sqrt(5 lambda_i)`` times the voxel size for the eigenvalues ``lambda_i`` of the
      coordinates' covariance: the axis lengths of the solid ellipsoid with the same second
      moments (exact for an ellipsoid; a sphere of radius r gives 2r on every axis);
    - ``mean_probability``: mean of ``probability`` inside the mask (``segment`` passes the
      decoder's probability: the network's confidence in the refined mask).

    Empty masks give 0 voxels and NaN centroid, extents and mean probability.
    """
    n = masks.shape[0]
    voxel_nm = float(voxel_size_angstrom) / 10.0
    out = {name: np.full(n, np.nan) for name in STAT_COLUMNS}
    out["voxels"] = masks.reshape(n, -1).sum(axis=1).astype(np.int64)
    out["volume_nm3"] = out["voxels"] * voxel_nm**3
    for i in range(n):
        zyx = np.argwhere(masks[i])  # (m, 3)
        if len(zyx) == 0:
            continue
        centre = zyx.mean(axis=0)
        out["centroid_z"][i], out["centroid_y"][i], out["centroid_x"][i] = centre + start_zyx[i]
        if len(zyx) > 1:
            cov = np.cov(zyx.T, bias=True)
            evals = np.clip(np.linalg.eigvalsh(cov)[::-1], 0.0, None)  # descending
        else:
            evals = np.zeros(3)
        extents = 2.0 * np.sqrt(5.0 * evals) * voxel_nm
        out["extent_major_nm"][i], out["extent_mid_nm"][i], out["extent_minor_nm"][i] = extents
        out["mean_probability"][i] = float(probability[i][masks[i]].mean())
    return out
