"""Boxes of stored subtomograms, cut again exactly as they were indexed.

Indexing cuts each box from the tomogram's memory map at the voxel size the catalog recorded
for the tomogram, reads ``source_box_side(box, voxel, model voxel)`` voxels and Fourier-resamples
them to the model's box when the voxel sizes differ, and negates it when the part was indexed
with ``--invert-contrast`` (recorded per shard). :func:`read_indexed_boxes` replays those steps
from the catalog, so that the model sees the same box again: classes, segmentation and report
galleries use it (``tests/test_store_boxes.py`` checks a box read back embeds to the stored
vector, for a resampled and a contrast-inverted tomogram).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from cosnet_index.errors import InputError
from cosnet_index.geometry import source_box_side

if TYPE_CHECKING:
    from cosnet_index.store.store import Store

__all__ = ["cut_boxes", "read_indexed_boxes"]


def cut_boxes(
    volume: np.ndarray,
    xyz_voxels: np.ndarray,
    *,
    box: int,
    voxel_size_angstrom: float,
    model_voxel_size_angstrom: float,
    invert_contrast: bool = False,
    edge: str = "skip",
) -> tuple[np.ndarray, np.ndarray]:
    """``(boxes, keep)``: model boxes at ``xyz_voxels`` of one ``(z, y, x)`` volume.

    The indexing rule: read ``source_box_side`` voxels, negate with ``invert_contrast``,
    Fourier-resample to ``box``. ``keep`` flags the rows cut (``edge`` policy of
    :func:`~cosnet_index.io.boxes.plan_boxes`); ``boxes`` holds those rows, in order.
    """
    from cosnet_index.io.boxes import extract_boxes

    side = source_box_side(box, voxel_size_angstrom, model_voxel_size_angstrom)
    boxes, plan = extract_boxes(
        volume, xyz_voxels, box, source_box=side, edge=edge, invert_contrast=invert_contrast
    )
    return boxes, plan.keep


def read_indexed_boxes(store: Store, rows: pd.DataFrame) -> np.ndarray:
    """``(n, box, box, box)`` float32 boxes of stored subtomograms, as they were embedded.

    Args:
        store: the open store that indexed them.
        rows: rows of ``store.subtomogram_table()`` (``tomogram``, ``tomogram_path``, ``x``,
            ``y``, ``z``, ``voxel_size_angstrom``, ``shard``), in the order wanted.

    Boxes are cut with the ``pad`` edge policy: a stored box is whole unless its part was
    indexed with ``--edge pad``, which padded it the same way.

    Raises:
        InputError: a position lies outside its tomogram (the file changed since indexing).
        MrcError: a tomogram file is missing or unreadable.
    """
    from cosnet_index.io.mrc import open_tomogram

    config = store.model().config
    box = int(config.box)
    model_voxel = float(config.voxel_size_nm) * 10.0
    out = np.zeros((len(rows), box, box, box), dtype=np.float32)
    if not len(rows):
        return out
    invert = store.shard_settings(sorted(set(rows["shard"])))
    frame = rows.reset_index(drop=True)
    for (path, shard), part in frame.groupby(["tomogram_path", "shard"], sort=False):
        voxel = float(part["voxel_size_angstrom"].iloc[0])
        with open_tomogram(path, voxel_size_angstrom=voxel) as tomogram:
            boxes, keep = cut_boxes(
                tomogram.data,
                part[["x", "y", "z"]].to_numpy(np.float64),
                box=box,
                voxel_size_angstrom=voxel,
                model_voxel_size_angstrom=model_voxel,
                invert_contrast=invert[shard][0],
                edge="pad",
            )
        if not keep.all():
            raise InputError(
                f"subtomograms of {part['tomogram'].iloc[0]} lie outside the tomogram {path}: "
                "the file changed since it was indexed; re-index it"
            )
        out[part.index.to_numpy()] = boxes
    return out
