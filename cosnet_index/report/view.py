"""Layers to look at a tomogram with its classes in napari, as plain data.

:func:`view_layers` builds napari's ``LayerData`` tuples, ``(data, kwargs, layer_type)``,
without importing napari or Qt, so the logic is tested everywhere; :func:`open_viewer` (the
``view`` extra) hands them to a napari viewer. Layers, all in **angstrom** (``scale`` = the
voxel size, so the axes read in physical units), arrays ``(z, y, x)``:

- ``image``: the tomogram, memory-mapped (never loaded whole), grey, contrast limits from a
  sample of its voxels;
- ``points``: one layer per class of the result rows of that tomogram, coloured per class
  (``unknown`` grey and hidden), with ``probability``, ``margin`` and ``subtomogram_id`` as
  features (shown when hovering);
- ``labels``: the ``segment --merge`` label volume of the tomogram, where given.

:func:`napari_get_reader` is the napari reader of a classify result (``*.parquet``): the
points layers alone, in voxels.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cosnet_index.errors import InputError

__all__ = [
    "LayerData",
    "add_layers",
    "class_colours",
    "napari_get_reader",
    "open_viewer",
    "view_layers",
]

LayerData = tuple[Any, dict[str, Any], str]
"""napari's ``(data, kwargs, layer_type)``."""

UNKNOWN_COLOUR = "#999999ff"


def class_colours(names: list[str]) -> dict[str, str]:
    """A distinct colour (``#rrggbbaa``) per class (``tab10``, then ``tab20``), ``unknown`` grey."""
    from matplotlib import colormaps
    from matplotlib.colors import to_hex

    palette = colormaps["tab10" if len(names) <= 10 else "tab20"]
    known = [n for n in names if n != "unknown"]
    colours = {n: to_hex(palette(i % palette.N), keep_alpha=True) for i, n in enumerate(known)}
    if "unknown" in names:
        colours["unknown"] = UNKNOWN_COLOUR
    return colours


def _points_layers(
    result: pd.DataFrame, voxel_size_angstrom: float, point_size_angstrom: float
) -> list[LayerData]:
    need = {"x", "y", "z", "class"}
    if not need <= set(result.columns):
        raise InputError(
            f"the result lacks columns {sorted(need - set(result.columns))}; give a classify "
            "result or search hits"
        )
    names = sorted(set(result["class"].astype(str)), key=lambda n: (n == "unknown", n))
    colours = class_colours(names)
    layers = []
    for name in names:
        rows = result[result["class"].astype(str) == name]
        zyx = rows[["z", "y", "x"]].to_numpy(np.float64)  # voxels
        features = {
            col: rows[col].to_numpy()
            for col in ("probability", "margin", "subtomogram_id")
            if col in rows.columns
        }
        kwargs = {
            "name": name,
            "features": pd.DataFrame(features),
            "face_color": colours[name],
            "border_color": colours[name],
            "size": point_size_angstrom / voxel_size_angstrom,
            "scale": (voxel_size_angstrom,) * 3,
            "visible": name != "unknown",
            "opacity": 0.7,
            "out_of_slice_display": True,
            "metadata": {"class": name, "count": len(rows)},
        }
        layers.append((zyx, kwargs, "points"))
    return layers


