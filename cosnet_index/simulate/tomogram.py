"""Simulated tomograms: many non-overlapping molecules at random poses, imaged as a whole.

Outputs follow the conventions of real data (``cosnet_index.geometry``): the MRC is float32,
(z, y, x), voxel size in angstrom in its header, molecules dark; coordinates are x, y, z voxels
(0-based voxel centres) in a RELION-style STAR file (``data_particles``: ``rlnTomoName``,
``rlnCoordinateX/Y/Z``, ``rlnClassName``), and the full truth (pose, mass, seed) in Parquet.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import mrcfile
import numpy as np
import pandas as pd
import torch

from cosnet_index.errors import InputError
from cosnet_index.files import atomic_write
from cosnet_index.simulate._fourier import parseval_variance
from cosnet_index.simulate.config import SimulationConfig
from cosnet_index.simulate.microscope import ImagingRanges, resolve_imaging
from cosnet_index.simulate.molecules import ClassMap, class_info
from cosnet_index.simulate.reconstruction._tilt_series import reconstruct_tilt_series
from cosnet_index.simulate.reconstruction.paper import ctf_wedge_filters
from cosnet_index.simulate.specimen import (
    add_background,
    ice_gain,
    place_molecules,
    render_molecules,
)

__all__ = ["SimulatedTomogram", "simulate_collection", "simulate_tomogram", "write_particles_star"]

ROTATION_COLUMNS = tuple(f"rot_{i}{j}" for i in range(3) for j in range(3))


@dataclass(frozen=True)
class SimulatedTomogram:
    """A written tomogram and its ground truth.

    Attributes:
        path: the MRC file.
        particles: one row per molecule: ``tomogram, x, y, z`` (voxels, 0-based centres),
            ``class``, ``rot_00 .. rot_22`` (row-major R, acting on x, y, z, reference ->
            tomogram), ``mass_da``, ``radius_voxels``, ``snr``, ``defocus_um``, ``seed``.
        label_path: the label MRC (particle row + 1 inside each mask, 0 elsewhere), if written.
    """

    path: Path
    particles: pd.DataFrame
    label_path: Path | None = None


def _boxes_variance(volume: torch.Tensor, centres_xyz: np.ndarray, box: int) -> float:
    """Mean variance of the ``box``-sized cubes centred on the particles (clipped at edges)."""
    shape = volume.shape
    values = []
    for centre in np.floor(centres_xyz + 0.5).astype(np.int64):
        lo = centre[::-1] - box // 2
        sl = tuple(slice(max(0, lo[a]), min(shape[a], lo[a] + box)) for a in range(3))
        values.append(float(volume[sl].var()))
    return float(np.mean(values)) if values else float(volume.var())


def _write_mrc(path: Path, data: np.ndarray, voxel_size_angstrom: float) -> None:
    with atomic_write(path) as tmp, mrcfile.new(tmp, overwrite=True) as mrc:
        mrc.set_data(data)
        mrc.voxel_size = voxel_size_angstrom
        # a fixed label instead of mrcfile's timestamp: same seed, same bytes
        mrc.header.label[0] = b"cosnet-index simulate".ljust(80)
        mrc.header.nlabl = 1


def write_particles_star(particles: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Write a RELION-style particle STAR file (``data_particles``) from a truth table."""
    import starfile

    star = pd.DataFrame(
        {
            "rlnTomoName": particles["tomogram"].astype(str),
            "rlnCoordinateX": particles["x"].astype(float),
            "rlnCoordinateY": particles["y"].astype(float),
            "rlnCoordinateZ": particles["z"].astype(float),
            "rlnClassName": particles["class"].astype(str),
        }
    )
    path = Path(path)
    starfile.write({"particles": star}, path, overwrite=True)
    return path


