"""Particle coordinate tables: RELION 3.1/4/5 and Warp STAR files, CSV and Parquet.

Every format is parsed to the same table: ``tomogram`` (name), ``x``, ``y``, ``z`` in voxels of
that tomogram (see :mod:`cosnet_index.geometry`), then every other column of the file unchanged.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from cosnet_index.errors import CoordinateError
from cosnet_index.geometry import table_to_voxels
from cosnet_index.io.mrc import tomogram_name

logger = logging.getLogger(__name__)

__all__ = [
    "ParsedCoordinates",
    "TomogramGeometry",
    "coordinate_conventions",
    "parse_coordinates",
    "read_coordinates",
]

_NAME_COLUMNS = ("tomogram", "rlnTomoName", "tomo_name", "tomo", "rlnMicrographName", "name")
_PLAIN_XYZ = (("x", "y", "z"), ("rlnCoordinateX", "rlnCoordinateY", "rlnCoordinateZ"))
_CENTRED_XYZ = (
    "rlnCenteredCoordinateXAngst",
    "rlnCenteredCoordinateYAngst",
    "rlnCenteredCoordinateZAngst",
)
_SHIFT_ANGSTROM = ("rlnOriginXAngst", "rlnOriginYAngst", "rlnOriginZAngst")
_SHIFT_PIXELS = ("rlnOriginX", "rlnOriginY", "rlnOriginZ")


class TomogramGeometry(Protocol):
    """What coordinate conversion needs to know about a tomogram (a :class:`Tomogram` has it)."""

    @property
    def shape_zyx(self) -> tuple[int, int, int]: ...

    voxel_size_angstrom: float


@dataclass(frozen=True)
class ParsedCoordinates:
    """A coordinate file as read, before conversion to tomogram voxels.

    Attributes:
        table: ``tomogram`` (name or None), ``x``, ``y``, ``z`` as the file gives them, then the
            file's other columns.
        shift_pixels: ``(n, 3)`` origin shifts in coordinate pixels, or None.
        shift_angstrom: ``(n, 3)`` origin shifts in angstrom, or None.
        coordinate_pixel_size_angstrom: ``(n,)`` pixel size of the coordinates when it is not the
            tomogram's own (RELION 4 tilt-series pixels), or None.
        centred_angstrom: coordinates are angstrom from the tomogram centre (RELION 5).
        source: the file, for messages.
        optics: the STAR file's ``data_optics`` rows as read (RELION 3.1/4/5), or None.
    """

    table: pd.DataFrame
    shift_pixels: np.ndarray | None
    shift_angstrom: np.ndarray | None
    coordinate_pixel_size_angstrom: np.ndarray | None
    centred_angstrom: bool
    source: str
    optics: tuple[dict[str, Any], ...] | None = None

    @property
    def needs_geometry(self) -> bool:
        """Whether conversion to voxels needs the tomograms' voxel size or shape."""
        return (
            self.centred_angstrom
            or self.coordinate_pixel_size_angstrom is not None
            or (self.shift_angstrom is not None and bool(np.any(self.shift_angstrom)))
        )


def _numeric(frame: pd.DataFrame, column: str, source: str) -> np.ndarray:
    values = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(values)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise CoordinateError(
            f"{source}: column {column!r} has a non-numeric or missing value "
            f"({frame[column].iloc[row]!r}) in data row {row + 1}; fix or remove that row"
        )
    return values


def _columns(frame: pd.DataFrame, names: tuple[str, ...]) -> list[str] | None:
    """The frame's columns matching ``names`` (case-insensitive), or None if any is missing."""
    lower = {str(c).lower(): c for c in frame.columns}
    found = [lower.get(n.lower()) for n in names]
    return None if any(f is None for f in found) else found  # type: ignore[return-value]


