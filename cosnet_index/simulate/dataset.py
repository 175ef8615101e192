"""Simulated subtomogram datasets on disk: memory-mappable ``.npy`` arrays + a Parquet table.

Layout of a dataset folder::

    volumes.npy     (n, box, box, box) float16, molecules dark
    masks.npy       (n, box, box, box) bool, ground-truth masks of the centre molecule
    labels.parquet  one row per subtomogram: index, class, class_index, snr, defocus_um,
                    shift_x/y/z (voxels), rot_00 .. rot_22 (row-major, x, y, z), chunk_seed,
                    and ``imaging`` (the drawn Imaging as JSON) unless the preset is ``paper``
    meta.json       classes, snrs, n_per_class, seed, crowding, SimulationConfig, imaging preset

The dataset is a seeded, sharded cache: chunk ``c`` of ``batch_size`` rows depends only on
``[seed, c]``, so chunks can be made by several worker processes (``workers``) with identical bytes.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from cosnet_index.errors import InputError
from cosnet_index.simulate.config import SimulationConfig
from cosnet_index.simulate.microscope import ImagingRanges, resolve_imaging
from cosnet_index.simulate.subtomograms import simulate_subtomograms

__all__ = ["SimulatedDataset", "load_dataset", "make_dataset"]

ROTATION_COLUMNS = tuple(f"rot_{i}{j}" for i in range(3) for j in range(3))


@dataclass(frozen=True)
class SimulatedDataset:
    """A dataset written by :func:`make_dataset`, arrays memory-mapped read-only."""

    path: Path
    volumes: np.ndarray  # (n, box, box, box) float16 memmap
    masks: np.ndarray  # (n, box, box, box) bool memmap
    labels: pd.DataFrame
    classes: tuple[str, ...]
    config: SimulationConfig

    def __len__(self) -> int:
        return int(self.volumes.shape[0])


def make_dataset(
    out_dir: str | os.PathLike[str],
    classes: Sequence[str],
    n_per_class: int,
    snrs: Sequence[float],
    seed: int,
    config: SimulationConfig | None = None,
    crowding: bool = False,
    batch_size: int = 256,
    progress: bool = False,
    overwrite: bool = False,
    imaging: str | ImagingRanges = "paper",
    workers: int = 0,
) -> SimulatedDataset:
    """Simulate ``len(snrs) x len(classes) x n_per_class`` subtomograms into ``out_dir``.

    Rows are ordered by SNR, then class, then repeat. Chunk ``c`` of ``batch_size`` rows is
    simulated with seed ``[seed, c]``, so the bytes depend only on the arguments (not on
    ``workers``). ``imaging`` is the preset (see :func:`simulate_subtomograms`); ``workers > 1``
    simulates chunks in that many spawned processes (one torch thread each) writing straight
    into the memory-mapped arrays: the data-parallel generator for the realistic path.

    Raises:
        InputError: empty classes/snrs, ``n_per_class < 1``, or an existing dataset without
            ``overwrite``.
    """
    config = config or SimulationConfig()
    classes, snrs = tuple(classes), tuple(float(s) for s in snrs)
    if not classes or not snrs or n_per_class < 1:
        raise InputError("give at least one class, one snr and n_per_class >= 1")
    ranges = resolve_imaging(imaging)
    out = Path(out_dir)
    if (out / "labels.parquet").exists() and not overwrite:
        raise InputError(f"{out} already holds a dataset; choose another folder or overwrite")
    out.mkdir(parents=True, exist_ok=True)
    names = np.repeat(np.tile(np.asarray(classes, dtype=object), len(snrs)), n_per_class)
    snr_col = np.repeat(np.asarray(snrs), len(classes) * n_per_class)
    n, box = names.size, config.box
    volumes = np.lib.format.open_memmap(out / "volumes.npy", "w+", np.float16, (n, box, box, box))
    masks = np.lib.format.open_memmap(out / "masks.npy", "w+", np.bool_, (n, box, box, box))
    del volumes, masks  # each chunk reopens the arrays (in this process or a worker)
    jobs = [
        (
            out,
            start,
            min(n, start + batch_size),
            chunk,
            names[start : start + batch_size],
            snr_col[start : start + batch_size],
            seed,
            config,
            crowding,
            ranges,
        )
        for chunk, start in enumerate(range(0, n, batch_size))
    ]
    if workers > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(workers, mp_context=context, initializer=_one_thread) as pool:
            rows = list(_progress(pool.map(_simulate_chunk, jobs), len(jobs), progress))
    else:
        rows = [_simulate_chunk(job) for job in _progress(jobs, len(jobs), progress)]
    labels = pd.concat(rows, ignore_index=True)
    labels.insert(2, "class_index", labels["class"].map({c: i for i, c in enumerate(classes)}))
    labels.to_parquet(out / "labels.parquet", index=False)
    meta = {
        "classes": list(classes),
        "snrs": [s if np.isfinite(s) else "inf" for s in snrs],
        "n_per_class": int(n_per_class),
        "seed": int(seed),
        "crowding": bool(crowding),
        "config": config.to_dict(),
        "imaging": ranges.name,
        "imaging_ranges": ranges.to_dict(),
    }
    (out / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    return load_dataset(out)


def _one_thread() -> None:
    import torch

    torch.set_num_threads(1)


def _progress(items, total: int, show: bool):
    if not show:
        return items
    from tqdm import tqdm

    return tqdm(items, total=total, desc="subtomograms", unit="batch")


def _simulate_chunk(job: tuple) -> pd.DataFrame:
    """Simulate rows ``start:stop`` (chunk seed ``[seed, chunk]``) into the dataset's arrays."""
    out, start, stop, chunk, names, snr_col, seed, config, crowding, ranges = job
    rng = np.random.default_rng([int(seed), chunk])
    batch = simulate_subtomograms(list(names), snr_col, rng, config, crowding, imaging=ranges)
    volumes = np.load(out / "volumes.npy", mmap_mode="r+")
    masks = np.load(out / "masks.npy", mmap_mode="r+")
    volumes[start:stop] = batch.volumes.astype(np.float16)
    masks[start:stop] = batch.masks
    volumes.flush()
    masks.flush()
    del volumes, masks
    table = pd.DataFrame(
        {
            "index": np.arange(start, stop),
            "class": names.astype(str),
            "snr": snr_col,
            "defocus_um": batch.defocus_um,
            "shift_x": batch.shifts[:, 0],
            "shift_y": batch.shifts[:, 1],
            "shift_z": batch.shifts[:, 2],
        }
    )
    for k, column in enumerate(ROTATION_COLUMNS):
        table[column] = batch.rotations.reshape(-1, 9)[:, k]
    table["chunk_seed"] = chunk
    if batch.imaging:
        table["imaging"] = [im.to_json() for im in batch.imaging]
    return table


def load_dataset(path: str | os.PathLike[str]) -> SimulatedDataset:
    """Open a dataset folder written by :func:`make_dataset` (arrays memory-mapped, read-only).

    Raises:
        InputError: the folder is not a complete dataset.
    """
    path = Path(path)
    needed = ("volumes.npy", "masks.npy", "labels.parquet", "meta.json")
    missing = [f for f in needed if not (path / f).is_file()]
    if missing:
        raise InputError(f"{path} is not a simulated dataset (missing {missing}); make one first")
    meta = json.loads((path / "meta.json").read_text())
    volumes = np.load(path / "volumes.npy", mmap_mode="r")
    masks = np.load(path / "masks.npy", mmap_mode="r")
    labels = pd.read_parquet(path / "labels.parquet")
    if not volumes.shape[0] == masks.shape[0] == len(labels):
        raise InputError(f"{path}: volumes, masks and labels disagree in length; regenerate it")
    return SimulatedDataset(
        path=path,
        volumes=volumes,
        masks=masks,
        labels=labels,
        classes=tuple(meta["classes"]),
        config=SimulationConfig.from_dict(meta["config"]),
    )
