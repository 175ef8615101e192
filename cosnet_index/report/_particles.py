"""Particle boxes for pictures: cut from their tomograms, optionally outlined by the model."""

from __future__ import annotations

import functools
import logging
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from cosnet_index.store import Store

__all__ = ["crf_params_for", "invert_flags", "read_boxes", "segment_boxes"]

logger = logging.getLogger(__name__)


def read_boxes(
    rows: pd.DataFrame,
    box: int,
    model_voxel_angstrom: float | None = None,
    invert: np.ndarray | None = None,
) -> np.ndarray:
    """``(n, box, box, box)`` boxes at rows with ``tomogram_path, x, y, z`` (in row order).

    Boxes that cross the volume's edge are padded (indexed boxes never do with the default
    ``skip`` policy). With ``model_voxel_angstrom`` and a ``voxel_size_angstrom`` column, boxes
    of tomograms at another voxel size are Fourier-resampled to the model's, as indexing does.
    ``invert`` (bool per row, e.g. from :func:`invert_flags`) negates the boxes of tomograms
    indexed with ``--invert-contrast``, so that the model sees them as it did when indexing.
    """
    from cosnet_index.geometry import RESAMPLE_TOLERANCE, resampled_box_size
    from cosnet_index.io.boxes import extract_boxes
    from cosnet_index.io.mrc import open_tomogram

    out = np.zeros((len(rows), box, box, box), dtype=np.float32)
    positions = np.arange(len(rows))
    for path, part in rows.assign(_pos=positions).groupby("tomogram_path", sort=False):
        source_box = box
        voxel = None  # the store's voxel size of the tomogram (it may override a bad header)
        if "voxel_size_angstrom" in part.columns:
            voxel = float(part["voxel_size_angstrom"].iloc[0])
            ratio = voxel / model_voxel_angstrom if model_voxel_angstrom else 1.0
            if abs(ratio - 1.0) > RESAMPLE_TOLERANCE:
                source_box = resampled_box_size(box, voxel, model_voxel_angstrom)
        with open_tomogram(path, voxel_size_angstrom=voxel) as tomogram:
            boxes, _ = extract_boxes(
                tomogram.data,
                part[["x", "y", "z"]].to_numpy(np.float64),
                box,
                source_box=source_box,
                edge="pad",
            )
        out[part["_pos"].to_numpy()] = boxes
    if invert is not None:
        out[np.asarray(invert, dtype=bool)] *= -1.0
    return out


def invert_flags(store: Store, rows: pd.DataFrame) -> np.ndarray:
    """Per row of ``store.subtomogram_table()``: was its shard indexed with --invert-contrast."""
    if "shard" not in rows.columns or rows.empty:
        return np.zeros(len(rows), dtype=bool)
    settings = store.shard_settings(sorted(set(rows["shard"])))
    return np.array([settings[path][0] for path in rows["shard"]], dtype=bool)


@functools.lru_cache(maxsize=8)
def crf_params_for(model_hash: str) -> tuple[Any, str]:
    """The fitted CRF parameters of a model, or the defaults when none were fitted for it.

    Returns:
        ``(CRFParams, note)``: the note says which parameters are used.
    """
    from cosnet_index.errors import CheckpointError
    from cosnet_index.segment.params import DEFAULT_CRF_PATH, CRFParams, load_crf_params

    try:
        params, _ = load_crf_params(model_hash=model_hash)
    except CheckpointError as exc:
        logger.warning("CRF with default, unfitted parameters: %s", exc)
        return CRFParams(), "default CRF parameters (none fitted for this model)"
    return params, f"CRF parameters fitted for this model ({DEFAULT_CRF_PATH.name})"


def segment_boxes(
    model: Any, boxes: np.ndarray, *, crf: bool, model_hash: str
) -> tuple[np.ndarray, np.ndarray]:
    """Decoder masks and final masks (decoder + CRF, or the decoder's again) of boxes.

    Returns:
        ``(decoder_masks, masks)``: two ``(n, box, box, box)`` bool arrays; a mask is the
        decoder probability (or the CRF's marginal) above 0.5.
    """
    import torch

    from cosnet_index.segment.crf import crf_refine

    volumes = torch.from_numpy(np.ascontiguousarray(boxes, dtype=np.float32))
    probability = model.decode(volumes).float()  # (n, B, B, B)
    decoder_masks = (probability > 0.5).numpy()
    if not crf or len(boxes) == 0:
        return decoder_masks, decoder_masks
    params, _ = crf_params_for(model_hash)
    refined = crf_refine(probability, volumes, params)
    return decoder_masks, (refined > 0.5).numpy()