def _read_star(path: Path) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    import starfile

    source = str(path)
    try:
        blocks = starfile.read(path, always_dict=True)
    except Exception as exc:  # starfile raises many types on malformed input
        raise CoordinateError(
            f"{source} is not a readable STAR file ({type(exc).__name__}: {exc}); "
            "check its data_ blocks and loop_ headers"
        ) from None
    particles = optics = None
    for name, block in blocks.items():
        if not isinstance(block, pd.DataFrame):
            continue
        columns = set(block.columns)
        if "rlnCoordinateX" in columns or _CENTRED_XYZ[0] in columns:
            if particles is None or name == "particles":
                particles = block
        elif "rlnOpticsGroup" in columns and name == "optics":
            optics = block
    if particles is None:
        raise CoordinateError(
            f"{source} has no data block with rlnCoordinateX/Y/Z or "
            "rlnCenteredCoordinateX/Y/ZAngst columns; give a particle STAR file"
        )
    return particles, optics


def _read_table(path: Path) -> pd.DataFrame:
    source = str(path)
    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(path)
        sep = "\t" if suffix in (".tsv", ".tab") else ","
        return pd.read_csv(path, sep=sep, skipinitialspace=True)
    except pd.errors.EmptyDataError:
        raise CoordinateError(f"{source} is empty; give a table with x, y, z columns") from None
    except Exception as exc:
        raise CoordinateError(
            f"{source} cannot be read as a {'Parquet' if suffix in ('.parquet', '.pq') else 'CSV'} "
            f"table ({type(exc).__name__}: {exc}); check the file"
        ) from None


def parse_coordinates(path: str | os.PathLike[str]) -> ParsedCoordinates:
    """Read a coordinate file (``.star``, ``.csv``/``.tsv``, ``.parquet``) without converting it.

    Raises:
        CoordinateError: missing, empty or malformed file, missing x/y/z columns,
            non-numeric values.
    """
    path = Path(path).expanduser()
    source = str(path)
    if not path.is_file():
        raise CoordinateError(f"coordinate file {source} does not exist: check the path")
    is_star = path.suffix.lower() == ".star"
    optics = None
    if is_star:
        frame, optics = _read_star(path)
    else:
        frame = _read_table(path)
    frame = frame.reset_index(drop=True)
    if len(frame) == 0:
        raise CoordinateError(f"{source} has no particle rows; give at least one coordinate")

    centred = _columns(frame, _CENTRED_XYZ)
    plain = (
        None
        if centred
        else next((c for c in (_columns(frame, n) for n in _PLAIN_XYZ) if c is not None), None)
    )
    xyz_cols = centred or plain
    if xyz_cols is None:
        raise CoordinateError(
            f"{source} has no x, y, z columns (found {list(map(str, frame.columns))[:12]}); "
            "name them x, y, z (CSV/Parquet) or rlnCoordinateX/Y/Z (STAR)"
        )
    xyz = np.stack([_numeric(frame, c, source) for c in xyz_cols], axis=1)  # (n, 3)

    name_col = next((c for c in _NAME_COLUMNS if c in frame.columns), None)
    if name_col is None:
        name_col = next(
            (c for c in frame.columns if str(c).lower() in {n.lower() for n in _NAME_COLUMNS}), None
        )
    names = None
    if name_col is not None:
        raw = frame[name_col]
        if raw.isna().any() or (raw.astype(str).str.strip() == "").any():
            row = int(np.flatnonzero(raw.isna() | (raw.astype(str).str.strip() == ""))[0])
            raise CoordinateError(
                f"{source}: column {name_col!r} is empty in data row {row + 1}; "
                "every particle needs its tomogram name"
            )
        names = raw.astype(str).map(tomogram_name)

    shift_angstrom = shift_pixels = pixel_size = None
    used = set(xyz_cols) | ({name_col} if name_col else set())
    cols = _columns(frame, _SHIFT_ANGSTROM)
    if cols:
        shift_angstrom = np.stack([_numeric(frame, c, source) for c in cols], axis=1)
        used |= set(cols)
    cols = _columns(frame, _SHIFT_PIXELS)
    if cols:
        shift_pixels = np.stack([_numeric(frame, c, source) for c in cols], axis=1)
        used |= set(cols)
    if (
        plain is not None
        and optics is not None
        and "rlnTomoTiltSeriesPixelSize" in optics.columns
        and "rlnOpticsGroup" in frame.columns
    ):
        # RELION 4 tomography: rlnCoordinateX/Y/Z in (unbinned) tilt-series pixels
        sizes = optics.set_index("rlnOpticsGroup")["rlnTomoTiltSeriesPixelSize"]
        pixel_size = frame["rlnOpticsGroup"].map(sizes).to_numpy(dtype=np.float64)
        if not np.all(np.isfinite(pixel_size) & (pixel_size > 0)):
            raise CoordinateError(
                f"{source}: some particles name an optics group without a valid "
                "rlnTomoTiltSeriesPixelSize; fix the data_optics block"
            )

    table = pd.DataFrame(
        {
            "tomogram": names
            if names is not None
            else pd.Series([None] * len(frame), dtype=object),
            "x": xyz[:, 0],
            "y": xyz[:, 1],
            "z": xyz[:, 2],
        }
    )
    extra = frame[[c for c in frame.columns if c not in used]]
    extra = extra.drop(columns=[c for c in extra.columns if c in ("tomogram", "x", "y", "z")])
    table = pd.concat([table, extra.reset_index(drop=True)], axis=1)
    return ParsedCoordinates(
        table=table,
        shift_pixels=shift_pixels,
        shift_angstrom=shift_angstrom,
        coordinate_pixel_size_angstrom=pixel_size,
        centred_angstrom=centred is not None,
        source=source,
        optics=None if optics is None else tuple(_plain(r) for r in optics.to_dict("records")),
    )