def view_layers(
    tomogram_path: str | os.PathLike[str] | None,
    *,
    name: str,
    voxel_size_angstrom: float | None = None,
    result: pd.DataFrame | None = None,
    labels_path: str | os.PathLike[str] | None = None,
    point_size_angstrom: float = 150.0,
) -> list[LayerData]:
    """The layers of one tomogram: image, one points layer per class, merged labels.

    Args:
        tomogram_path: the MRC tomogram (None: no image layer).
        name: the tomogram's name; result rows of other tomograms are left out.
        voxel_size_angstrom: its voxel size (default: the MRC header's, else 1).
        result: a classify result or search hits (``tomogram, x, y, z, class``, ...).
        labels_path: ``labels/<tomogram>.mrc`` of ``segment --merge``.
        point_size_angstrom: the diameter of the points.

    Returns:
        ``LayerData`` tuples, image first, labels last.

    Raises:
        InputError: no layer to show, a result without the needed columns, or a label volume
            whose shape is not the tomogram's.
        MrcError: an unreadable tomogram.
    """
    import mrcfile

    from cosnet_index.io import open_tomogram

    layers: list[LayerData] = []
    shape = None
    if tomogram_path is not None:
        tomogram = open_tomogram(tomogram_path, voxel_size_angstrom=voxel_size_angstrom)
        voxel_size_angstrom = tomogram.voxel_size_angstrom
        data = tomogram.data  # (z, y, x) memory map: kept open by the layer
        shape = data.shape
        step = max(1, int(np.ceil((data.size / 2e6) ** (1 / 3))))
        sample = np.asarray(data[::step, ::step, ::step], dtype=np.float32)
        lo, hi = np.percentile(sample, [1.0, 99.0])
        kwargs = {
            "name": name,
            "colormap": "gray",
            "contrast_limits": (float(lo), float(hi if hi > lo else lo + 1.0)),
            "scale": (voxel_size_angstrom,) * 3,
            "metadata": {"path": str(tomogram.path)},
        }
        layers.append((data, kwargs, "image"))
    voxel = float(voxel_size_angstrom or 1.0)
    if result is not None:
        rows = result
        if "tomogram" in result.columns:
            rows = result[result["tomogram"].astype(str) == name]
        layers += _points_layers(rows, voxel, point_size_angstrom)
    if labels_path is not None:
        with mrcfile.mmap(labels_path, mode="r", permissive=True) as mrc:
            labels = np.asarray(mrc.data).astype(np.int32)
        if shape is not None and labels.shape != shape:
            raise InputError(
                f"the label volume {labels_path} is {labels.shape}, the tomogram {shape}: give "
                "the labels/<tomogram>.mrc of the same tomogram"
            )
        layers.append(
            (labels, {"name": "segments", "scale": (voxel,) * 3, "opacity": 0.5}, "labels")
        )
    if not layers:
        raise InputError("nothing to show: give a tomogram, a result or a label volume")
    return layers


def open_viewer(layers: list[LayerData], *, show: bool = True) -> Any:
    """A napari viewer holding ``layers`` (needs the ``view`` extra).

    Raises:
        InputError: napari is not installed, or no OpenGL window can be opened here.
    """
    try:
        import napari
    except ImportError:
        raise InputError(
            "viewing needs napari: pip install 'cosnet-index[view]' (napari with PyQt5)"
        ) from None
    viewer = napari.Viewer(show=show, ndisplay=2)
    try:
        add_layers(viewer, layers)
    except AttributeError as exc:  # vispy found no OpenGL context (GL queries return None)
        with contextlib.suppress(Exception):  # the half-added layer breaks napari's close
            viewer.close()
        raise InputError(
            f"napari could not open an OpenGL window here ({exc}); run it on a machine with a "
            "display, or under a virtual one (xvfb-run cosnet-index view ...)"
        ) from None
    return viewer


def add_layers(viewer: Any, layers: list[LayerData]) -> list[Any]:
    """Add ``layers`` to a napari viewer (or a Qt-free ``napari.components.ViewerModel``)."""
    return [getattr(viewer, f"add_{kind}")(data, **kwargs) for data, kwargs, kind in layers]


def _read_result(path: str | os.PathLike[str]) -> list[LayerData]:
    from cosnet_index.query import read_table

    table, _ = read_table(path)
    return _points_layers(table, 1.0, 15.0)


def napari_get_reader(
    path: str | list[str],
) -> Callable[[str | os.PathLike[str]], list[LayerData]] | None:
    """napari reader hook: a classify/search result (``.parquet``) as points layers (voxels)."""
    if isinstance(path, list):
        return None
    if not str(path).endswith(".parquet") or not Path(path).is_file():
        return None
    return _read_result