def simulate_tomogram(
    out_dir: str | os.PathLike[str],
    name: str,
    classes: Sequence[str],
    n_particles: int,
    snr: float,
    seed: int,
    shape: tuple[int, int, int] = (128, 256, 256),
    config: SimulationConfig | None = None,
    write_tables: bool = True,
    write_labels: bool = False,
    write_clean: bool = False,
    edge_margin: int | None = None,
    imaging: str | ImagingRanges = "paper",
) -> SimulatedTomogram:
    """Simulate one tomogram and write ``<out_dir>/<name>.mrc`` (+ STAR and truth Parquet).

    Molecules of random classes (uniform over ``classes``) get uniform random rotations and
    random non-overlapping positions (their mask spheres do not intersect). The summed density
    is imaged with one CTF (defocus drawn around ``config.defocus_um``), the missing wedge and
    noise whose variance is ``mean_particles(var(clean box)) / snr`` (boxes of ``config.box``
    around each particle, so that extracted subtomograms have about the requested SNR).

    Args:
        out_dir: output folder (created).
        name: tomogram name (the MRC stem and ``rlnTomoName``).
        classes: class names to draw from.
        n_particles: molecules to place (fewer are placed, with a warning, if they do not fit).
        snr: SNR as above (``inf`` = no noise).
        seed: the same seed gives identical bytes.
        shape: (z, y, x) voxels.
        config: simulation parameters (voxel size, CTF, wedge).
        write_tables: also write ``<name>.star`` and ``<name>_truth.parquet``.
        write_labels: also write ``<name>_labels.mrc`` (int16: particle row + 1 in its mask).
        write_clean: also write ``<name>_clean.mrc`` (noise-free, CTF and wedge applied).
        edge_margin: particle centres keep this many voxels from every face (default
            ``config.box // 2``, so that a box around every particle fits in the tomogram).
        imaging: imaging preset name or :class:`ImagingRanges`. ``paper`` (default) is the fast
            path above; any other draws one :class:`Imaging` for the tomogram and images it
            through the real tilt-series path (projection at every tilt, per-tilt and per-height
            CTF, exposure filter, noise in the projections, weighted back-projection; plus the
            background it draws). The truth table then has ``preset`` and ``imaging`` (JSON).

    Raises:
        InputError: empty classes, unknown class or preset, bad shape, snr or n_particles.
    """
    config = config or SimulationConfig()
    if not classes:
        raise InputError("classes is empty: give at least one class name")
    if n_particles < 0 or not snr > 0:
        raise InputError("n_particles must be >= 0 and snr > 0 (inf for no noise)")
    shape = tuple(int(s) for s in shape)
    if len(shape) != 3 or min(shape) < config.box:
        raise InputError(f"shape must be 3 sizes (z, y, x), each >= box {config.box}; got {shape}")
    ranges = resolve_imaging(imaging)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    unique = list(dict.fromkeys(classes))
    if not ranges.fast_path:
        return _simulate_tilt_series_tomogram(
            out, name, unique, n_particles, snr, seed, shape, config, ranges,
            write_tables, write_labels, write_clean, edge_margin,
        )  # fmt: skip
    infos = [class_info(c, config.voxel_size_nm, config.resolution_nm) for c in unique]
    rng = np.random.default_rng(int(seed))
    margin = config.box // 2 if edge_margin is None else int(edge_margin)
    centres, class_idx, rotations = place_molecules(rng, shape, infos, n_particles, margin, name)
    defocus = config.defocus_um + rng.uniform(-1.0, 1.0) * config.defocus_spread_um
    noise_seed = int(rng.integers(0, 2**63 - 1))

    with torch.no_grad():
        density, labels = render_molecules(
            shape, infos, class_idx, centres, rotations, write_labels
        )
        transfer, noise_filter = ctf_wedge_filters(shape, config, torch.tensor([defocus]), "cpu")
        spectrum = torch.fft.rfftn(density) * transfer[0]
        clean = torch.fft.irfftn(spectrum, s=shape)
        volume = clean
        if np.isfinite(snr):
            generator = torch.Generator().manual_seed(noise_seed)
            noise = torch.randn(shape, generator=generator)
            noise_spectrum = torch.fft.rfftn(noise) * noise_filter[0]
            var_noise = float(parseval_variance(noise_spectrum[None], shape)[0])
            var_signal = _boxes_variance(clean, centres, config.box)
            scale = np.sqrt(var_signal / (snr * var_noise))
            volume = torch.fft.irfftn(spectrum + scale * noise_spectrum, s=shape)
    particles = _truth_table(name, unique, centres, class_idx, rotations, infos)
    particles["snr"] = float(snr)
    particles["defocus_um"] = float(defocus)
    particles["seed"] = int(seed)
    return _write_tomogram(
        out, name, config, volume, clean if write_clean else None, labels, particles, write_tables
    )


