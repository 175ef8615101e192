"""Per-class galleries: central slices of the support particle and of its top hits.

Boxes are (z, y, x) arrays as mrcfile returns them. Each particle is shown as its central XY
slice (``box[z_c]``, looking down z) above its central XZ slice (``box[:, y_c]``, where the
missing wedge shows), in gray with per-box percentile scaling so that molecules stay dark as in
a reconstructed tomogram. A hit's segmentation mask is drawn as a contour at 0.5.
"""

from __future__ import annotations

import logging
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from cosnet_index.errors import InputError

__all__ = ["GalleryHit", "gallery_figure", "plot_gallery"]

logger = logging.getLogger(__name__)

_PERCENTILES = (1.0, 99.0)
_MASK_COLOUR = "#ff7f0e"
_CAPTION_CHARS = 14  # characters per caption line that fit a 1.3-inch column at 7 pt
_CAPTION_LINES = 3


def _fit_caption(text: str) -> str:
    """``text`` wrapped to the column width (long names broken, then cut with '...').

    Captions wider than their column overlap the neighbours' (a long class name did).
    """
    lines = [
        part
        for line in str(text).splitlines()
        for part in (textwrap.wrap(line, _CAPTION_CHARS, break_long_words=True) or [""])
    ]
    if len(lines) > _CAPTION_LINES:
        lines = lines[:_CAPTION_LINES]
        lines[-1] = lines[-1][: _CAPTION_CHARS - 3] + "..."
    return "\n".join(lines)


class GalleryHit(NamedTuple):
    """One hit of a gallery: its box (z, y, x), its mask (same shape) or None, its probability
    of belonging to the class, a short label (e.g. its subtomogram id or true class) and, when
    a truth is known, whether it really is of the class (caption in green or red)."""

    box: np.ndarray
    mask: np.ndarray | None
    probability: float
    label: str
    correct: bool | None = None


def _central_slices(volume: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(XY slice (y, x), XZ slice (z, x)) through the centre of a (z, y, x) volume."""
    nz, ny, _ = volume.shape
    return volume[nz // 2], volume[:, ny // 2, :]


def _show(ax: Axes, image: np.ndarray, mask: np.ndarray | None) -> None:
    low, high = np.percentile(image, _PERCENTILES)
    if not high > low:
        high = low + 1.0
    ax.imshow(image, cmap="gray", vmin=low, vmax=high, interpolation="nearest", origin="lower")
    if mask is not None:
        mask = np.asarray(mask, dtype=np.float32)
        # contour() warns when the level is not crossed; an empty slice simply has no outline
        if mask.min() < 0.5 < mask.max():
            ax.contour(mask, levels=[0.5], colors=_MASK_COLOUR, linewidths=1.0, origin="lower")
    ax.set_xticks([])
    ax.set_yticks([])


def _check_box(name: str, box: np.ndarray) -> np.ndarray:
    box = np.asarray(box)
    if box.ndim != 3:
        raise InputError(f"{name} has shape {box.shape}: give a (z, y, x) volume")
    if not np.isfinite(box).all():
        raise InputError(f"{name} has non-finite voxels: replace NaN/inf before plotting")
    return box.astype(np.float32, copy=False)


def plot_gallery(
    class_name: str,
    support_box: np.ndarray,
    hits: Sequence[GalleryHit | tuple[np.ndarray, np.ndarray | None, float, str]],
    path: str | Path,
    *,
    support_mask: np.ndarray | None = None,
) -> Path:
    """Write a gallery PNG: the support particle then each hit, XY slice above XZ slice.

    Args:
        class_name: the class shown (title).
        support_box: the support particle, (z, y, x), e.g. (32, 32, 32).
        hits: the top hits, best first: ``(box, mask | None, probability, label[, correct])``
            each, box and mask of the same (z, y, x) shape.
        path: the PNG to write (its folder is created).
        support_mask: an optional mask of the support particle.

    Returns:
        ``path``.

    Raises:
        InputError: if a box is not 3-D or has non-finite voxels, or a mask's shape differs
            from its box's.
    """
    fig = gallery_figure(class_name, support_box, hits, support_mask=support_mask)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    logger.info("wrote gallery %s (%d hits)", path, len(hits))
    return path


def gallery_figure(
    class_name: str,
    support_box: np.ndarray,
    hits: Sequence[GalleryHit | tuple[np.ndarray, np.ndarray | None, float, str]],
    *,
    support_mask: np.ndarray | None = None,
) -> Figure:
    """The gallery of :func:`plot_gallery` as a matplotlib Figure (not written)."""
    support = _check_box("the support box", support_box)
    particles: list[tuple[np.ndarray, np.ndarray | None, str, str]] = [
        (support, support_mask, "support", "black")
    ]
    colours = {None: "black", True: "tab:green", False: "tab:red"}
    for rank, hit in enumerate(hits, start=1):
        box, mask, probability, label, correct = GalleryHit(*hit)
        box = _check_box(f"hit {rank}", box)
        if mask is not None and np.shape(mask) != box.shape:
            raise InputError(
                f"hit {rank}: mask shape {np.shape(mask)} differs from box shape {box.shape}"
            )
        caption = f"#{rank} p={probability:.2f}\n{_fit_caption(label)}"
        particles.append((box, mask, caption, colours[None if correct is None else bool(correct)]))

    n = len(particles)
    fig = Figure(figsize=(1.3 * n + 0.6, 3.2), dpi=100, layout="constrained")
    axes = fig.subplots(2, n, squeeze=False)
    for j, (box, mask, caption, colour) in enumerate(particles):
        xy, xz = _central_slices(box)
        mask_xy, mask_xz = _central_slices(np.asarray(mask)) if mask is not None else (None, None)
        _show(axes[0, j], xy, mask_xy)
        _show(axes[1, j], xz, mask_xz)
        axes[0, j].set_title(caption, fontsize=7, color=colour)
    axes[0, 0].set_ylabel("XY", fontsize=8)
    axes[1, 0].set_ylabel("XZ", fontsize=8)
    for spine in axes[0, 0].spines.values():
        spine.set_edgecolor("tab:blue")
        spine.set_linewidth(2)
    fig.suptitle(f"{class_name}: support and top {n - 1} hits (mask contour in orange)", fontsize=9)
    return fig
