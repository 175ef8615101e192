"""Segment matched hits: re-extract each box, decoder -> probability -> CRF -> mask -> files.

For every hit (a stored subtomogram id), the box is cut again from its tomogram (memory-mapped,
only the box's voxels are read) exactly as it was indexed (same resampling, contrast and edge
padding), the store's model decodes it to a probability mask, the dense CRF refines it (unless
disabled), the mask is the most probable voxels up to the hit's volume prior (its class's volume
by default, ``prior.py``) or ``p > 0.5`` without one, and it is written (one MRC per hit, or one
label volume per tomogram) together with a Parquet of per-hit statistics (:data:`SEGMENT_COLUMNS`).
"""

from __future__ import annotations

import functools
import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch

from cosnet_index.defaults import DEFAULT_SET
from cosnet_index.errors import InputError, MrcError
from cosnet_index.files import atomic_write
from cosnet_index.geometry import box_bounds, source_box_side, volume_nm3_to_voxels
from cosnet_index.segment.crf import crf_refine
from cosnet_index.segment.params import CRFParams
from cosnet_index.segment.prior import (
    PRIOR_COLUMNS,
    estimate_priors,
    hit_priors,
    prior_report,
    resolve_priors,
)
from cosnet_index.segment.stats import STAT_COLUMNS, mask_statistics
from cosnet_index.segment.volume import centre_component_voxels, volume_prior_masks
from cosnet_index.segment.write import LabelVolume, header_origin, write_hit_mask

if TYPE_CHECKING:
    from cosnet_index.store import Store
    from cosnet_index.store.class_catalog import ClassVolume

__all__ = ["SEGMENT_COLUMNS", "SegmentSummary", "segment_boxes", "segment_hits"]

log = logging.getLogger(__name__)

SEGMENT_COLUMNS = (
    "label",
    "subtomogram_id",
    "tomogram",
    "x",
    "y",
    "z",
    "class",
    "probability",
    *STAT_COLUMNS,
    "prior_voxels",
    *PRIOR_COLUMNS,
    "mask_path",
)


@dataclass
class SegmentSummary:
    """What :func:`segment_hits` did."""

    table: pd.DataFrame
    stats_path: Path
    mask_paths: list[Path] = field(default_factory=list)
    seconds: float = 0.0
    crf: bool = True

    @property
    def hits_per_second(self) -> float:
        return len(self.table) / self.seconds if self.seconds > 0 else float("nan")


