"""``tomograms list | remove | rename``: a store's tomograms are managed, not only added.

Removal is one catalog transaction (the tomogram's subtomogram, shard and tomogram rows, and
with ``force`` the support shots cut from its particles) under the writer lock; what is derived
follows it: the vectors leave every model's FAISS index (replaced atomically) and the shard parts
are deleted. A kill after the transaction leaves only derived files behind, which the next
writer repairs: :func:`remove_partial_files` deletes shards the catalog lacks, and an index
holding ids the catalog lacks is rebuilt from the shards (``cpu_index``) and persisted; this
module's own functions start with that repair. ``tests/test_tomograms.py`` and the crash
harness (``tests/_crash_util.py``, command ``tomograms-remove``) check both.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import delete, func, select

from cosnet_index.errors import StoreError
from cosnet_index.store._committing import remove_partial_files
from cosnet_index.store._settings import TomogramSettings, tomogram_settings
from cosnet_index.store.store import Store
from cosnet_index.store.tables import (
    ClassRecord,
    ClassSetRecord,
    ModelRecord,
    ShardRecord,
    Subtomogram,
    SupportVectorRecord,
    TomogramRecord,
)

__all__ = [
    "RemovalSummary",
    "TomogramSettings",
    "list_tomograms",
    "remove_tomograms",
    "rename_tomogram",
    "tomogram_settings",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RemovalSummary:
    """What :func:`remove_tomograms` did.

    Attributes:
        tomograms: the names removed.
        subtomograms: catalog rows (and vectors) removed.
        shards: shard parts deleted.
        shots_lost: ``set/class`` -> support shots removed with the particles they came from.
        classes_deleted: ``set/class`` of classes left without any shot (deleted).
    """

    tomograms: tuple[str, ...]
    subtomograms: int = 0
    shards: int = 0
    shots_lost: dict[str, int] = field(default_factory=dict)
    classes_deleted: tuple[str, ...] = ()

    def lines(self) -> list[str]:
        """A human-readable summary, one fact per line."""
        out = [
            f"removed {len(self.tomograms)} tomograms ({', '.join(self.tomograms)}): "
            f"{self.subtomograms} subtomograms, {self.shards} shard parts"
        ]
        for name, shots in sorted(self.shots_lost.items()):
            gone = " (no shot left: class deleted)" if name in self.classes_deleted else ""
            out.append(f"class {name} lost {shots} shots{gone}")
        return out


def list_tomograms(store: Store) -> list[dict[str, Any]]:
    """One dict per tomogram, by name: ``name, path, voxel_size_angstrom, shape_zyx,
    subtomograms, parts, invert_contrast, edge, pick_method``."""
    with store.session() as session:
        records = session.scalars(select(TomogramRecord).order_by(TomogramRecord.name)).all()
        counts = dict(
            session.execute(
                select(Subtomogram.tomogram_id, func.count()).group_by(Subtomogram.tomogram_id)
            ).all()
        )
        parts = dict(
            session.execute(
                select(ShardRecord.tomogram_id, func.count()).group_by(ShardRecord.tomogram_id)
            ).all()
        )
    out = []
    for record in records:
        settings = tomogram_settings(store, record.name)
        out.append(
            {
                "name": record.name,
                "path": record.path,
                "voxel_size_angstrom": float(record.voxel_size_angstrom),
                "shape_zyx": [int(record.shape_z), int(record.shape_y), int(record.shape_x)],
                "subtomograms": int(counts.get(record.id, 0)),
                "parts": int(parts.get(record.id, 0)),
                "invert_contrast": None if settings is None else settings.invert_contrast,
                "edge": None if settings is None else settings.edge,
                "pick_method": None if settings is None else settings.pick_method,
            }
        )
    return out


def _repair_indexes(store: Store) -> None:
    """Persist every model's index brought up to date with the catalog (writer lock held)."""
    with store.session() as session:
        hashes = session.scalars(select(ModelRecord.weights_hash)).all()
    for model_hash in hashes:
        index = store.cpu_index(model_hash=model_hash)
        if store.index_path(model_hash).exists() or index.ntotal:
            if index.ntotal != store.index_file_ntotal(model_hash):
                store.persist_index(index, model_hash)


