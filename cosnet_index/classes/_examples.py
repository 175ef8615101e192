"""Support vectors of class examples given as MRC boxes or tomogram positions.

A position the store indexed reuses the stored vector (no network call); anything else is cut,
resampled to the model's voxel size and embedded once with the store's model, which normalises
each box exactly as during indexing.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from cosnet_index.errors import CoordinateError, InputError

if TYPE_CHECKING:
    from cosnet_index.store import Store

__all__ = ["vectors_at", "vectors_of_mrc"]

log = logging.getLogger(__name__)


def vectors_of_mrc(
    store: Store, paths: Sequence[str | os.PathLike[str]], invert: bool
) -> np.ndarray:
    """Embed cubic MRC boxes with the store's model (resampled to its voxel size)."""
    import torch

    from cosnet_index.geometry import resampled_box_size
    from cosnet_index.io import fourier_resample, open_tomogram

    model = store.model()
    box = int(model.config.box)
    model_voxel_angstrom = float(model.config.voxel_size_nm) * 10.0
    boxes = []
    for path in paths:
        volume = open_tomogram(path)
        try:
            data = np.asarray(volume.data, dtype=np.float32)  # a box: small, read whole
            side = resampled_box_size(box, volume.voxel_size_angstrom, model_voxel_angstrom)
        finally:
            volume.close()
        if len(set(data.shape)) != 1 or data.shape[0] < side:
            raise InputError(
                f"{path} holds a {data.shape} volume; a support example must be a cube of at least "
                f"{side} voxels at {volume.voxel_size_angstrom:g} A (the model sees {box}^3 at "
                f"{model_voxel_angstrom:g} A); cut one with `--at TOMO X Y Z` instead"
            )
        lo = (data.shape[0] - side) // 2
        data = data[lo : lo + side, lo : lo + side, lo : lo + side]
        if side != box:
            log.warning("resampling %s from %g A to %g A voxels", path, volume.voxel_size_angstrom,
                        model_voxel_angstrom)  # fmt: skip
            data = fourier_resample(data[None], box)[0]
        boxes.append(-data if invert else data)
    return model.embed(torch.from_numpy(np.stack(boxes))).numpy()  # (n, dim)


def vectors_at(
    store: Store, at: Sequence[tuple[str, float, float, float]], invert_contrast: bool = False
) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """Vectors at tomogram positions: the stored one if indexed there, else embedded once.

    A tomogram the store indexed is cut with the same voxel size and contrast convention as at
    indexing; an MRC path the store does not know uses its header and ``invert_contrast``.
    """
    import torch

    from cosnet_index.geometry import source_box_side
    from cosnet_index.io import open_tomogram, tomogram_name
    from cosnet_index.store.boxes import cut_boxes

    out, sources = [], []
    for tomo, x, y, z in at:
        xyz = np.array([x, y, z], dtype=np.float64)
        name = tomogram_name(tomo)
        record, rows, invert = store.indexed_particles(name)
        close = rows[(np.abs(rows[["x", "y", "z"]].to_numpy(np.float64) - xyz) <= 0.5).all(axis=1)]
        source = {"tomogram": name, "x": float(x), "y": float(y), "z": float(z)}
        if len(close):  # indexed already: reuse the stored vector
            sid = int(close["id"].iloc[0])
            out.append(store.load_vectors(np.array([sid]))[1][0])
            sources.append({**source, "source_kind": "subtomogram", "subtomogram_id": sid})
            continue
        path = record.path if record is not None else str(tomo)
        voxel = float(record.voxel_size_angstrom) if record is not None else None
        invert = invert if record is not None else invert_contrast
        if not Path(path).is_file():
            raise InputError(
                f"tomogram {tomo!r} is neither indexed in the store nor an MRC file; give its path"
            )
        model = store.model()
        box = int(model.config.box)
        model_voxel = float(model.config.voxel_size_nm) * 10.0
        with open_tomogram(path, voxel_size_angstrom=voxel) as tomogram:  # as indexing cuts it
            boxes, keep = cut_boxes(
                tomogram.data,
                xyz[None],
                box=box,
                voxel_size_angstrom=tomogram.voxel_size_angstrom,
                model_voxel_size_angstrom=model_voxel,
                invert_contrast=invert,
            )
            side = source_box_side(box, tomogram.voxel_size_angstrom, model_voxel)
        if not keep.all():
            raise CoordinateError(
                f"position {x:g} {y:g} {z:g} is too close to the edge of {name} for a {side}^3 "
                "box; give a position at least half a box inside the volume"
            )
        out.append(model.embed(torch.from_numpy(boxes)).numpy()[0])
        sources.append({**source, "source_kind": "tomogram", "source_path": str(path)})
    return np.stack(out), sources