def _plain(row: dict[str, Any]) -> dict[str, Any]:
    """A STAR row with NumPy scalars turned into Python ones (JSON-serialisable)."""
    return {str(k): (v.item() if hasattr(v, "item") else v) for k, v in row.items()}


def coordinate_conventions(parsed: ParsedCoordinates) -> dict[str, dict[str, Any]]:
    """How each named tomogram's coordinates came in, for ``export`` to write them back.

    Returns:
        name -> ``{"convention": "relion4" | "relion5" | "voxels", "pixel_size_angstrom":
        RELION 4 tilt-series pixel size or None, "optics": the optics rows of its particles or
        None}`` (see :data:`cosnet_index.geometry.COORDINATE_CONVENTIONS`). Rows without a
        tomogram name are not included.
    """
    table = parsed.table
    out: dict[str, dict[str, Any]] = {}
    groups = table["tomogram"].dropna()
    for name, rows in groups.groupby(groups, sort=False).indices.items():
        rows = groups.index.to_numpy()[rows]
        convention, pixel, optics = "voxels", None, None
        if parsed.centred_angstrom:
            convention = "relion5"
        elif parsed.coordinate_pixel_size_angstrom is not None:
            convention = "relion4"
            pixel = float(parsed.coordinate_pixel_size_angstrom[rows[0]])
        if parsed.optics is not None and convention != "voxels":
            groups_used = (
                set(table["rlnOpticsGroup"].iloc[rows]) if "rlnOpticsGroup" in table else set()
            )
            optics = [r for r in parsed.optics if r.get("rlnOpticsGroup") in groups_used] or list(
                parsed.optics
            )
        out[str(name)] = {"convention": convention, "pixel_size_angstrom": pixel, "optics": optics}
    return out


def _select_rows(parsed: ParsedCoordinates, keep: np.ndarray) -> ParsedCoordinates:
    """``parsed`` restricted to the rows where ``keep`` is True (per-row arrays follow)."""

    def rows(values: np.ndarray | None) -> np.ndarray | None:
        return None if values is None else values[keep]

    return dataclasses.replace(
        parsed,
        table=parsed.table[keep].reset_index(drop=True),
        shift_pixels=rows(parsed.shift_pixels),
        shift_angstrom=rows(parsed.shift_angstrom),
        coordinate_pixel_size_angstrom=rows(parsed.coordinate_pixel_size_angstrom),
    )


