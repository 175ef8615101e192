"""The demo's stages, each a small function over the public APIs of the other modules.

``cosnet_index.demo.run_demo`` composes them with timing; nothing here prints.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from cosnet_index.errors import InputError
from cosnet_index.report import Gallery, GalleryHit, attach_truth
from cosnet_index.report._particles import read_boxes, segment_boxes

if TYPE_CHECKING:
    from cosnet_index.store import Store

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Collection:
    """A simulated tomogram collection on disk and its truth."""

    tomograms: tuple[Path, ...]  # MRC files
    coordinates: Path  # RELION-style STAR file of every particle
    truth: pd.DataFrame  # tomogram, x, y, z, class, ... (one row per molecule)
    source: Any = None  # the simulator's own result object (truth masks etc.)


# -- stage: simulate -----------------------------------------------------------------------------


def simulate_collection(
    out_dir: Path,
    *,
    classes: Sequence[str],
    n_tomograms: int,
    shape_zyx: tuple[int, int, int],
    n_particles: int,
    snr: float,
    seed: int,
) -> Collection:
    """Simulate ``n_tomograms`` tomograms with about ``n_particles`` molecules in all (uniform
    over ``classes``), written under ``out_dir`` as MRC + ``particles.star`` + ``truth.parquet``
    + label volumes (``<name>_labels.mrc``: particle row + 1 inside each mask)."""
    from cosnet_index.simulate.tomogram import simulate_collection as simulate

    per_tomogram = -(-n_particles // n_tomograms)
    truth = simulate(
        out_dir,
        n_tomograms,
        list(classes),
        per_tomogram,
        snr,
        seed,
        shape=shape_zyx,
        write_labels=True,
    )
    truth = truth.copy()
    truth["label"] = truth.groupby("tomogram", sort=False).cumcount().to_numpy() + 1
    names = list(dict.fromkeys(truth["tomogram"].astype(str)))
    return Collection(
        tomograms=tuple(out_dir / f"{name}.mrc" for name in names),
        coordinates=out_dir / "particles.star",
        truth=truth,
        source=out_dir,
    )


# -- stage: pick supports ------------------------------------------------------------------------


def indexed_truth(store: Store, truth: pd.DataFrame) -> pd.DataFrame:
    """The store's subtomogram table with each particle's true class (``true_class``)."""
    table = store.subtomogram_table()
    table["true_class"] = attach_truth(table, truth)
    return table


def pick_supports(indexed: pd.DataFrame, classes: Sequence[str], seed: int) -> dict[str, int]:
    """One random indexed subtomogram id of each class, as a user would pick one by eye.

    Raises:
        InputError: a class with no indexed particle (make the collection larger).
    """
    rng = np.random.default_rng(seed)
    picks: dict[str, int] = {}
    for name in classes:
        ids = np.sort(indexed.loc[indexed["true_class"] == name, "id"].to_numpy(dtype=np.int64))
        if len(ids) == 0:
            raise InputError(
                f"no indexed particle of class {name!r} to use as its support: "
                "simulate more particles (--particles) or larger tomograms (--shape)"
            )
        picks[name] = int(ids[rng.integers(len(ids))])
    return picks


__all__ = [
    "Collection",
    "dice_scores",
    "galleries_of",
    "indexed_truth",
    "pick_supports",
    "read_boxes",
    "segment_boxes",
    "simulate_collection",
    "truth_masks",
]


# -- stage: segment ------------------------------------------------------------------------------


def dice_scores(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Dice per box of two ``(n, ...)`` boolean mask stacks."""
    from cosnet_index.segment.dice import dice

    return dice(pred.astype(bool), truth.astype(bool)).numpy()


# -- stage: report -------------------------------------------------------------------------------


def galleries_of(
    supports: dict[str, np.ndarray],
    hits: dict[str, pd.DataFrame],
    hit_boxes: dict[str, np.ndarray],
    hit_masks: dict[str, np.ndarray | None],
) -> list[Gallery]:
    """Gallery inputs: per searched class, its support box and its hits (best first)."""
    galleries = []
    for name, table in hits.items():
        masks = hit_masks.get(name)
        items = []
        for i, row in enumerate(table.itertuples(index=False)):
            truth = getattr(row, "true_class", None)
            label = f"id {row.subtomogram_id}" + (f"\ntrue: {truth}" if truth else "")
            mask = None if masks is None else masks[i]
            correct = None if not truth else truth == name
            items.append(
                GalleryHit(hit_boxes[name][i], mask, float(row.probability), label, correct)
            )
        galleries.append(Gallery(name, supports[name], items))
    return galleries


def truth_masks(collection: Collection, hits: pd.DataFrame, box: int) -> np.ndarray:
    """The simulator's truth masks ``(n, box, box, box)`` of the molecules at the hits.

    Each hit is matched to the nearest simulated molecule of its tomogram; its mask is that
    molecule's voxels in the tomogram's label volume, cut at the hit's box.
    """
    from scipy.spatial import cKDTree

    from cosnet_index.io.boxes import extract_boxes
    from cosnet_index.io.mrc import open_tomogram

    out = np.zeros((len(hits), box, box, box), dtype=bool)
    positions = np.arange(len(hits))
    truth = collection.truth
    for name, part in hits.assign(_pos=positions).groupby("tomogram", sort=False):
        reference = truth[truth["tomogram"].astype(str) == str(name)]
        if reference.empty:
            continue
        xyz = part[["x", "y", "z"]].to_numpy(np.float64)
        _, nearest = cKDTree(reference[["x", "y", "z"]].to_numpy(np.float64)).query(xyz)
        labels = reference["label"].to_numpy()[nearest]
        with open_tomogram(Path(collection.source) / f"{name}_labels.mrc") as volume:
            boxes, _ = extract_boxes(volume.data, xyz, box, edge="pad")
        out[part["_pos"].to_numpy()] = np.rint(boxes) == labels[:, None, None, None]
    return out
