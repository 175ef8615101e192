"""Simulated subtomogram datasets on disk: memory-mappable ``.npy`` arrays + a Parquet table.

Layout of a dataset folder::

    volumes.npy     (n, box, box, box) float16, molecules dark
    masks.npy       (n, box, box, box) bool, ground-truth masks of the centre molecule
    labels.parquet  one row per subtomogram: index, class, class_index, snr, defocus_um,
                    shift_x/y/z (voxels), rot_00 .. rot_22 (row-major, x, y, z), chunk_seed
    meta.json       classes, snrs, n_per_class, seed, crowding, SimulationConfig
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
) -> SimulatedDataset:
    """Simulate ``len(snrs) x len(classes) x n_per_class`` subtomograms into ``out_dir``.

    Rows are ordered by SNR, then class, then repeat. Chunk ``c`` of ``batch_size`` rows is
    simulated with seed ``[seed, c]``, so the bytes depend only on the arguments.

    Raises:
        InputError: empty classes/snrs, ``n_per_class < 1``, or an existing dataset without
            ``overwrite``.
    """
    config = config or SimulationConfig()
    classes, snrs = tuple(classes), tuple(float(s) for s in snrs)
    if not classes or not snrs or n_per_class < 1:
        raise InputError("give at least one class, one snr and n_per_class >= 1")
    out = Path(out_dir)
    if (out / "labels.parquet").exists() and not overwrite:
        raise InputError(f"{out} already holds a dataset; choose another folder or overwrite")
    out.mkdir(parents=True, exist_ok=True)
    names = np.repeat(np.tile(np.asarray(classes, dtype=object), len(snrs)), n_per_class)
    snr_col = np.repeat(np.asarray(snrs), len(classes) * n_per_class)
    n, box = names.size, config.box
    volumes = np.lib.format.open_memmap(out / "volumes.npy", "w+", np.float16, (n, box, box, box))
    masks = np.lib.format.open_memmap(out / "masks.npy", "w+", np.bool_, (n, box, box, box))
    starts = range(0, n, batch_size)
    if progress:
        from tqdm import tqdm

        starts = tqdm(starts, desc="subtomograms", unit="batch")
    rows = []
    for chunk, start in enumerate(starts):
        stop = min(n, start + batch_size)
        rng = np.random.default_rng([int(seed), chunk])
        batch = simulate_subtomograms(
            list(names[start:stop]), snr_col[start:stop], rng, config, crowding
        )
        volumes[start:stop] = batch.volumes.astype(np.float16)
        masks[start:stop] = batch.masks
        table = pd.DataFrame(
            {
                "index": np.arange(start, stop),
                "class": names[start:stop].astype(str),
                "snr": snr_col[start:stop],
                "defocus_um": batch.defocus_um,
                "shift_x": batch.shifts[:, 0],
                "shift_y": batch.shifts[:, 1],
                "shift_z": batch.shifts[:, 2],
            }
        )
        for k, column in enumerate(ROTATION_COLUMNS):
            table[column] = batch.rotations.reshape(-1, 9)[:, k]
        table["chunk_seed"] = chunk
        rows.append(table)
    volumes.flush()
    masks.flush()
    del volumes, masks
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
    }
    (out / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    return load_dataset(out)


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
