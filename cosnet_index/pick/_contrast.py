"""Picking's contrast check: are the molecules the candidates picked, or the other polarity's?

Split from :mod:`cosnet_index.io.plausibility` (whose coordinate check it runs on the other
polarity's candidates when those are the molecules); used by :func:`cosnet_index.pick.index`.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from cosnet_index.io.mrc import TomogramInfo
from cosnet_index.io.plausibility import ContrastError, check_plausibility

__all__ = ["PICK_SCORE_RATIO", "PICK_TOP", "check_picked_contrast"]

logger = logging.getLogger(__name__)

PICK_SCORE_RATIO = 1.2
"""Picking's contrast check: the other polarity's candidates are the molecules when their best
scores (median of the top :data:`PICK_TOP`) exceed this many times those of the candidates
picked. Measured on simulated tomograms of the library's molecules (64 x 128 x 128 voxels,
small and large ones): the molecules' polarity scores 1.5-2.2 times the other, whose candidates
(CTF fringes beside the molecules, noise) are more numerous but weaker."""

PICK_TOP = 50
"""Candidates of each polarity compared by picking's contrast check."""


def check_picked_contrast(
    tomogram: TomogramInfo,
    picked: pd.DataFrame,
    other: pd.DataFrame,
    *,
    box: int,
    model_voxel_angstrom: float,
    invert_contrast: bool = False,
    contrast_check: str = "error",
) -> str:
    """Check contrast when picking: are the molecules the candidates, or the other polarity's?

    Candidates picked with one polarity are, by construction, darker (or brighter) than the
    background around them, so the coordinate check run on them alone passes whatever the
    tomogram's contrast (on an inverted tomogram, dark picks sit on CTF fringes and noise). The
    molecules are the polarity whose best candidates score higher
    (:data:`PICK_SCORE_RATIO`); when that is the other one, the coordinate check
    (:func:`check_plausibility`) runs on its candidates and reports as it does with
    coordinates.

    Args:
        tomogram: the tomogram picked.
        picked: candidates of the polarity asked for (``x, y, z, pick_score``).
        other: candidates of the other polarity (the tomogram's negative).
        box, model_voxel_angstrom, invert_contrast, contrast_check: as
            :func:`check_plausibility`.

    Returns:
        ``"picked"`` or ``"other"``: the polarity whose candidates are the molecules.

    Raises:
        ContrastError: the other polarity's candidates are the molecules, and they are bright
            without ``invert_contrast`` (``contrast_check="error"``).
    """

    def strength(found: pd.DataFrame) -> float:
        scores = np.sort(found["pick_score"].to_numpy(dtype=np.float64))[::-1][:PICK_TOP]
        return float(np.median(scores)) if len(scores) else 0.0

    mine, theirs = strength(picked), strength(other)
    logger.info(
        "%s: candidates of the polarity picked score %.1f, of the other %.1f (median of the "
        "best %d)",
        tomogram.name,
        mine,
        theirs,
        PICK_TOP,
    )
    if contrast_check == "off" or theirs <= PICK_SCORE_RATIO * mine:
        return "picked"
    table = other.assign(tomogram=tomogram.name)
    found = check_plausibility(
        [tomogram],
        table,
        box=box,
        model_voxel_angstrom=model_voxel_angstrom,
        invert_contrast=invert_contrast,
        contrast_check=contrast_check,
        size_check=False,
    )
    if found and found[0].contrast in ("bright", "dark"):
        return "other"
    # too few of them for a verdict at the coordinates' scale: the scores decide
    bright = not invert_contrast
    message = (
        f"the molecules of {tomogram.name} are {'brighter' if bright else 'darker'} than the "
        f"background around them (their candidates score {theirs:.1f}, those picked "
        f"{mine:.1f}); the model expects dark molecules on bright ice: index it again "
        f"{'with' if bright else 'without'} --invert-contrast (nothing was written), or "
        "--contrast-check off if you are sure"
    )
    if contrast_check == "error" and bright:
        raise ContrastError(message)
    logger.warning(message)
    return "other"