def remove_tomograms(
    store: Store, names: Sequence[str], *, force: bool = False, lock_wait_s: float = 0.0
) -> RemovalSummary:
    """Remove tomograms from the store: rows, shard parts and vectors of every model.

    Args:
        store: an open, writable store.
        names: tomogram names (``tomograms list``).
        force: also remove the support shots that classes took from these tomograms' particles
            (a class left without any shot is deleted); without it such a class stops the removal.
        lock_wait_s: wait this long for another writer.

    Returns:
        A :class:`RemovalSummary`.

    Raises:
        StoreError: an unknown name, or (without ``force``) a class using one of the particles;
            nothing is removed then. StoreLockedError: another writer is running.
    """
    from cosnet_index.store.vectors import read_index

    names = list(dict.fromkeys(str(n) for n in names))
    if not names:
        raise StoreError("name at least one tomogram to remove (see `cosnet-index tomograms list`)")
    with store.write_lock(lock_wait_s):
        remove_partial_files(store)
        _repair_indexes(store)  # what a killed removal left: an index with removed ids
        with store.session() as session:
            records = session.scalars(
                select(TomogramRecord).where(TomogramRecord.name.in_(names))
            ).all()
            unknown = sorted(set(names) - {r.name for r in records})
            if unknown:
                raise StoreError(
                    f"the store holds no tomogram named {', '.join(map(repr, unknown))}; "
                    "see `cosnet-index tomograms list` (nothing was removed)"
                )
            tomogram_ids = [r.id for r in records]
            shards = session.execute(
                select(ShardRecord.path, ShardRecord.model_id).where(
                    ShardRecord.tomogram_id.in_(tomogram_ids)
                )
            ).all()
            by_model: dict[int, list[int]] = {}
            for model_id, sub_id in session.execute(
                select(Subtomogram.model_id, Subtomogram.id).where(
                    Subtomogram.tomogram_id.in_(tomogram_ids)
                )
            ).all():
                by_model.setdefault(int(model_id), []).append(int(sub_id))
            ids = {m: np.asarray(v, dtype=np.int64) for m, v in by_model.items()}
            all_ids = np.concatenate(list(ids.values())) if ids else np.zeros(0, np.int64)
            shots_lost, deleted = _drop_shots(session, all_ids, names, force=force)
            for tomogram_id in tomogram_ids:  # one transaction: the session commits at the end
                session.execute(delete(Subtomogram).where(Subtomogram.tomogram_id == tomogram_id))
                session.execute(delete(ShardRecord).where(ShardRecord.tomogram_id == tomogram_id))
            session.execute(delete(TomogramRecord).where(TomogramRecord.id.in_(tomogram_ids)))
            for model_id, removed in ids.items():  # removed ids are never given again
                model = session.get(ModelRecord, model_id)
                if model is not None and len(removed):
                    model.max_removed_subtomogram_id = max(
                        int(model.max_removed_subtomogram_id or 0), int(removed.max())
                    )
            model_hashes = {
                int(i): h
                for i, h in session.execute(select(ModelRecord.id, ModelRecord.weights_hash)).all()
            }
        # committed: what follows is derived, and repaired by the next writer if killed here
        for model_id, removed in ids.items():
            model_hash = model_hashes[model_id]
            path = store.index_path(model_hash)
            if not path.exists():
                continue
            index = read_index(path)
            index.remove_ids(removed)
            store.persist_index(index, model_hash)
        for path, _ in shards:
            (store.path / path).unlink(missing_ok=True)
    summary = RemovalSummary(
        tomograms=tuple(sorted(r.name for r in records)),
        subtomograms=len(all_ids),
        shards=len(shards),
        shots_lost=shots_lost,
        classes_deleted=deleted,
    )
    for line in summary.lines():
        logger.info(line)
    return summary


def _drop_shots(
    session: Any, ids: np.ndarray, names: Sequence[str], *, force: bool
) -> tuple[dict[str, int], tuple[str, ...]]:
    """Remove (``force``) or refuse the support shots taken from particles ``ids``.

    Returns ``(set/class -> shots lost, classes deleted)``; the remaining shots of a class are
    numbered 0..K-1 again.
    """
    used = set(ids.tolist())
    shots = [
        (v, c, s)
        for v, c, s in session.execute(
            select(SupportVectorRecord, ClassRecord, ClassSetRecord)
            .join(ClassRecord, SupportVectorRecord.class_id == ClassRecord.id)
            .join(ClassSetRecord, ClassRecord.set_id == ClassSetRecord.id)
            .where(SupportVectorRecord.source_kind == "subtomogram")
        ).all()
        if v.subtomogram_id is not None and int(v.subtomogram_id) in used
    ]
    if not shots:
        return {}, ()
    lost: dict[str, int] = {}
    classes: dict[str, ClassRecord] = {}
    for _, record, class_set in shots:
        key = f"{class_set.name}/{record.name}"
        lost[key] = lost.get(key, 0) + 1
        classes[key] = record
    if not force:
        described = ", ".join(f"{k} ({n} shots)" for k, n in sorted(lost.items()))
        raise StoreError(
            f"classes use particles of {', '.join(names)} as supports: {described}; add other "
            "shots to them first, or remove the tomograms with `cosnet-index tomograms remove "
            "--force` (those shots are dropped, a class left without any is deleted); nothing "
            "was removed"
        )
    for vector, _, _ in shots:
        session.delete(vector)
    session.flush()
    deleted = []
    for key, record in sorted(classes.items()):
        left = session.scalars(
            select(SupportVectorRecord)
            .where(SupportVectorRecord.class_id == record.id)
            .order_by(SupportVectorRecord.shot)
        ).all()
        if not left:
            session.delete(record)
            deleted.append(key)
            continue
        for k, vector in enumerate(left):  # two passes: (class, shot) stays unique meanwhile
            vector.shot = -1 - k
        session.flush()
        for k, vector in enumerate(left):
            vector.shot = k
    session.flush()
    for key in sorted(lost):
        logger.warning("class %s lost %d shots", key, lost[key])
    return lost, tuple(deleted)


def rename_tomogram(store: Store, old: str, new: str) -> None:
    """Rename a tomogram (coordinates then match it by the new name; shots follow it).

    Raises:
        StoreError: no tomogram ``old``, ``new`` taken or empty.
    """
    new = str(new).strip()
    if not new:
        raise StoreError("the new tomogram name is empty")
    with store.write_lock(), store.session() as session:
        record = session.scalars(select(TomogramRecord).where(TomogramRecord.name == old)).first()
        if record is None:
            raise StoreError(
                f"the store holds no tomogram named {old!r}; see `cosnet-index tomograms list`"
            )
        if session.scalars(select(TomogramRecord.id).where(TomogramRecord.name == new)).first():
            raise StoreError(
                f"the store already holds a tomogram named {new!r}; choose another name"
            )
        record.name = new
        for vector in session.scalars(
            select(SupportVectorRecord).where(SupportVectorRecord.tomogram == old)
        ).all():
            vector.tomogram = new