def _simulate_tilt_series_tomogram(
    out: Path,
    name: str,
    unique: list[str],
    n_particles: int,
    snr: float,
    seed: int,
    shape: tuple[int, int, int],
    config: SimulationConfig,
    ranges: ImagingRanges,
    write_tables: bool,
    write_labels: bool,
    write_clean: bool,
    edge_margin: int | None,
) -> SimulatedTomogram:
    """:func:`simulate_tomogram` through the real tilt-series path (see ``_tilt_series``)."""
    rng = np.random.default_rng(int(seed))
    imaging = ranges.sample(rng)
    # the data's true voxel is voxel_mismatch x the nominal one (written in the header): maps are
    # made at the true size, so molecules look 1 / mismatch as big in voxels
    voxel_nm = round(config.voxel_size_nm * imaging.voxel_mismatch, 4)
    resolution = max(round(imaging.resolution_nm * 4) / 4, 2.0 * voxel_nm)
    infos = [class_info(c, voxel_nm, resolution) for c in unique]
    margin = config.box // 2 if edge_margin is None else int(edge_margin)
    centres, class_idx, rotations = place_molecules(rng, shape, infos, n_particles, margin, name)
    noise_seed = int(rng.integers(0, 2**63 - 1))
    with torch.no_grad():
        density, labels = render_molecules(shape, infos, class_idx, centres, rotations, True)
        density, _ = add_background(density, labels > 0, imaging, rng, voxel_nm)
        generator = torch.Generator().manual_seed(noise_seed)
        clean, noise = reconstruct_tilt_series(
            density,
            imaging,
            voxel_nm,
            generator,
            with_noise=bool(np.isfinite(snr)),
            noise_gain=ice_gain(shape, imaging),
        )
        volume = clean
        if noise is not None:
            var_signal = _boxes_variance(clean, centres, config.box)
            var_noise = _boxes_variance(noise, centres, config.box)
            volume = clean + float(np.sqrt(var_signal / (snr * max(var_noise, 1e-30)))) * noise
        if imaging.invert_contrast:
            volume, clean = -volume, -clean
    particles = _truth_table(name, unique, centres, class_idx, rotations, infos)
    particles["snr"] = float(snr)
    particles["defocus_um"] = float(imaging.defocus_um)
    particles["seed"] = int(seed)
    particles["preset"] = ranges.name
    particles["imaging"] = imaging.to_json()
    return _write_tomogram(
        out,
        name,
        config,
        volume,
        clean if write_clean else None,
        labels if write_labels else None,
        particles,
        write_tables,
    )


def _write_tomogram(
    out: Path,
    name: str,
    config: SimulationConfig,
    volume: torch.Tensor,
    clean: torch.Tensor | None,
    labels: torch.Tensor | None,
    particles: pd.DataFrame,
    write_tables: bool,
) -> SimulatedTomogram:
    """Write ``<name>.mrc`` (and ``_clean``, ``_labels`` when given, STAR + truth Parquet)."""
    voxel_angstrom = config.voxel_size_nm * 10.0
    path = out / f"{name}.mrc"
    _write_mrc(path, volume.numpy().astype(np.float32), voxel_angstrom)
    if clean is not None:
        _write_mrc(out / f"{name}_clean.mrc", clean.numpy().astype(np.float32), voxel_angstrom)
    label_path = None
    if labels is not None:
        label_path = out / f"{name}_labels.mrc"
        _write_mrc(label_path, labels.numpy().astype(np.int16), voxel_angstrom)
    if write_tables:
        write_particles_star(particles, out / f"{name}.star")
        particles.to_parquet(out / f"{name}_truth.parquet", index=False)
    return SimulatedTomogram(path=path, particles=particles, label_path=label_path)


def _truth_table(
    name: str,
    unique: list[str],
    centres: np.ndarray,
    class_idx: np.ndarray,
    rotations: np.ndarray,
    infos: list[ClassMap],
) -> pd.DataFrame:
    particles = pd.DataFrame(
        {
            "tomogram": name,
            "x": centres[:, 0],
            "y": centres[:, 1],
            "z": centres[:, 2],
            "class": [unique[c] for c in class_idx],
        }
    )
    for k, column in enumerate(ROTATION_COLUMNS):
        particles[column] = rotations.reshape(-1, 9)[:, k]
    particles["mass_da"] = [infos[c].mass_da for c in class_idx]
    particles["radius_voxels"] = [infos[c].radius_voxels for c in class_idx]
    return particles


def simulate_collection(
    out_dir: str | os.PathLike[str],
    n_tomograms: int,
    classes: Sequence[str],
    n_particles: int,
    snr: float,
    seed: int,
    shape: tuple[int, int, int] = (128, 256, 256),
    config: SimulationConfig | None = None,
    prefix: str = "TS_",
    write_labels: bool = False,
    progress: bool = False,
    imaging: str | ImagingRanges = "paper",
) -> pd.DataFrame:
    """Several tomograms ``<prefix>01.mrc ...`` + one ``particles.star`` + one ``truth.parquet``.

    Tomogram ``i`` (1-based) uses seed ``seed * 1000 + i``; ``imaging`` as in
    :func:`simulate_tomogram` (each tomogram draws its own :class:`Imaging`). Returns the
    combined truth table.

    Raises:
        InputError: as :func:`simulate_tomogram`, or ``n_tomograms < 1``.
    """
    if n_tomograms < 1:
        raise InputError(f"n_tomograms must be >= 1, got {n_tomograms}")
    out = Path(out_dir)
    indices = range(1, n_tomograms + 1)
    if progress:
        from tqdm import tqdm

        indices = tqdm(indices, desc="tomograms", unit="tomo")
    tables = []
    for i in indices:
        result = simulate_tomogram(
            out,
            f"{prefix}{i:02d}",
            classes,
            n_particles,
            snr,
            seed * 1000 + i,
            shape,
            config,
            write_tables=False,
            write_labels=write_labels,
            imaging=imaging,
        )
        tables.append(result.particles)
    truth = pd.concat(tables, ignore_index=True)
    write_particles_star(truth, out / "particles.star")
    truth.to_parquet(out / "truth.parquet", index=False)
    return truth
