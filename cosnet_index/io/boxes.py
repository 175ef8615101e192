"""Cutting subtomogram boxes out of a memory-mapped tomogram, with an explicit edge policy.

Edge policy (``edge=``):

- a coordinate whose rounded voxel lies outside the volume is always skipped (``"outside"``);
- ``"skip"`` (default): a box that crosses the volume's edge is skipped (``"edge"``);
- ``"pad"``: a box that crosses the edge is kept and its missing voxels are filled with the mean of
  the voxels it has inside the volume (so per-box normalisation is not skewed).

Every skip is counted by reason; nothing is dropped silently.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.fft

from cosnet_index.errors import InputError
from cosnet_index.geometry import box_bounds, round_half_up, xyz_to_zyx

__all__ = ["EDGE_POLICIES", "BoxPlan", "extract_boxes", "fourier_resample", "plan_boxes"]

EDGE_POLICIES = ("skip", "pad")


@dataclass(frozen=True)
class BoxPlan:
    """Which coordinates of a tomogram give a box.

    Attributes:
        keep: ``(n,)`` bool, the coordinate gives a box.
        reason: ``(n,)`` object array: None for kept rows, else ``"outside"`` or ``"edge"``.
    """

    keep: np.ndarray
    reason: np.ndarray

    def skipped(self) -> dict[str, int]:
        """Counts of skipped coordinates by reason."""
        values, counts = np.unique(self.reason[~self.keep].astype(str), return_counts=True)
        return {str(v): int(c) for v, c in zip(values, counts, strict=True)}


def plan_boxes(
    shape_zyx: tuple[int, int, int], xyz_voxels: np.ndarray, box: int, edge: str = "skip"
) -> BoxPlan:
    """Apply the edge policy to ``(n, 3)`` x, y, z coordinates for boxes of side ``box``.

    Raises:
        InputError: unknown edge policy or a box side below 1.
    """
    if edge not in EDGE_POLICIES:
        raise InputError(f"edge policy must be one of {EDGE_POLICIES}, got {edge!r}")
    if box < 1:
        raise InputError(f"box side must be at least 1 voxel, got {box}")
    xyz_voxels = np.asarray(xyz_voxels, dtype=np.float64).reshape(-1, 3)
    shape = np.asarray(shape_zyx)
    centre = xyz_to_zyx(round_half_up(xyz_voxels))
    inside = np.all((centre >= 0) & (centre < shape), axis=1)
    start, stop = box_bounds(xyz_voxels, box)
    whole = np.all((start >= 0) & (stop <= shape), axis=1)
    reason = np.full(len(xyz_voxels), None, dtype=object)
    reason[~inside] = "outside"
    if edge == "skip":
        reason[inside & ~whole] = "edge"
        keep = inside & whole
    else:
        keep = inside
    return BoxPlan(keep=keep, reason=reason)


def fourier_resample(boxes: np.ndarray, box: int) -> np.ndarray:
    """Fourier-crop (or zero-pad) cubic boxes to side ``box``, preserving their mean value.

    Args:
        boxes: ``(n, s, s, s)`` real boxes.
        box: the output side.

    Returns:
        ``(n, box, box, box)`` float32.
    """
    n, side = boxes.shape[0], boxes.shape[1]
    if side == box:
        return boxes.astype(np.float32, copy=False)
    spectrum = scipy.fft.fftshift(
        scipy.fft.fftn(boxes.astype(np.float32), axes=(1, 2, 3), workers=-1), axes=(1, 2, 3)
    )
    out = np.zeros((n, box, box, box), dtype=spectrum.dtype)
    if box < side:
        lo = side // 2 - box // 2
        out[:] = spectrum[:, lo : lo + box, lo : lo + box, lo : lo + box]
    else:
        lo = box // 2 - side // 2
        out[:, lo : lo + side, lo : lo + side, lo : lo + side] = spectrum
    resampled = scipy.fft.ifftn(
        scipy.fft.ifftshift(out, axes=(1, 2, 3)), axes=(1, 2, 3), workers=-1
    ).real
    return (resampled * (box / side) ** 3).astype(np.float32)


def extract_boxes(
    volume: np.ndarray,
    xyz_voxels: np.ndarray,
    box: int,
    *,
    source_box: int | None = None,
    edge: str = "skip",
    invert_contrast: bool = False,
) -> tuple[np.ndarray, BoxPlan]:
    """Cut boxes centred on coordinates out of a (memory-mapped) ``(z, y, x)`` volume.

    Only the voxels of each box are read. With ``source_box`` (the side in tomogram voxels that
    covers ``box`` model voxels, :func:`~cosnet_index.geometry.resampled_box_size`), regions of
    ``source_box``^3 are read and Fourier-resampled to ``box``^3.

    Args:
        volume: ``(z, y, x)`` array, typically a memory map.
        xyz_voxels: ``(n, 3)`` x, y, z coordinates in voxels of ``volume``.
        box: output box side.
        source_box: side read from the volume (default ``box``: no resampling).
        edge: ``"skip"`` or ``"pad"`` (module docstring).
        invert_contrast: multiply by -1 (tomograms with bright molecules).

    Returns:
        ``(boxes, plan)``: ``(m, box, box, box)`` float32 for the ``m`` kept rows of
        ``plan.keep``, in input order.

    Raises:
        InputError: unknown edge policy.
    """
    source_box = box if source_box is None else int(source_box)
    plan = plan_boxes(volume.shape, xyz_voxels, source_box, edge)  # type: ignore[arg-type]
    rows = np.flatnonzero(plan.keep)
    start, stop = box_bounds(np.asarray(xyz_voxels).reshape(-1, 3)[rows], source_box)
    shape = np.asarray(volume.shape)
    out = np.empty((len(rows), source_box, source_box, source_box), dtype=np.float32)
    for i in range(len(rows)):
        lo = np.maximum(start[i], 0)
        hi = np.minimum(stop[i], shape)
        region = np.asarray(volume[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]], dtype=np.float32)
        if region.shape == out.shape[1:]:
            out[i] = region
        else:
            out[i] = region.mean() if region.size else 0.0
            a = lo - start[i]
            b = a + (hi - lo)
            out[i, a[0] : b[0], a[1] : b[1], a[2] : b[2]] = region
    if invert_contrast:
        np.negative(out, out=out)
    if source_box != box:
        out = fourier_resample(out, box)
    return out, plan
