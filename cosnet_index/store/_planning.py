"""Indexing, step 1: validate and plan every tomogram before the store is touched.

A :class:`_Job` is one tomogram's work: the fresh positions (stored ones dropped by their
position keys), the side read from the tomogram (``source_box_side``), its coordinate rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from sqlalchemy import select

from cosnet_index.errors import CoordinateError, StoreError
from cosnet_index.geometry import RESAMPLE_TOLERANCE, position_keys, source_box_side
from cosnet_index.io import (
    TomogramInfo,
    check_finite,
    plan_boxes,
)
from cosnet_index.store._inputs import _Inputs
from cosnet_index.store.shards import ShardWriter
from cosnet_index.store.store import Store
from cosnet_index.store.tables import ShardRecord, Subtomogram, TomogramRecord


@dataclass
class _Job:
    tomogram: TomogramInfo  # reopened by the reader thread: few files open at a time
    xyz: np.ndarray  # (n, 3) kept coordinates, sorted by z, y, x
    coordinate_row: np.ndarray  # (n,)
    extra: pa.Table | None
    source_box: int
    skipped: dict[str, int]
    resampled_from: float | None
    new_tomogram: bool = True  # no part of it is stored yet (its skip counts go on its 1st part)
    stored_already: int = 0
    convention: dict[str, Any] = field(default_factory=dict)
    part_start: int = 0  # first row of xyz in the open part
    part_ids: list[np.ndarray] = field(default_factory=list)
    parts: int = 0
    writer: ShardWriter | None = None


def _extra_table(frame: pd.DataFrame) -> pa.Table | None:
    if frame.shape[1] == 0:
        return None
    frame = frame.copy()
    frame.columns = [str(c) for c in frame.columns]
    columns = {}
    for name in frame.columns:
        try:
            columns[name] = pa.array(frame[name], from_pandas=True)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            columns[name] = pa.array(frame[name].astype(str))
    return pa.table(columns)


def _plan_jobs(
    store: Store, inputs: _Inputs, *, edge: str
) -> tuple[list[_Job], dict[str, str], int]:
    """Validate and plan every tomogram of the checked ``inputs`` (no writes).

    Returns:
        ``(jobs, skipped tomograms, coordinates of skipped tomograms already stored)``.
    """
    tomograms, coordinates = inputs.tomograms, inputs.coordinates
    box, model_voxel_angstrom = inputs.box, inputs.model_voxel_angstrom
    source, conventions = inputs.source, inputs.conventions
    model_id = store._model_id(store.model_hash)[0]
    with store.session() as session:
        known = {r.name: r for r in session.scalars(select(TomogramRecord)).all()}
        with_parts = set(
            session.scalars(
                select(ShardRecord.tomogram_id).where(ShardRecord.model_id == model_id)
            ).all()
        )
        contrast: dict[int, set[bool]] = {}
        for tomogram_id, invert in session.execute(
            select(ShardRecord.tomogram_id, ShardRecord.invert_contrast).distinct()
        ).all():
            contrast.setdefault(tomogram_id, set()).add(bool(invert))
    groups = coordinates.groupby("tomogram", sort=False).indices
    extra_columns = [c for c in coordinates.columns if c not in ("tomogram", "x", "y", "z")]
    jobs, skipped, stored_done = [], {}, 0
    for tomogram in tomograms:
        record = known.get(tomogram.name)
        if record is not None and record.header_sha256 != tomogram.header_sha256:
            raise StoreError(
                f"the store already holds a tomogram named {tomogram.name!r} from another file "
                f"({record.path}); rename one of them (names must be unique in a store)"
            )
        if record is not None and abs(record.voxel_size_angstrom - tomogram.voxel_size_angstrom) > (
            1e-6 * record.voxel_size_angstrom
        ):
            raise StoreError(
                f"tomogram {tomogram.name!r} was indexed at {record.voxel_size_angstrom} A voxels, "
                f"not {tomogram.voxel_size_angstrom}; use the same --voxel-size as before"
            )
        if record is not None:
            _check_same_contrast(tomogram.name, contrast.get(record.id, set()), inputs)
        rows = groups.get(tomogram.name)
        if rows is None or len(rows) == 0:
            skipped[tomogram.name] = f"no coordinates in {source}"
            continue
        xyz = coordinates[["x", "y", "z"]].to_numpy(dtype=np.float64)[rows]
        resampled_from = None
        source_box = source_box_side(box, tomogram.voxel_size_angstrom, model_voxel_angstrom)
        if abs(tomogram.voxel_size_angstrom / model_voxel_angstrom - 1.0) > RESAMPLE_TOLERANCE:
            resampled_from = tomogram.voxel_size_angstrom
        plan = plan_boxes(tomogram.shape_zyx, xyz, source_box, edge)
        if not plan.keep.any() and set(plan.skipped()) == {"outside"}:
            raise CoordinateError(
                f"all {len(rows)} coordinates of tomogram {tomogram.name!r} lie outside its volume "
                f"(x, y, z up to {tomogram.shape_zyx[::-1]} voxels); are they in voxels of this "
                "tomogram (not angstrom, not another binning)?"
            )
        if not plan.keep.any() and source_box > min(tomogram.shape_zyx):
            # no coordinate could ever give a whole box: the voxel size is wrong, not the picks
            # (a tomogram whose few picks all sit at an edge is committed empty, as before)
            raise CoordinateError(
                f"none of the {len(rows)} coordinates of tomogram {tomogram.name!r} leaves a whole "
                f"box (skipped: {plan.skipped()}): at {tomogram.voxel_size_angstrom:g} A voxels a "
                f"box of the model's {box} voxels of {model_voxel_angstrom:g} A reads "
                f"{source_box}^3 voxels of a {tomogram.shape_zyx[::-1]} (x, y, z) tomogram. Is the "
                "voxel size right? Give the right one with --voxel-size ANGSTROM (or --edge pad to "
                "keep boxes that cross the edge); nothing was stored"
            )
        with tomogram.open() as opened:
            check_finite(opened)
        kept = rows[plan.keep]
        order = np.lexsort(xyz[plan.keep].T)  # last key first: by z, then y, then x (mmap)
        kept = kept[order]
        # identity: (tomogram, model, position to 0.01 voxel); stored or repeated ones are dropped
        keys = position_keys(coordinates[["x", "y", "z"]].to_numpy(dtype=np.float64)[kept])
        _, first = np.unique(keys, return_index=True)
        fresh = np.zeros(len(kept), bool)
        fresh[first] = True
        stored = 0
        new_tomogram = record is None or record.id not in with_parts
        if not new_tomogram:
            existing = position_keys(_stored_positions(store, record.id, model_id))
            fresh &= ~np.isin(keys, existing)
            stored = int(len(kept) - fresh.sum())
            if not fresh.any():
                stored_done += stored
                skipped[tomogram.name] = (
                    f"already indexed with this model ({stored} of its coordinates stored, "
                    "none new)"
                )
                continue
        kept = kept[fresh]
        extra = _extra_table(coordinates.iloc[kept][extra_columns].reset_index(drop=True))
        jobs.append(
            _Job(
                tomogram=tomogram,
                xyz=coordinates[["x", "y", "z"]].to_numpy(dtype=np.float64)[kept],
                coordinate_row=coordinates.index.to_numpy(dtype=np.int64)[kept],  # the file's rows
                extra=extra,
                source_box=source_box,
                skipped=plan.skipped(),
                resampled_from=resampled_from,
                new_tomogram=new_tomogram,
                stored_already=stored,
                convention=(conventions or {}).get(tomogram.name, {}),
            )
        )
    return jobs, skipped, stored_done


def _check_same_contrast(name: str, stored: set[bool], inputs: _Inputs) -> None:
    """Refuse to add vectors of the other contrast next to a tomogram's stored ones.

    Raises:
        StoreError: with the setting to use.
    """
    if not stored or stored == {inputs.invert_contrast}:
        return
    was = "with" if True in stored else "without"
    raise StoreError(
        f"tomogram {name!r} was indexed {was} --invert-contrast; vectors of both contrasts would "
        f"mix in every query: index it again {was} --invert-contrast as before"
    )


def _stored_positions(store: Store, tomogram_id: int, model_id: int) -> np.ndarray:
    """``(n, 3)`` x, y, z of the particles stored for a tomogram and model."""
    with store.session() as session:
        rows = session.execute(
            select(Subtomogram.x, Subtomogram.y, Subtomogram.z).where(
                Subtomogram.tomogram_id == tomogram_id, Subtomogram.model_id == model_id
            )
        ).all()
    return np.asarray(rows, dtype=np.float64).reshape(-1, 3)
