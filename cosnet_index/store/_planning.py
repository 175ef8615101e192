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

MIN_COORDINATES_FOR_ZERO_BOX = 8
"""A tomogram with at least this many coordinates none of which gives a whole box is an error
(a wrong voxel size), not an empty part."""


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
    store: Store, inputs: _Inputs, *, edge: str, replace: frozenset[str] = frozenset()
) -> tuple[list[_Job], dict[str, str], int]:
    """Validate and plan every tomogram of the checked ``inputs`` (no writes).

    ``replace``: names of stored tomograms planned as new ones (``index --replace`` removes
    them before the jobs run); the others must be indexed with the settings they were.

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
    groups = coordinates.groupby("tomogram", sort=False).indices
    extra_columns = [c for c in coordinates.columns if c not in ("tomogram", "x", "y", "z")]
    jobs, skipped, stored_done = [], {}, 0
    for tomogram in tomograms:
        record = known.get(tomogram.name)
        if record is not None and tomogram.name in replace:
            record = None  # removed before the jobs run (index --replace)
        if record is not None and record.header_sha256 != tomogram.header_sha256:
            raise StoreError(
                f"the store already holds a tomogram named {tomogram.name!r} from another file "
                f"({record.path}); rename one of them (names must be unique in a store)"
            )
        if record is not None:
            _check_same_settings(store, tomogram, coordinates, inputs.invert_contrast, edge)
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
        if not plan.keep.any() and (
            source_box > min(tomogram.shape_zyx) or len(rows) >= MIN_COORDINATES_FOR_ZERO_BOX
        ):
            # no coordinate could ever give a whole box, or none of many did: the voxel size is
            # wrong, not the picks (a tomogram whose few picks all sit at an edge is committed
            # empty, as before)
            raise CoordinateError(
                f"none of the {len(rows)} coordinates of tomogram {tomogram.name!r} leaves a whole "
                f"box (skipped: {plan.skipped()}): at {tomogram.voxel_size_angstrom:g} A voxels a "
                f"box of the model's {box} voxels of {model_voxel_angstrom:g} A reads "
                f"{source_box}^3 voxels of a {tomogram.shape_zyx[::-1]} (x, y, z) tomogram. Is the "
                "voxel size right? Index it again with the right one: `cosnet-index index "
                "--voxel-size ANGSTROM ...` (with --replace when the store holds it at another "
                "voxel size), or --edge pad to keep boxes that cross the edge; nothing was stored"
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


def _check_same_settings(
    store: Store, tomogram: TomogramInfo, coordinates: pd.DataFrame, invert: bool, edge: str
) -> None:
    """Refuse to add vectors made with other settings next to a tomogram's stored ones.

    Voxel size, contrast, box rule and picking method (or coordinates) must be the ones the
    tomogram was indexed with: vectors of both would mix in every query.

    Raises:
        StoreError: naming the setting, and ``--replace`` to re-index from scratch.
    """
    from cosnet_index.store._settings import tomogram_settings

    stored = tomogram_settings(store, tomogram.name)
    if stored is None:
        return
    rows = coordinates.loc[coordinates["tomogram"] == tomogram.name]
    method = None
    if "pick_method" in rows.columns and len(rows):
        method = str(rows["pick_method"].iloc[0])
    voxel = tomogram.voxel_size_angstrom
    differences = []
    if abs(stored.voxel_size_angstrom - voxel) > 1e-6 * stored.voxel_size_angstrom:
        differences.append(
            f"at {stored.voxel_size_angstrom:g} A voxels, not {voxel:g} (--voxel-size)"
        )
    if stored.invert_contrast != invert:
        was = "with" if stored.invert_contrast else "without"
        differences.append(f"{was} --invert-contrast")
    if stored.edge != edge:
        differences.append(f"with --edge {stored.edge}, not {edge}")
    if stored.pick_method != method:

        def how(m: str | None) -> str:
            return "from coordinates (--coords)" if m is None else f"with --pick {m}"

        differences.append(f"{how(stored.pick_method)}, not {how(method)}")
    if not differences:
        return
    raise StoreError(
        f"tomogram {tomogram.name!r} was indexed {'; '.join(differences)}; vectors made both ways "
        "would mix in every query. Index it with the same settings as before, or re-index it "
        f"from scratch with the new ones: `cosnet-index index --replace ... {tomogram.name}` "
        "(nothing was written)"
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
