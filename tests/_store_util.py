"""Tiny seeded tomograms, coordinate files and models for the io/store tests."""

from __future__ import annotations

from pathlib import Path

import mrcfile
import numpy as np
import pandas as pd
import starfile

SHAPE_ZYX = (40, 64, 72)


def write_tomogram(
    path: Path,
    *,
    shape_zyx: tuple[int, int, int] = SHAPE_ZYX,
    voxel_size_angstrom: float = 10.0,
    seed: int = 0,
    centres_xyz: np.ndarray | None = None,
    dtype: type = np.float32,
) -> Path:
    """Noise + dark blobs at ``centres_xyz``; header voxel size set."""
    rng = np.random.default_rng(seed)
    data = rng.normal(0.0, 1.0, size=shape_zyx).astype(np.float32)
    if centres_xyz is not None:
        z, y, x = np.indices(shape_zyx)
        for cx, cy, cz in np.asarray(centres_xyz):
            data -= 3.0 * np.exp(-((x - cx) ** 2 + (y - cy) ** 2 + (z - cz) ** 2) / 18.0)
    with mrcfile.new(path, overwrite=True) as mrc:
        mrc.set_data(data.astype(dtype))
        mrc.voxel_size = voxel_size_angstrom
    return path


def particle_table(
    n_per_tomogram: int = 6, names: tuple[str, ...] = ("TS_01", "TS_02"), seed: int = 1
) -> pd.DataFrame:
    """``tomogram, x, y, z``: boxes inside a SHAPE_ZYX volume, plus one edge and one outside."""
    rng = np.random.default_rng(seed)
    frames = []
    nz, ny, nx = SHAPE_ZYX
    for name in names:
        x = rng.uniform(17, nx - 17, n_per_tomogram)
        y = rng.uniform(17, ny - 17, n_per_tomogram)
        z = np.full(n_per_tomogram, nz / 2)
        frame = pd.DataFrame({"tomogram": name, "x": x, "y": y, "z": z})
        # one box crossing the edge, one centre outside the volume
        extra = pd.DataFrame(
            {"tomogram": name, "x": [3.0, nx + 5.0], "y": [ny / 2, ny / 2], "z": [nz / 2, nz / 2]}
        )
        frames += [frame, extra]
    return pd.concat(frames, ignore_index=True)


def write_star_relion31(path: Path, table: pd.DataFrame, pixel_size: float = 10.0) -> Path:
    """RELION 3.1: data_optics + data_particles, rlnMicrographName, origin shifts in angstrom."""
    optics = pd.DataFrame(
        {
            "rlnOpticsGroup": [1],
            "rlnOpticsGroupName": ["opticsGroup1"],
            "rlnImagePixelSize": [pixel_size],
            "rlnImageSize": [32],
            "rlnImageDimensionality": [3],
        }
    )
    # shift every particle by (+2, -1, +3) voxels in the file and record the origin to undo it
    shift = np.array([2.0, -1.0, 3.0])
    particles = pd.DataFrame(
        {
            "rlnMicrographName": [f"tomograms/{n}.mrc" for n in table["tomogram"]],
            "rlnCoordinateX": table["x"] + shift[0],
            "rlnCoordinateY": table["y"] + shift[1],
            "rlnCoordinateZ": table["z"] + shift[2],
            "rlnOriginXAngst": np.full(len(table), shift[0] * pixel_size),
            "rlnOriginYAngst": np.full(len(table), shift[1] * pixel_size),
            "rlnOriginZAngst": np.full(len(table), shift[2] * pixel_size),
            "rlnAngleRot": np.zeros(len(table)),
            "rlnOpticsGroup": np.ones(len(table), dtype=int),
        }
    )
    starfile.write({"optics": optics, "particles": particles}, path, overwrite=True)
    return path


def write_star_relion5(
    path: Path, table: pd.DataFrame, pixel_size: float = 10.0, shape_zyx=SHAPE_ZYX
) -> Path:
    """RELION 5 tomography: rlnTomoName + rlnCenteredCoordinateX/Y/ZAngst (from the centre)."""
    centre = np.asarray(shape_zyx, dtype=float)[::-1] / 2.0  # x, y, z
    optics = pd.DataFrame(
        {
            "rlnOpticsGroup": [1],
            "rlnOpticsGroupName": ["optics1"],
            "rlnTomoTiltSeriesPixelSize": [pixel_size / 2],
            "rlnImagePixelSize": [pixel_size],
        }
    )
    particles = pd.DataFrame(
        {
            "rlnTomoName": table["tomogram"],
            "rlnCenteredCoordinateXAngst": (table["x"] - centre[0]) * pixel_size,
            "rlnCenteredCoordinateYAngst": (table["y"] - centre[1]) * pixel_size,
            "rlnCenteredCoordinateZAngst": (table["z"] - centre[2]) * pixel_size,
            "rlnOriginXAngst": np.zeros(len(table)),
            "rlnOriginYAngst": np.zeros(len(table)),
            "rlnOriginZAngst": np.zeros(len(table)),
            "rlnOpticsGroup": np.ones(len(table), dtype=int),
        }
    )
    starfile.write(
        {"general": {"rlnTomoSubTomosAre2DStacks": 0}, "optics": optics, "particles": particles},
        path,
        overwrite=True,
    )
    return path


def write_star_warp(path: Path, table: pd.DataFrame) -> Path:
    """Warp: a single data block, rlnMicrographName ``<name>.tomostar``, pixel coordinates."""
    particles = pd.DataFrame(
        {
            "rlnCoordinateX": table["x"],
            "rlnCoordinateY": table["y"],
            "rlnCoordinateZ": table["z"],
            "rlnAngleRot": np.zeros(len(table)),
            "rlnAngleTilt": np.zeros(len(table)),
            "rlnAnglePsi": np.zeros(len(table)),
            "rlnMicrographName": [f"{n}.tomostar" for n in table["tomogram"]],
            "rlnMagnification": np.full(len(table), 10000.0),
        }
    )
    starfile.write(particles, path, overwrite=True)
    return path


def write_star_relion4(path: Path, table: pd.DataFrame, tilt_series_pixel: float = 2.5) -> Path:
    """RELION 4 tomography: rlnTomoName + rlnCoordinateX/Y/Z in unbinned tilt-series pixels."""
    optics = pd.DataFrame(
        {
            "rlnOpticsGroup": [1],
            "rlnOpticsGroupName": ["optics1"],
            "rlnTomoTiltSeriesPixelSize": [tilt_series_pixel],
        }
    )
    factor = 10.0 / tilt_series_pixel  # tomogram voxels are 10 A
    particles = pd.DataFrame(
        {
            "rlnTomoName": table["tomogram"],
            "rlnCoordinateX": table["x"] * factor,
            "rlnCoordinateY": table["y"] * factor,
            "rlnCoordinateZ": table["z"] * factor,
            "rlnOpticsGroup": np.ones(len(table), dtype=int),
        }
    )
    starfile.write({"optics": optics, "particles": particles}, path, overwrite=True)
    return path


def tiny_checkpoint(path: Path, seed: int = 0, voxel_size_nm: float = 1.0) -> tuple[Path, str]:
    """A tiny random COS-Net saved with ``save_checkpoint``; returns (path, hash)."""
    import torch

    from cosnet_index.model import CosNet, CosNetConfig, save_checkpoint

    torch.manual_seed(seed)
    model = CosNet(CosNetConfig(widths=(4, 8, 8), voxel_size_nm=voxel_size_nm))
    return path, save_checkpoint(model, path)