def segment_boxes(
    model: Any,
    boxes: torch.Tensor,
    crf_params: CRFParams | None,
    *,
    out_side: int | None = None,
    device: str | torch.device = "cpu",
    n_inside: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Masks and decoder probabilities of raw boxes ``(n, B, B, B)``: decoder, then CRF (if given).

    With ``out_side`` (tomogram voxels per box side when the tomogram was resampled to the
    model's voxel size), probabilities are trilinearly resampled to ``out_side^3`` before
    thresholding, so that masks are in the tomogram's sampling. With ``n_inside`` (voxels per
    box in that sampling, from the molecule's mass; 0 for none), a box's mask is its
    ``n_inside`` most probable voxels instead
    (:func:`~cosnet_index.segment.volume.volume_prior_masks`).

    Returns:
        ``(masks bool, decoder probability float32)``, each ``(n, s, s, s)`` numpy arrays; the
        mask is the CRF marginal (or the decoder probability without CRF) above 0.5.
    """
    masks, prob, _ = _segment_boxes(
        model, boxes, crf_params, out_side=out_side, device=device, n_inside=n_inside
    )
    return masks, prob


def _segment_boxes(
    model: Any,
    boxes: torch.Tensor,
    crf_params: CRFParams | None,
    *,
    out_side: int | None,
    device: str | torch.device,
    n_inside: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`segment_boxes` plus the thresholded marginal (CRF ``Q_1`` or decoder ``p``)."""
    boxes = boxes.to(device)
    prob = model.decode(boxes).to(device)  # (n, B, B, B)
    refined = crf_refine(prob, boxes, crf_params) if crf_params is not None else prob
    if out_side is not None and out_side != prob.shape[-1]:
        both = torch.stack([prob, refined], dim=1)  # (n, 2, B, B, B)
        both = torch.nn.functional.interpolate(
            both, size=(out_side,) * 3, mode="trilinear", align_corners=False
        )
        prob, refined = both[:, 0], both[:, 1]
    refined = refined.float().cpu().numpy()
    if n_inside is not None and np.any(n_inside > 0):
        masks = volume_prior_masks(refined, n_inside)
    else:
        masks = refined > 0.5
    return masks, prob.float().cpu().numpy(), refined


def _hit_frame(hits: pd.DataFrame) -> pd.DataFrame:
    if "subtomogram_id" not in hits.columns:
        raise InputError(
            "the hits table has no subtomogram_id column; use a table written by "
            "`cosnet-index search` or `classify`"
        )
    frame = pd.DataFrame({"subtomogram_id": hits["subtomogram_id"].astype(np.int64)})
    frame["class"] = hits["class"].astype(str) if "class" in hits.columns else ""
    frame["probability"] = (
        hits["probability"].astype(np.float64) if "probability" in hits.columns else np.nan
    )
    if frame["subtomogram_id"].duplicated().any():
        frame = frame.drop_duplicates("subtomogram_id").reset_index(drop=True)
        log.warning("duplicate subtomogram ids in the hits table: each is segmented once")
    return frame


def segment_hits(
    store: Store,
    hits: pd.DataFrame,
    out_dir: str | os.PathLike,
    *,
    crf_params: CRFParams | None,
    merge: bool = False,
    batch_size: int = 64,
    device: str | torch.device | None = None,
    overwrite: bool = False,
    progress: Callable[[int], None] | None = None,
    masses_kda: Mapping[str | None, float] | None = None,
    set_name: str = DEFAULT_SET,
    class_prior: bool = True,
    estimate_volume: bool = False,
) -> SegmentSummary:
    """Segment every hit of ``hits`` (a search/classify table) and write masks + statistics.

    Args:
        store: an open :class:`~cosnet_index.store.Store`.
        hits: a table with ``subtomogram_id`` (and optionally ``class``, ``probability``).
        out_dir: folder for ``segments.parquet`` and ``masks/`` (or ``labels/`` with ``merge``).
        crf_params: the CRF's parameters, or None for the decoder's mask alone.
        merge: one label volume per tomogram instead of one MRC per hit.
        batch_size: boxes per decoder + CRF batch.
        device: torch device (default: CUDA when present).
        overwrite: replace existing output files.
        progress: called with the number of hits done after each batch.
        masses_kda: molecular mass per class name (key ``None``: every other hit); overrides
            the class's volume. A hit with a volume prior gets the ``volume`` most probable
            voxels as its mask (:mod:`cosnet_index.segment.volume`); the others ``p > 0.5``.
        set_name: the class set whose classes' recorded volumes are the default priors.
        class_prior: use the classes' recorded volumes (``--no-prior``: False).
        estimate_volume: estimate the volume of a class that has none from its most probable
            hits (:mod:`cosnet_index.segment.prior`; decodes up to 32 more boxes per class).

    Which masks used a prior, and which volume, is logged and recorded per hit
    (``volume_from``, ``prior_source``, ``prior_volume_nm3``).

    Raises:
        InputError: a hits table without ``subtomogram_id``; existing outputs.
        StoreError: ids unknown to the store.
        MrcError: a tomogram moved, or its header changed since indexing.
    """
    from cosnet_index.io import open_tomogram
    from cosnet_index.store.boxes import read_indexed_boxes

    t0 = time.perf_counter()
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    out = Path(out_dir)
    stats_path = out / "segments.parquet"
    if stats_path.exists() and not overwrite:
        raise InputError(f"{stats_path} already exists; choose another --out or pass --overwrite")
    frame = _hit_frame(hits)
    catalog = store.subtomogram_table(frame["subtomogram_id"].to_numpy())
    frame = frame.merge(
        catalog.rename(columns={"id": "subtomogram_id"}), on="subtomogram_id", how="left"
    )
    frame["label"] = np.arange(1, len(frame) + 1, dtype=np.int64)
    headers = store.header_checksums(sorted(frame["tomogram"].unique()))
    model = store.model().to(device)
    box = int(model.config.box)
    model_voxel_angstrom = float(model.config.voxel_size_nm) * 10.0
    volumes: dict[str, ClassVolume] = {}
    if class_prior:
        volumes = {c.name: c.volume for c in store.list_classes(set_name) if c.volume is not None}
    priors = resolve_priors(
        frame["class"],
        class_volumes=volumes,
        masses_kda=masses_kda or {},
        box_side_nm=box * float(model.config.voxel_size_nm),
    )
    if estimate_volume:
        decode = functools.partial(
            _component_volumes_nm3, store, model, crf_params, batch_size, device
        )
        priors.update(estimate_priors(frame, set(frame["class"]) - set(priors), decode))
    frame = frame.join(hit_priors(frame["class"], priors))
    (out / ("labels" if merge else "masks")).mkdir(parents=True, exist_ok=True)

    columns: dict[str, list] = {name: [] for name in (*STAT_COLUMNS, "prior_voxels", "mask_path")}
    order: list[np.ndarray] = []
    mask_paths: list[Path] = []
    done = 0
    for tomo_name, rows in frame.groupby("tomogram", sort=False):
        first = rows.iloc[0]
        voxel_angstrom = float(first["voxel_size_angstrom"])
        source_box = source_box_side(box, voxel_angstrom, model_voxel_angstrom)  # as indexed
        xyz = rows[["x", "y", "z"]].to_numpy(np.float64)
        start_zyx, _ = box_bounds(xyz, source_box)
        with open_tomogram(first["tomogram_path"], voxel_size_angstrom=voxel_angstrom) as tomo:
            origin_xyz = header_origin(tomo.path)
            if tomo.header_sha256 != headers.get(tomo_name, tomo.header_sha256):
                raise MrcError(
                    f"{tomo.path} changed since tomogram {tomo_name!r} was indexed (its header "
                    "differs): restore the file, or index it again into a new store"
                )
            labels = (
                LabelVolume(
                    out / "labels" / f"{tomo_name}.mrc",
                    tomo.shape_zyx,
                    voxel_size_angstrom=voxel_angstrom,
                    n_labels=int(frame["label"].max()),
                    origin_xyz=origin_xyz,
                    overwrite=overwrite,
                )
                if merge
                else None
            )
            try:
                for s in range(0, len(rows), batch_size):
                    part = rows.iloc[s : s + batch_size]
                    boxes = read_indexed_boxes(store, part)
                    n_inside = _prior_voxels(part, voxel_angstrom)
                    masks, prob, marginal = _segment_boxes(
                        model,
                        torch.from_numpy(boxes),
                        crf_params,
                        out_side=source_box,
                        device=device,
                        n_inside=n_inside,
                    )
                    columns["prior_voxels"].extend(n_inside.tolist())
                    starts = start_zyx[s : s + batch_size]
                    stats = mask_statistics(masks, prob, starts, voxel_angstrom)
                    for name in STAT_COLUMNS:
                        columns[name].extend(stats[name].tolist())
                    for i, (_, hit) in enumerate(part.iterrows()):
                        if labels is not None:
                            labels.place(masks[i], marginal[i], starts[i], int(hit["label"]))
                            columns["mask_path"].append(f"labels/{tomo_name}.mrc")
                        else:
                            rel = f"masks/{int(hit['subtomogram_id'])}.mrc"
                            mask_paths.append(
                                write_hit_mask(
                                    out / rel,
                                    masks[i],
                                    voxel_size_angstrom=voxel_angstrom,
                                    start_zyx=starts[i],
                                    origin_xyz=origin_xyz,
                                    overwrite=overwrite,
                                )
                            )
                            columns["mask_path"].append(rel)
                    order.append(part.index.to_numpy())
                    done += len(part)
                    if progress is not None:
                        progress(done)
            except BaseException:
                if labels is not None:
                    labels.close(keep=False)
                raise
            if labels is not None:
                labels.close()
                mask_paths.append(labels.path)

    index = np.concatenate(order) if order else np.zeros(0, dtype=np.int64)
    stats_frame = pd.DataFrame(columns, index=index)
    table = frame.join(stats_frame)[list(SEGMENT_COLUMNS)].sort_values("label")
    table = table.reset_index(drop=True)
    _write_parquet(table, stats_path)
    seconds = time.perf_counter() - t0
    log.info("segmented %d hits in %.1f s", len(table), seconds)
    for line in prior_report(table):
        log.info(line)
    return SegmentSummary(
        table=table,
        stats_path=stats_path,
        mask_paths=mask_paths,
        seconds=seconds,
        crf=crf_params is not None,
    )


def _component_volumes_nm3(
    store: Store,
    model: Any,
    crf_params: CRFParams | None,
    batch_size: int,
    device: str | torch.device,
    rows: pd.DataFrame,
) -> np.ndarray:
    """``(n,)`` nm^3 of each row's ``p > 0.5`` (or ``Q_1``) component nearest the box centre,
    at the model's voxel size (``--estimate-volume``)."""
    from cosnet_index.store.boxes import read_indexed_boxes

    voxels = []
    for s in range(0, len(rows), batch_size):
        boxes = torch.from_numpy(read_indexed_boxes(store, rows.iloc[s : s + batch_size]))
        _, _, marginal = _segment_boxes(model, boxes, crf_params, out_side=None, device=device)
        voxels.append(centre_component_voxels(marginal))
    return np.concatenate(voxels) * float(model.config.voxel_size_nm) ** 3


def _prior_voxels(hits: pd.DataFrame, voxel_angstrom: float) -> np.ndarray:
    """Voxels of each hit's prior volume at ``voxel_angstrom`` (0: no prior, or one not used)."""
    used = hits["volume_from"].isin(("prior", "estimate")).to_numpy()
    volumes = hits["prior_volume_nm3"].to_numpy(np.float64)
    voxels = [
        volume_nm3_to_voxels(v, voxel_angstrom) if u else 0
        for u, v in zip(used, volumes, strict=True)
    ]
    return np.array(voxels, dtype=np.int64)


def _write_parquet(table: pd.DataFrame, path: Path) -> None:
    """Write atomically (``cosnet_index.files.atomic_write``)."""
    with atomic_write(path) as tmp:
        table.to_parquet(tmp, index=False)
