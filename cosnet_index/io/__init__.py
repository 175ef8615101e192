"""Reading tomograms (memory-mapped MRC), coordinate tables (STAR, CSV, Parquet) and boxes."""

from __future__ import annotations

from cosnet_index.io.boxes import (
    EDGE_POLICIES,
    BoxPlan,
    extract_boxes,
    fourier_resample,
    plan_boxes,
)
from cosnet_index.io.coordinates import (
    ParsedCoordinates,
    TomogramGeometry,
    coordinate_conventions,
    parse_coordinates,
    read_coordinates,
)
from cosnet_index.io.mrc import (
    Tomogram,
    TomogramInfo,
    check_finite,
    open_tomogram,
    tomogram_name,
)

__all__ = [
    "EDGE_POLICIES",
    "BoxPlan",
    "ParsedCoordinates",
    "Tomogram",
    "TomogramGeometry",
    "TomogramInfo",
    "check_finite",
    "coordinate_conventions",
    "extract_boxes",
    "fourier_resample",
    "open_tomogram",
    "parse_coordinates",
    "plan_boxes",
    "read_coordinates",
    "tomogram_name",
]