def read_coordinates(
    path: str | os.PathLike[str] | ParsedCoordinates,
    *,
    tomograms: Mapping[str, TomogramGeometry] | None = None,
    default_tomogram: str | None = None,
) -> pd.DataFrame:
    """Read a coordinate file as ``tomogram, x, y, z`` (voxels of that tomogram) + other columns.

    Args:
        path: a ``.star``, ``.csv``/``.tsv`` or ``.parquet`` file (or its
            :func:`parse_coordinates`).
        tomograms: name -> geometry (voxel size, shape) of the tomograms the rows name; needed for
            RELION 5 centred angstrom coordinates, angstrom origin shifts and RELION 4
            tilt-series pixels. Rows naming a tomogram not in it are an error.
        default_tomogram: name for rows of a file without a tomogram column (a single tomogram);
            defaults to the only key of ``tomograms`` when there is exactly one.

    Raises:
        CoordinateError: unreadable file (see :func:`parse_coordinates`), rows without a tomogram
            name when several tomograms are possible, no row naming a tomogram of ``tomograms``,
            or a file that
            needs the tomograms' geometry when none is given.
    """
    parsed = path if isinstance(path, ParsedCoordinates) else parse_coordinates(path)
    table = parsed.table.copy()
    source = parsed.source
    if table["tomogram"].isna().any():
        if default_tomogram is None and tomograms is not None and len(tomograms) == 1:
            default_tomogram = next(iter(tomograms))
        if default_tomogram is None:
            raise CoordinateError(
                f"{source} has no tomogram name column and several tomograms are given; add a "
                "'tomogram' column (CSV/Parquet) or rlnTomoName (STAR), or index one tomogram "
                "at a time"
            )
        table["tomogram"] = table["tomogram"].fillna(default_tomogram)
    if tomograms is not None:
        given = table["tomogram"].isin(list(tomograms))
        if not given.any():
            named = sorted(set(table["tomogram"]))
            shown = ", ".join(named[:5]) + (" ..." if len(named) > 5 else "")
            raise CoordinateError(
                f"{source} names none of the given tomograms (it names {shown}; given: "
                f"{', '.join(sorted(tomograms)[:5])}); pass the MRC files its rows name, or a "
                "coordinate file for these tomograms"
            )
        if not given.all():
            others = sorted(set(table.loc[~given, "tomogram"]))
            logger.info(
                "%s: skipped %d rows naming %d tomograms that were not given (%s)",
                source,
                int((~given).sum()),
                len(others),
                ", ".join(others[:5]) + (" ..." if len(others) > 5 else ""),
            )
            table = table[given.to_numpy()].copy()
            parsed = _select_rows(parsed, given.to_numpy())
    if not parsed.needs_geometry and tomograms is None:
        if parsed.shift_pixels is not None:
            shifted = table[["x", "y", "z"]].to_numpy() - parsed.shift_pixels
            table[["x", "y", "z"]] = shifted
        return table
    if tomograms is None:
        raise CoordinateError(
            f"{source} gives coordinates in angstrom or another pixel size; converting them needs "
            "the tomograms (their voxel size and shape)"
        )
    xyz = table[["x", "y", "z"]].to_numpy(dtype=np.float64)
    out = np.empty_like(xyz)
    for name, rows in table.groupby("tomogram", sort=False).indices.items():
        geometry = tomograms[name]
        out[rows] = table_to_voxels(
            xyz[rows],
            voxel_size_angstrom=geometry.voxel_size_angstrom,
            coordinate_pixel_size_angstrom=(
                None
                if parsed.coordinate_pixel_size_angstrom is None
                else parsed.coordinate_pixel_size_angstrom[rows][:, None]
            ),
            shift_pixels_xyz=None if parsed.shift_pixels is None else parsed.shift_pixels[rows],
            shift_angstrom_xyz=(
                None if parsed.shift_angstrom is None else parsed.shift_angstrom[rows]
            ),
            centred_angstrom=parsed.centred_angstrom,
            shape_zyx=geometry.shape_zyx,
        )
    table[["x", "y", "z"]] = out
    return table
