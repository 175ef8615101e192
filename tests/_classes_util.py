"""A tiny indexed store whose particles fall into well-separated classes, for query tests.

A 112^3 tomogram (10 A voxels, molecules dark) holds a grid of particles of four shapes (ball,
cube, rod, ring) with independent noise. A tiny random CosNet embeds them; its head bias is
then set between the measured within-class and between-class L1 distances, so that the head
separates the shapes the way a trained head separates structures. The model is checkpointed and
the store is built through the public API (``Store.create`` + ``index_tomograms``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import mrcfile
import numpy as np
import pandas as pd
import torch

SHAPES = ("ball", "cube", "rod", "ring")
SIDE = 112  # tomogram side (voxels); particle centres on a 4 x 4 x 4 grid, 24 voxels apart
BOX = 32


def _shape(name: str, box: int = BOX) -> np.ndarray:
    """(box, box, box) density (1 inside) of a centred shape."""
    z, y, x = np.mgrid[:box, :box, :box] - (box - 1) / 2.0
    r = np.sqrt(x**2 + y**2 + z**2)
    if name == "ball":
        return (r < 6).astype(np.float32)
    if name == "cube":
        return ((np.abs(x) < 5) & (np.abs(y) < 5) & (np.abs(z) < 5)).astype(np.float32)
    if name == "rod":
        return ((np.sqrt(y**2 + z**2) < 2.5) & (np.abs(x) < 10)).astype(np.float32)
    if name == "ring":
        rho = np.sqrt(x**2 + y**2)
        return ((np.abs(rho - 7) < 2) & (np.abs(z) < 2)).astype(np.float32)
    raise ValueError(name)


@dataclass
class ToyCollection:
    """What the tests need to know about the toy store."""

    store_path: Path
    tomogram_path: Path
    coords_path: Path
    checkpoint: Path
    truth: pd.DataFrame  # tomogram, x, y, z, label (shape name)


def write_tomogram(folder: Path, seed: int = 0, noise: float = 0.12) -> tuple[Path, pd.DataFrame]:
    """A tomogram of four shapes and its coordinates (x, y, z voxels, label)."""
    rng = np.random.default_rng(seed)
    volume = rng.normal(0.0, noise, (SIDE, SIDE, SIDE)).astype(np.float32)  # (z, y, x)
    centres = np.arange(4) * 24 + 20
    rows = []
    for i, (cz, cy, cx) in enumerate(
        np.array(np.meshgrid(centres, centres, centres)).reshape(3, -1).T
    ):
        label = SHAPES[i % len(SHAPES)]
        h = 12
        sl = (slice(cz - h, cz + h), slice(cy - h, cy + h), slice(cx - h, cx + h))
        volume[sl] -= _shape(label, 2 * h)  # molecules dark
        rows.append(
            {"tomogram": "toy", "x": float(cx), "y": float(cy), "z": float(cz), "label": label}
        )
    path = folder / "toy.mrc"
    with mrcfile.new(path, overwrite=True) as mrc:
        mrc.set_data(volume)
        mrc.voxel_size = 10.0
    return path, pd.DataFrame(rows)


def calibrated_model(tomogram: Path, truth: pd.DataFrame, seed: int = 0):  # type: ignore[no-untyped-def]
    """A tiny CosNet whose head bias sits between within- and between-class L1 distances."""
    from cosnet_index.io import extract_boxes, open_tomogram
    from cosnet_index.model import CosNet, CosNetConfig
    from cosnet_index.query import l1_distances

    torch.manual_seed(seed)
    model = CosNet(CosNetConfig(widths=(4, 8, 8))).eval()
    with open_tomogram(tomogram) as t:
        boxes, _ = extract_boxes(t.data, truth[["x", "y", "z"]].to_numpy(), BOX)
    xb = model.embed(torch.from_numpy(boxes)).numpy()
    d = l1_distances(xb, xb)
    same = truth["label"].to_numpy()[:, None] == truth["label"].to_numpy()[None]
    off = ~np.eye(len(xb), dtype=bool)
    within, between = np.median(d[same & off]), np.median(d[~same])
    assert within < between, f"toy classes do not separate: {within} >= {between}"
    scale = 6.0 / (between - within)  # p from ~0.05 to ~0.95 between the two medians
    with torch.no_grad():
        target = model.head_scale * scale
        model.head_v.copy_(target + torch.log(-torch.expm1(-target)))  # softplus^-1, stable
        model.head_b.fill_(float((within + between) / 2 * scale))
    return model


def build_store(folder: Path, seed: int = 0) -> ToyCollection:
    """Write tomogram, coordinates, checkpoint and an indexed store under ``folder``."""
    from cosnet_index.model import save_checkpoint
    from cosnet_index.store.indexer import index_tomograms
    from cosnet_index.store.store import Store

    folder.mkdir(parents=True, exist_ok=True)
    tomogram, truth = write_tomogram(folder, seed)
    coords = folder / "coords.csv"
    truth[["tomogram", "x", "y", "z"]].to_csv(coords, index=False)
    checkpoint = folder / "toy.pt"
    save_checkpoint(calibrated_model(tomogram, truth, seed), checkpoint)
    store_path = folder / "store"
    with Store.create(store_path, model_path=checkpoint) as store:
        index_tomograms(store, [tomogram], coords, progress=False)
    return ToyCollection(store_path, tomogram, coords, checkpoint, truth)


def ids_by_label(store, truth: pd.DataFrame) -> dict[str, np.ndarray]:  # type: ignore[no-untyped-def]
    """Stored subtomogram ids of each shape (matched by position)."""
    table = store.subtomogram_table()
    merged = table.merge(truth, on=["tomogram", "x", "y", "z"], how="inner")
    assert len(merged) == len(truth)
    return {lab: np.sort(g["id"].to_numpy()) for lab, g in merged.groupby("label")}


def fresh_store_path(toy: ToyCollection, folder: Path) -> Path:
    """A private copy of the toy store (tests that add classes write to their own)."""
    import shutil

    target = folder / "store"
    shutil.copytree(toy.store_path, target)
    return target
