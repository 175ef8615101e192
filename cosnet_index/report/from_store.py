"""A report of a classify result against the store it came from (``cosnet-index report``).

Galleries need pictures of particles: the support particle of each class and its most probable
members are cut again from their tomograms (memory-mapped); optionally the decoder (+ CRF)
outlines them with the store's model.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from cosnet_index.errors import InputError
from cosnet_index.report._particles import invert_flags, read_boxes, segment_boxes
from cosnet_index.report.confusion import UNKNOWN
from cosnet_index.report.gallery import GalleryHit
from cosnet_index.report.summary import attach_truth
from cosnet_index.report.write import Gallery, write_report
from cosnet_index.store.boxes import read_indexed_boxes

if TYPE_CHECKING:
    from cosnet_index.store import Store

__all__ = ["read_truth", "report_from_store"]

logger = logging.getLogger(__name__)

_SUBTOMOGRAM = re.compile(r"^subtomogram (\d+)")
_MRC = re.compile(r"^mrc (.+)$")
_AT = re.compile(r"^(\S+) (\S+) (\S+) (\S+)$")


def read_truth(path: str | Path) -> pd.DataFrame:
    """A truth table (``tomogram, x, y, z, class``) from Parquet, CSV or a STAR file.

    STAR files use ``rlnTomoName``, ``rlnCoordinateX/Y/Z`` and a class column (``class``,
    ``rlnClassName`` or ``rlnClassNumber``).

    Raises:
        InputError: missing file, unknown format or missing columns.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"truth table {path} not found; give the simulator's truth Parquet")
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        frame = pd.read_parquet(path)
    elif suffix in (".csv", ".tsv"):
        frame = pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",")
    elif suffix == ".star":
        import starfile

        data = starfile.read(path, always_dict=True)
        frame = next(iter(data.values())) if len(data) == 1 else data.get("particles")
        if frame is None:
            raise InputError(f"{path} has no 'particles' block")
        renames = {
            "rlnTomoName": "tomogram",
            "rlnCoordinateX": "x",
            "rlnCoordinateY": "y",
            "rlnCoordinateZ": "z",
            "rlnClassName": "class",
            "rlnClassNumber": "class",
        }
        frame = frame.rename(columns={k: v for k, v in renames.items() if k in frame.columns})
    else:
        raise InputError(f"truth table {path}: use .parquet, .csv, .tsv or .star")
    missing = [c for c in ("tomogram", "x", "y", "z", "class") if c not in frame.columns]
    if missing:
        raise InputError(
            f"truth table {path} lacks the column(s) {missing}: give one row per particle with "
            "tomogram, x, y, z (voxels) and class, like the simulator's truth.parquet"
        )
    return frame


def _support_box(store: Store, source: str, box: int, voxel_a: float) -> np.ndarray | None:
    """The box of a support shot described by ``SupportClass.sources`` (None if unreadable)."""
    if match := _SUBTOMOGRAM.match(source):
        rows = store.subtomogram_table(np.array([int(match.group(1))]))
        return read_indexed_boxes(store, rows)[0]
    if match := _MRC.match(source):
        import mrcfile

        with mrcfile.open(match.group(1), permissive=True) as mrc:
            data = np.asarray(mrc.data, dtype=np.float32)
        return data if data.shape == (box, box, box) else None
    if match := _AT.match(source):
        table = store.subtomogram_table()
        tomograms = table.drop_duplicates("tomogram").set_index("tomogram")
        name = match.group(1)
        path = tomograms["tomogram_path"].get(name, name)
        xyz = [float(match.group(i)) for i in (2, 3, 4)]
        rows = pd.DataFrame({"tomogram_path": [path], "x": [xyz[0]], "y": [xyz[1]], "z": [xyz[2]]})
        if name in tomograms.index:  # an indexed tomogram: its contrast as indexed
            rows["shard"] = [tomograms.loc[name, "shard"]]
        return read_boxes(rows, box, voxel_a, invert_flags(store, rows))[0]
    return None


def _class_names(result: pd.DataFrame, meta: dict[str, Any]) -> list[str]:
    if meta.get("classes"):
        return [str(c) for c in meta["classes"]]
    from_columns = [c[2:] for c in result.columns if str(c).startswith("p_")]
    return from_columns or sorted(set(result["class"].astype(str)) - {UNKNOWN})


def report_from_store(
    store: Store,
    result: pd.DataFrame,
    out_dir: str | Path,
    *,
    meta: dict[str, Any] | None = None,
    truth: pd.DataFrame | None = None,
    top_k: int = 6,
    gallery_classes: Sequence[str] | None = None,
    masks: bool = True,
    crf: bool = True,
) -> Path:
    """Write the report of a classify result of ``store`` (see :func:`write_report`).

    Args:
        store: the open store the result came from.
        result: the classification table (``cosnet-index classify --out``).
        out_dir: the report folder.
        meta: the result's provenance (classes, min_prob, set).
        truth: a truth table for accuracy and the confusion matrix.
        top_k: hits per gallery: the most probable subtomograms predicted as the class (the
            support particles are left out of the galleries and of the accuracy).
        gallery_classes: classes to draw (default: all of the result's classes).
        masks: outline the hits with the model's decoder (+ ``crf``).

    Raises:
        InputError, ClassError, StoreError: an unusable result or store.
    """
    from cosnet_index.classes import get_classes
    from cosnet_index.query import check_same_model

    meta = meta or {}
    check_same_model(meta, store.model_hash)
    classes = _class_names(result, meta)
    model = store.model()
    box = int(model.config.box)
    voxel_a = float(model.config.voxel_size_nm) * 10.0
    support_classes = get_classes(store, set_name=meta.get("set") or "default")
    support = {c.name: c for c in support_classes}
    if "is_support" not in result.columns:  # a table from before the column: mark them here
        from cosnet_index.query import mark_support

        result = mark_support(result, support_classes)
    galleries = []
    for name in gallery_classes or classes:
        members = result[(result["class"].astype(str) == name) & ~result["is_support"].astype(bool)]
        members = members.sort_values("probability", ascending=False).head(top_k)
        if name not in support or members.empty:
            logger.info("no gallery for %s (no support class in the store or no member)", name)
            continue
        support_box = _support_box(store, support[name].sources[0], box, voxel_a)
        if support_box is None:
            continue
        rows = store.subtomogram_table(members["subtomogram_id"].to_numpy(np.int64))
        boxes = read_indexed_boxes(store, rows)
        hit_masks = (
            segment_boxes(model, boxes, crf=crf, model_hash=store.model_hash)[1] if masks else None
        )
        true_classes: list[str | None] = [None] * len(members)
        if truth is not None:
            true_classes = attach_truth(members.reset_index(drop=True), truth).tolist()
        hits = []
        for i, row in enumerate(members.itertuples(index=False)):
            true = true_classes[i]
            hits.append(
                GalleryHit(
                    boxes[i],
                    None if hit_masks is None else hit_masks[i],
                    float(row.probability),
                    f"id {row.subtomogram_id}" + (f"\ntrue: {true}" if true else ""),
                    None if true is None else true == name,
                )
            )
        galleries.append(Gallery(name, support_box, hits))
    return write_report(
        out_dir,
        result,
        classes=classes,
        truth=truth,
        galleries=galleries,
        min_prob=meta.get("min_prob"),
        notes=[f"Store `{store.path}`, model `{store.model_hash[:12]}`."],
    )
