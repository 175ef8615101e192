"""Particle picking: candidate molecule centres for ``index`` without a coordinate file.

Two detectors, each giving ``x, y, z`` (tomogram voxels), a score and the diameter that
responded: :func:`detect_blobs` (multi-scale difference of Gaussians, slab by slab) and
:func:`objectness_candidates` (the COS-Net decoder's foreground probability on a coarse grid).
:func:`index_picked` picks and indexes whole tomograms. Measured in docs/picking.md.
"""

from __future__ import annotations

from cosnet_index.pick.blobs import (
    DEFAULT_DIAMETERS_ANGSTROM,
    DEFAULT_DOG_THRESHOLD,
    DEFAULT_MIN_DISTANCE_FRACTION,
    ScaleGroup,
    check_diameters,
    detect_blobs,
    refine_centres,
    scale_groups,
    sphere_fit,
)
from cosnet_index.pick.duplicates import suppress_duplicates
from cosnet_index.pick.index import PICK_METHODS, index_picked, pick_candidates
from cosnet_index.pick.objectness import (
    DEFAULT_OBJECTNESS_THRESHOLD,
    decoder_objectness,
    objectness_candidates,
)

__all__ = [
    "DEFAULT_DIAMETERS_ANGSTROM",
    "DEFAULT_DOG_THRESHOLD",
    "DEFAULT_MIN_DISTANCE_FRACTION",
    "DEFAULT_OBJECTNESS_THRESHOLD",
    "PICK_METHODS",
    "ScaleGroup",
    "check_diameters",
    "decoder_objectness",
    "detect_blobs",
    "index_picked",
    "objectness_candidates",
    "pick_candidates",
    "refine_centres",
    "scale_groups",
    "sphere_fit",
    "suppress_duplicates",
]
