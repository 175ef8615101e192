"""Learned candidate detector: the COS-Net decoder's foreground probability on a coarse grid.

The tomogram is tiled by boxes whose centres lie half a box apart (``source_box_side / 2``
tomogram voxels, so 16 model voxels for the shipped 32-voxel box); each box is cut and resampled
exactly as ``index`` cuts boxes, decoded, and the central half of its probability mask (where
the box sees a whole molecule's context) is average-pooled ``pool`` times and written into a
coarse foreground map. The map tiles the volume without gaps. Candidates are the blobs of that
map (:func:`~cosnet_index.pick.blobs.detect_blobs` on it, bright), and a candidate's score is
the map smoothed at the molecule's scale, at the candidate: the decoder's mean foreground
probability around it, in [0, 1]. The shipped decoder segments the molecule at the centre of its
box and little else, so molecules far from every box centre stay faint in the map: the default
threshold is low (0.05) and the map is sparse (docs/picking.md measures what this costs).

Memory: the memory map, one batch of boxes and the coarse map (``(pool / box * 2)^3`` of the
volume's voxels: 1/8 for the shipped model at ``pool=2`` and 1 nm voxels).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import scipy.ndimage as ndi

from cosnet_index.errors import InputError
from cosnet_index.geometry import source_box_side
from cosnet_index.pick.blobs import check_diameters, detect_blobs

__all__ = ["DEFAULT_OBJECTNESS_THRESHOLD", "decoder_objectness", "objectness_candidates"]

logger = logging.getLogger(__name__)

DEFAULT_OBJECTNESS_THRESHOLD = 0.05
"""Mean decoder foreground probability a candidate needs (docs/picking.md measures it)."""


def decoder_objectness(
    volume: np.ndarray,
    voxel_size_angstrom: float,
    model: Any,
    *,
    invert_contrast: bool = False,
    pool: int = 2,
    batch_size: int = 64,
    device: str = "cpu",
) -> tuple[np.ndarray, float]:
    """The decoder's coarse foreground map of a ``(z, y, x)`` volume.

    Args:
        volume: ``(z, y, x)`` array, typically a memory map.
        voxel_size_angstrom: its voxel size.
        model: a :class:`~cosnet_index.model.CosNet` with a decoder.
        invert_contrast: molecules are bright.
        pool: average-pool the masks' central half by this factor.
        batch_size: boxes per forward pass.
        device: torch device of the model.

    Returns:
        ``(map, cell)``: the ``(z, y, x)`` foreground probability map and the side of one of
        its cells in tomogram voxels (cell ``i`` is centred on voxel ``i * cell + (cell - 1) / 2``).

    Raises:
        InputError: a model without decoder, or a ``pool`` that does not divide half a box.
    """
    import torch

    from cosnet_index.io.boxes import extract_boxes

    if getattr(model, "decoder", None) is None:
        raise InputError("this model has no decoder: use --pick dog")
    box = int(model.config.box)
    half = box // 2
    if pool < 1 or half % pool:
        raise InputError(f"pool must divide half the box ({half}), got {pool}")
    model_voxel = float(model.config.voxel_size_nm) * 10.0
    side = source_box_side(box, voxel_size_angstrom, model_voxel)
    step = max(1, side // 2)  # tomogram voxels between box centres
    cells = half // pool  # map cells per tile and axis
    cell = step / cells
    tiles = [math.ceil(n / step) for n in volume.shape]  # z, y, x
    fmap = np.zeros([t * cells for t in tiles], dtype=np.float32)
    grid = np.stack(np.meshgrid(*[np.arange(t) for t in tiles], indexing="ij"), -1).reshape(-1, 3)
    # the last tile of an axis may reach past the volume: its box centre stays inside it
    centres_zyx = np.minimum(grid * step + step // 2, np.asarray(volume.shape) - 1)
    model.to(device)
    lo = box // 4
    for start in range(0, len(grid), batch_size):
        rows = grid[start : start + batch_size]
        xyz = centres_zyx[start : start + batch_size][:, ::-1].astype(np.float64)
        boxes, _ = extract_boxes(
            volume, xyz, box, source_box=side, edge="pad", invert_contrast=invert_contrast
        )
        masks = model.decode(torch.from_numpy(boxes).to(device), batch_size)  # (b, B, B, B)
        centre = masks[:, lo : lo + half, lo : lo + half, lo : lo + half]
        if pool > 1:
            centre = torch.nn.functional.avg_pool3d(centre[:, None], pool)[:, 0]
        centre = centre.numpy()
        for (kz, ky, kx), tile in zip(rows, centre, strict=True):
            fmap[
                kz * cells : (kz + 1) * cells,
                ky * cells : (ky + 1) * cells,
                kx * cells : (kx + 1) * cells,
            ] = tile
    return fmap, cell


def objectness_candidates(
    volume: np.ndarray,
    voxel_size_angstrom: float,
    model: Any,
    diameters_angstrom: Sequence[float] | None = None,
    *,
    min_distance_angstrom: float | None = None,
    threshold: float = DEFAULT_OBJECTNESS_THRESHOLD,
    invert_contrast: bool = False,
    batch_size: int = 64,
    device: str = "cpu",
    max_candidates: int | None = None,
) -> pd.DataFrame:
    """Candidate centres from the decoder's foreground map (module docstring).

    Returns:
        As :func:`~cosnet_index.pick.blobs.detect_blobs`, with ``pick_score`` the mean
        foreground probability around the candidate.

    Raises:
        InputError: bad diameters or a model without decoder.
    """
    diameters = check_diameters(diameters_angstrom)
    fmap, cell = decoder_objectness(
        volume,
        voxel_size_angstrom,
        model,
        invert_contrast=invert_contrast,
        batch_size=batch_size,
        device=device,
    )
    cell_angstrom = cell * voxel_size_angstrom
    found = detect_blobs(
        fmap,
        cell_angstrom,
        diameters,
        min_distance_angstrom=min_distance_angstrom,
        threshold=-np.inf,
        invert_contrast=True,  # foreground is bright
        slab=max(fmap.shape[0], 1),
    )
    sigma = 0.5 * diameters[0] / cell_angstrom / math.sqrt(3.0)
    smooth = ndi.gaussian_filter(fmap, sigma, mode="nearest")
    index = np.round(found[["z", "y", "x"]].to_numpy()).astype(np.int64)
    score = smooth[tuple(index.T)] if len(index) else np.zeros(0, np.float32)
    xyz = found[["x", "y", "z"]].to_numpy() * cell + (cell - 1) / 2.0  # cells -> voxels
    inside = np.all(xyz <= np.asarray(volume.shape[::-1]) - 1, axis=1) & (score >= threshold)
    order = np.argsort(-score[inside], kind="stable")
    if max_candidates is not None:
        order = order[: int(max_candidates)]
    xyz = xyz[inside][order]
    logger.info("decoder objectness: %d candidates (threshold %.2f)", len(xyz), threshold)
    return pd.DataFrame(
        {
            "x": np.round(xyz[:, 0], 2),
            "y": np.round(xyz[:, 1], 2),
            "z": np.round(xyz[:, 2], 2),
            "pick_score": score[inside][order].astype(np.float32),
            "pick_diameter_angstrom": found["pick_diameter_angstrom"].to_numpy()[inside][order],
        }
    )
