"""Every geometric conversion of cosnet-index, in one place.

Conventions (see ``docs/store.md``):

- **Arrays are (z, y, x)**, as :mod:`mrcfile` returns them. **Tables are x, y, z** in voxels of the
  tomogram they name, as RELION and Warp STAR files give them. :func:`xyz_to_zyx` and
  :func:`zyx_to_xyz` are the only places that swap the axes.
- A voxel coordinate ``c`` names the *centre* of voxel ``c`` (0-based array index). A box of side
  ``b`` is centred on the rounded coordinate ``r = floor(c + 0.5)`` and spans
  ``[r - b // 2, r - b // 2 + b)`` on each axis (:func:`box_bounds`).
- Lengths in angstrom are converted with the voxel size of the tomogram in angstrom per voxel
  (:func:`angstrom_to_voxels`, :func:`voxels_to_angstrom`).
- RELION origin shifts (``rlnOriginX/Y/ZAngst`` in angstrom, or the older ``rlnOriginX/Y/Z`` in
  pixels) are *subtracted*: the particle centre is ``coordinate - origin``
  (:func:`table_to_voxels`).
- RELION 5 ``rlnCenteredCoordinateX/Y/ZAngst`` are angstrom from the tomogram centre, which is
  ``shape / 2`` voxels on each axis (float division, as RELION 5 computes it).
- A molecule's volume follows from its mass at the mean density of protein,
  ``PROTEIN_DENSITY_DA_PER_A3 = 0.81`` Da/A^3 (1.35 g/cm^3; the simulator's truth masks use it too):
  :func:`mass_kda_to_volume_nm3`, and :func:`volume_nm3_to_voxels` at a voxel size.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "COORDINATE_CONVENTIONS",
    "POSITION_DECIMALS",
    "PROTEIN_DENSITY_DA_PER_A3",
    "RESAMPLE_TOLERANCE",
    "angstrom_to_voxels",
    "box_bounds",
    "centre_voxels",
    "mass_kda_to_volume_nm3",
    "position_keys",
    "resampled_box_size",
    "round_half_up",
    "source_box_side",
    "table_to_voxels",
    "volume_nm3_to_voxels",
    "voxels_to_angstrom",
    "voxels_to_table",
    "xyz_to_zyx",
    "zyx_to_xyz",
]


RESAMPLE_TOLERANCE = 0.01
"""Relative voxel-size difference below which boxes are used as they are (not resampled)."""

PROTEIN_DENSITY_DA_PER_A3 = 0.81
"""Mean density of protein (1.35 g/cm^3): a molecule of mass m encloses ``m / 0.81`` A^3."""


def xyz_to_zyx(xyz: np.ndarray) -> np.ndarray:
    """Reverse the last axis: ``(..., 3)`` x, y, z -> z, y, x (array index order)."""
    xyz = np.asarray(xyz)
    return xyz[..., ::-1].copy()


def zyx_to_xyz(zyx: np.ndarray) -> np.ndarray:
    """Reverse the last axis: ``(..., 3)`` z, y, x (array index order) -> x, y, z."""
    zyx = np.asarray(zyx)
    return zyx[..., ::-1].copy()


def angstrom_to_voxels(values_angstrom: np.ndarray, voxel_size_angstrom: float) -> np.ndarray:
    """Lengths or positions in angstrom -> voxels of size ``voxel_size_angstrom``."""
    return np.asarray(values_angstrom, dtype=np.float64) / float(voxel_size_angstrom)


def voxels_to_angstrom(values_voxels: np.ndarray, voxel_size_angstrom: float) -> np.ndarray:
    """Lengths or positions in voxels of size ``voxel_size_angstrom`` -> angstrom."""
    return np.asarray(values_voxels, dtype=np.float64) * float(voxel_size_angstrom)


def centre_voxels(shape_zyx: tuple[int, int, int]) -> np.ndarray:
    """The tomogram centre as x, y, z voxels: ``shape / 2`` (RELION 5's convention)."""
    return zyx_to_xyz(np.asarray(shape_zyx, dtype=np.float64) / 2.0)


def table_to_voxels(
    xyz: np.ndarray,
    *,
    voxel_size_angstrom: float,
    coordinate_pixel_size_angstrom: float | np.ndarray | None = None,
    shift_pixels_xyz: np.ndarray | None = None,
    shift_angstrom_xyz: np.ndarray | None = None,
    centred_angstrom: bool = False,
    shape_zyx: tuple[int, int, int] | None = None,
) -> np.ndarray:
    """Particle centres of a coordinate table -> x, y, z voxels of the tomogram.

    Args:
        xyz: ``(n, 3)`` coordinates as the table gives them: pixels (``rlnCoordinateX``...)
            or, with ``centred_angstrom``, angstrom from the tomogram centre
            (``rlnCenteredCoordinateXAngst``...).
        voxel_size_angstrom: voxel size of the tomogram the coordinates refer to.
        coordinate_pixel_size_angstrom: pixel size the pixel coordinates are given at when it
            differs from the tomogram's (RELION 4 tilt-series pixels); None = tomogram voxels.
        shift_pixels_xyz: ``(n, 3)`` origin shifts in coordinate pixels (``rlnOriginX``),
            subtracted.
        shift_angstrom_xyz: ``(n, 3)`` origin shifts in angstrom (``rlnOriginXAngst``), subtracted.
        centred_angstrom: coordinates are angstrom from the centre (RELION 5 tomography).
        shape_zyx: tomogram shape; required with ``centred_angstrom``.

    Returns:
        ``(n, 3)`` float64 x, y, z in voxels of the tomogram.
    """
    xyz = np.asarray(xyz, dtype=np.float64).reshape(-1, 3)
    n = xyz.shape[0]
    shift_px = np.zeros((n, 3)) if shift_pixels_xyz is None else np.asarray(shift_pixels_xyz)
    shift_a = np.zeros((n, 3)) if shift_angstrom_xyz is None else np.asarray(shift_angstrom_xyz)
    if centred_angstrom:
        if shape_zyx is None:
            raise ValueError("centred_angstrom coordinates need the tomogram shape")
        position_angstrom = xyz - shift_px * voxel_size_angstrom - shift_a
        return angstrom_to_voxels(position_angstrom, voxel_size_angstrom) + centre_voxels(shape_zyx)
    pixel = (
        voxel_size_angstrom
        if coordinate_pixel_size_angstrom is None
        else np.asarray(coordinate_pixel_size_angstrom, dtype=np.float64)
    )
    position_angstrom = (xyz - shift_px) * pixel - shift_a
    return angstrom_to_voxels(position_angstrom, voxel_size_angstrom)


POSITION_DECIMALS = 2
"""A particle's identity in a store is its tomogram, model and position rounded to this many
decimals of a voxel (0.01 voxel): far below any picking precision, far above float noise of
coordinates that went through angstrom and back (``index`` never stores one position twice)."""


def position_keys(xyz_voxels: np.ndarray) -> np.ndarray:
    """``(n,)`` hashable keys of positions rounded to ``POSITION_DECIMALS`` (a structured view).

    Two coordinates get the same key when each axis rounds to the same multiple of 0.01 voxel.
    """
    scaled = np.rint(
        np.asarray(xyz_voxels, dtype=np.float64).reshape(-1, 3) * 10**POSITION_DECIMALS
    )
    keys = np.ascontiguousarray(scaled.astype(np.int64))
    return keys.view([("x", np.int64), ("y", np.int64), ("z", np.int64)]).reshape(-1)


COORDINATE_CONVENTIONS = ("voxels", "relion4", "relion5")
"""How a coordinate table gives positions: ``voxels`` of the tomogram (CSV, Parquet, RELION 3,
Warp), ``relion4`` tilt-series pixels (``rlnCoordinateX`` with ``rlnTomoTiltSeriesPixelSize``
in the optics block), ``relion5`` angstrom from the tomogram centre
(``rlnCenteredCoordinateXAngst``)."""


def voxels_to_table(
    xyz_voxels: np.ndarray,
    convention: str,
    *,
    voxel_size_angstrom: float,
    coordinate_pixel_size_angstrom: float | None = None,
    shape_zyx: tuple[int, int, int] | None = None,
) -> np.ndarray:
    """Tomogram voxels -> coordinates in a table convention: the inverse of
    :func:`table_to_voxels` without origin shifts (exported positions carry none).

    Args:
        xyz_voxels: ``(n, 3)`` x, y, z in voxels of the tomogram.
        convention: one of :data:`COORDINATE_CONVENTIONS`.
        voxel_size_angstrom: the tomogram's voxel size.
        coordinate_pixel_size_angstrom: ``relion4``: the tilt-series pixel size.
        shape_zyx: ``relion5``: the tomogram's shape.

    Returns:
        ``(n, 3)`` float64 coordinates as the convention's table gives them.

    Raises:
        ValueError: unknown convention, or a missing pixel size or shape it needs.
    """
    xyz = np.asarray(xyz_voxels, dtype=np.float64).reshape(-1, 3)
    if convention == "voxels":
        return xyz.copy()
    if convention == "relion4":
        if not coordinate_pixel_size_angstrom:
            raise ValueError("relion4 coordinates need the tilt-series pixel size")
        return voxels_to_angstrom(xyz, voxel_size_angstrom) / float(coordinate_pixel_size_angstrom)
    if convention == "relion5":
        if shape_zyx is None:
            raise ValueError("relion5 coordinates need the tomogram shape")
        return voxels_to_angstrom(xyz - centre_voxels(shape_zyx), voxel_size_angstrom)
    raise ValueError(f"unknown coordinate convention {convention!r}")


def round_half_up(values: np.ndarray) -> np.ndarray:
    """``floor(v + 0.5)`` as int64: the voxel a coordinate falls in (12.5 -> 13, -0.5 -> 0).

    Values beyond +-2^52 voxels and NaN/inf map to -2^52: outside every volume, no overflow.
    """
    rounded = np.floor(np.asarray(values, dtype=np.float64) + 0.5)
    far = float(2**52)
    rounded = np.where(np.abs(rounded) <= far, rounded, -far)  # NaN compares False: -far
    return rounded.astype(np.int64)


def box_bounds(xyz_voxels: np.ndarray, box: int) -> tuple[np.ndarray, np.ndarray]:
    """Start (inclusive) and stop (exclusive) array indices of boxes centred on coordinates.

    Args:
        xyz_voxels: ``(n, 3)`` x, y, z voxel coordinates.
        box: box side in voxels.

    Returns:
        ``(start_zyx, stop_zyx)``, each ``(n, 3)`` int64 in array (z, y, x) order.
    """
    centre_zyx = xyz_to_zyx(round_half_up(np.asarray(xyz_voxels).reshape(-1, 3)))
    start = centre_zyx - box // 2
    return start, start + box


def resampled_box_size(
    box: int, voxel_size_angstrom: float, model_voxel_size_angstrom: float
) -> int:
    """Side (in tomogram voxels) of the region that resamples to ``box`` model voxels.

    ``round(box * model / tomogram)``, at least 1: a tomogram at 5 A for a 10 A model reads 64^3
    voxels and Fourier-crops them to 32^3.
    """
    return max(1, round(box * model_voxel_size_angstrom / voxel_size_angstrom))


def source_box_side(box: int, voxel_size_angstrom: float, model_voxel_size_angstrom: float) -> int:
    """Side read from a tomogram for a ``box``^3 model box: ``box`` itself unless the voxel sizes
    differ by more than ``RESAMPLE_TOLERANCE``, else :func:`resampled_box_size`.

    The one rule indexing applies; everything that reads a stored subtomogram's box again
    (``cosnet_index.store.boxes``) replays it.
    """
    ratio = voxel_size_angstrom / model_voxel_size_angstrom
    if abs(ratio - 1.0) > RESAMPLE_TOLERANCE:
        return resampled_box_size(box, voxel_size_angstrom, model_voxel_size_angstrom)
    return int(box)


def mass_kda_to_volume_nm3(mass_kda: float) -> float:
    """Molecular volume (nm^3) of a mass in kDa: ``mass / 0.81 Da/A^3`` (81 kDa -> 100 nm^3)."""
    return float(mass_kda) / PROTEIN_DENSITY_DA_PER_A3  # kDa / (Da/A^3) = 1000 A^3 = nm^3


def volume_nm3_to_voxels(volume_nm3: float, voxel_size_angstrom: float) -> int:
    """Voxels (at least 1) of ``volume_nm3`` at ``voxel_size_angstrom``, rounded."""
    return max(1, round(float(volume_nm3) * 1000.0 / float(voxel_size_angstrom) ** 3))
