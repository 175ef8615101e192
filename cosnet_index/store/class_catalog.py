"""Support classes in the catalog: the only code that reads or writes the class tables.

Functions of an open SQLAlchemy ``Session`` (the ``Store`` methods in ``catalog.py`` open it);
names arrive checked (``cosnet_index.classes.check_name``). A class holds its K support vectors
as little-endian float32 blobs, with where each came from, and its molecular volume when known
(:class:`ClassVolume`, migration ``0005``).
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from cosnet_index.errors import ClassError, InputError, StoreError
from cosnet_index.store.tables import ClassRecord, ClassSetRecord, ModelRecord, SupportVectorRecord

__all__ = [
    "VOLUME_SOURCES",
    "ClassVolume",
    "SupportClass",
    "class_names",
    "class_sets",
    "delete_class",
    "find_class",
    "list_classes",
    "rename_class",
    "save_class",
    "set_class_volume",
    "set_classes",
]

VOLUME_SOURCES: dict[str, str] = {
    "map-contour": "the volume the map encloses at its contour (given or estimated)",
    "map-mass": "the mass given with the map (--mass-kda), at 0.81 Da/A^3",
    "mass-kda": "the mass given (--mass-kda), at 0.81 Da/A^3",
    "atomic-model": "the sum of the atomic model's masses, at 0.81 Da/A^3",
    "user": "set by hand (classes set-volume --volume-nm3)",
}
"""Where a class's volume can come from (``classes.volume_source``), with what it means."""


@dataclass(frozen=True)
class ClassVolume:
    """The molecular volume of a class: ``segment``'s mask prior for its hits.

    Attributes:
        volume_nm3: the volume in nm^3 (> 0, finite).
        source: one of :data:`VOLUME_SOURCES`.
        mass_kda: the mass it was computed from, when it was (kDa).
        note: how it was found, for ``classes list`` (e.g. the contour level).

    Raises:
        InputError: a volume that is not a positive number, or an unknown source.
    """

    volume_nm3: float
    source: str
    mass_kda: float | None = None
    note: str = ""

    def __post_init__(self) -> None:
        if not (math.isfinite(self.volume_nm3) and self.volume_nm3 > 0):
            raise InputError(
                f"a class volume must be a positive number of nm^3, got {self.volume_nm3}; "
                "check the mass (--mass-kda), volume (--volume-nm3) or contour (--contour)"
            )
        if self.source not in VOLUME_SOURCES:
            raise InputError(
                f"unknown volume source {self.source!r}; one of {', '.join(VOLUME_SOURCES)}"
            )
        if self.mass_kda is not None and not (math.isfinite(self.mass_kda) and self.mass_kda > 0):
            raise InputError(
                f"a molecular mass must be a positive number of kDa, got {self.mass_kda}"
            )


@dataclass(frozen=True)
class SupportClass:
    """A support class as stored.

    Attributes:
        name, set_name: the class and its set.
        model_hash: weights hash of the model its vectors come from.
        vectors: (K, dim) float32 support vectors (scaled storage vectors).
        sources: one description per shot (``subtomogram 12``, ``mrc a.mrc``, ``TS_01 10 20 30``).
        description: free text given at ``add``.
        created_at: UTC time of creation.
        subtomogram_ids: ids of the stored subtomograms among the shots.
        positions: ``(tomogram, x, y, z)`` of shots embedded at a position the store did not
            hold when the class was made (it may hold it since).
        volume: the molecular volume, or None when it is not known.
    """

    name: str
    set_name: str
    model_hash: str
    vectors: np.ndarray
    sources: tuple[str, ...]
    description: str
    created_at: dt.datetime
    subtomogram_ids: tuple[int, ...] = ()
    positions: tuple[tuple[str, float, float, float], ...] = ()
    volume: ClassVolume | None = None

    @property
    def shots(self) -> int:
        """K, the number of support vectors."""
        return len(self.vectors)


def _source(v: SupportVectorRecord) -> str:
    if v.source_kind == "subtomogram" and v.tomogram is not None:
        return f"subtomogram {v.subtomogram_id} ({v.tomogram} {v.x:g} {v.y:g} {v.z:g})"
    if v.source_kind == "subtomogram":
        return f"subtomogram {v.subtomogram_id}"
    if v.source_kind == "mrc":
        return f"mrc {v.source_path}"
    if v.source_kind in ("map", "atomic-model"):  # provenance as JSON (classes/_reference.py)
        try:
            info = json.loads(v.source_path or "{}")
            imaging = info.get("imaging", {})
            return (
                f"{v.source_kind} {info.get('path')} ({imaging.get('orientations')} orientations "
                f"averaged, defocus {imaging.get('defocus_um')} um, tilt "
                f"{imaging.get('tilt_min_deg')}..{imaging.get('tilt_max_deg')})"
            )
        except (ValueError, AttributeError):
            return f"{v.source_kind} {v.source_path}"
    return f"{v.tomogram} {v.x:g} {v.y:g} {v.z:g}"


def _to_class(record: ClassRecord, set_name: str, model_hash: str) -> SupportClass:
    vectors = np.stack([np.frombuffer(v.vector, dtype="<f4") for v in record.vectors])
    return SupportClass(
        name=record.name,
        set_name=set_name,
        model_hash=model_hash,
        vectors=vectors.astype(np.float32),  # (K, dim), a writable copy
        sources=tuple(_source(v) for v in record.vectors),
        description=record.description,
        created_at=record.created_at,
        subtomogram_ids=tuple(
            int(v.subtomogram_id) for v in record.vectors if v.subtomogram_id is not None
        ),
        positions=tuple(
            (str(v.tomogram), float(v.x), float(v.y), float(v.z))
            for v in record.vectors
            if v.subtomogram_id is None and v.tomogram is not None and v.x is not None
        ),
        volume=_volume_of(record),
    )


def _volume_of(record: ClassRecord) -> ClassVolume | None:
    if record.volume_nm3 is None or record.volume_source not in VOLUME_SOURCES:
        return None
    return ClassVolume(
        float(record.volume_nm3),
        str(record.volume_source),
        None if record.mass_kda is None else float(record.mass_kda),
        record.volume_note or "",
    )


def _write_volume(record: ClassRecord, volume: ClassVolume | None) -> None:
    record.volume_nm3 = None if volume is None else float(volume.volume_nm3)
    record.volume_source = None if volume is None else volume.source
    record.mass_kda = None if volume is None else volume.mass_kda
    record.volume_note = None if volume is None else volume.note


def find_class(session: Session, name: str, set_name: str) -> ClassRecord | None:
    """The class row (vectors loaded), or None."""
    return session.scalars(
        select(ClassRecord)
        .join(ClassSetRecord, ClassRecord.set_id == ClassSetRecord.id)
        .where(ClassSetRecord.name == set_name, ClassRecord.name == name)
        .options(selectinload(ClassRecord.vectors))
    ).first()


def class_names(session: Session, set_name: str) -> list[str]:
    """Names of the classes of a set, sorted."""
    return list(
        session.scalars(
            select(ClassRecord.name)
            .join(ClassSetRecord, ClassRecord.set_id == ClassSetRecord.id)
            .where(ClassSetRecord.name == set_name)
            .order_by(ClassRecord.name)
        ).all()
    )


def _missing(session: Session, name: str, set_name: str) -> ClassError:
    known = class_names(session, set_name)
    hint = f"known: {', '.join(known)}" if known else "it has no class yet"
    return ClassError(
        f"no class {name!r} in set {set_name!r} ({hint}); see `cosnet-index classes list`"
    )


def save_class(
    session: Session,
    model_hash: str,
    name: str,
    set_name: str,
    vectors: np.ndarray,
    sources: Sequence[dict[str, Any]],
    description: str,
    volume: ClassVolume | None = None,
) -> SupportClass:
    """Create the class (and its set) or append shots to it; ``volume`` (when given) replaces
    the class's molecular volume.

    Raises:
        StoreError: the class exists and was made with another model.
    """
    model = session.scalars(select(ModelRecord).where(ModelRecord.weights_hash == model_hash)).one()
    record = find_class(session, name, set_name)
    if record is None:
        class_set = session.scalars(
            select(ClassSetRecord).where(ClassSetRecord.name == set_name)
        ).first()
        if class_set is None:
            class_set = ClassSetRecord(name=set_name)
            session.add(class_set)
            session.flush()
        record = ClassRecord(
            set_id=class_set.id, name=name, model_id=model.id, description=description, vectors=[]
        )
        session.add(record)
    elif record.model_id != model.id:
        raise StoreError(
            f"class {name!r} was made with another model than the store's "
            f"({model_hash[:12]}); remove it and add it again"
        )
    elif description:
        record.description = description
    if volume is not None:
        _write_volume(record, volume)
    xb = np.ascontiguousarray(vectors, dtype="<f4")  # (K, dim)
    start = len(record.vectors)
    for k, (vector, source) in enumerate(zip(xb, sources, strict=True)):
        record.vectors.append(
            SupportVectorRecord(
                shot=start + k, dim=int(xb.shape[1]), vector=vector.tobytes(), **source
            )
        )
    session.flush()
    return _to_class(record, set_name, model_hash)


def set_classes(
    session: Session, set_name: str, names: Sequence[str] | None, model_hash: str
) -> list[SupportClass]:
    """Classes of a set in the order of ``names`` (default: all, by name).

    Raises:
        ClassError: an unknown name, a name given twice, or an empty set.
        StoreError: a class made with another model than ``model_hash`` (never mixed).
    """
    rows = session.execute(
        select(ClassRecord, ModelRecord.weights_hash)
        .join(ClassSetRecord, ClassRecord.set_id == ClassSetRecord.id)
        .join(ModelRecord, ClassRecord.model_id == ModelRecord.id)
        .where(ClassSetRecord.name == set_name)
        .options(selectinload(ClassRecord.vectors))
        .order_by(ClassRecord.name)
    ).all()
    by_name = {r.name: (r, h) for r, h in rows}
    wanted = list(by_name) if names is None else list(names)
    if not wanted:
        raise ClassError(f"set {set_name!r} has no class; add one with `cosnet-index classes add`")
    if len(set(wanted)) != len(wanted):
        raise ClassError(f"a class is named twice in {wanted}; name each once")
    out = []
    for name in wanted:
        if name not in by_name:
            raise _missing(session, name, set_name)
        record, record_hash = by_name[name]
        if record_hash != model_hash:
            raise StoreError(
                f"class {name!r} was made with model {record_hash[:12]}, the store's vectors "
                f"with {model_hash[:12]}; queries never mix models: add the class again"
            )
        out.append(_to_class(record, set_name, record_hash))
    return out


def list_classes(session: Session, set_name: str | None) -> list[SupportClass]:
    """Every class (of one set, or of all sets), by set then name; any model."""
    query = (
        select(ClassRecord, ClassSetRecord.name, ModelRecord.weights_hash)
        .join(ClassSetRecord, ClassRecord.set_id == ClassSetRecord.id)
        .join(ModelRecord, ClassRecord.model_id == ModelRecord.id)
        .options(selectinload(ClassRecord.vectors))
        .order_by(ClassSetRecord.name, ClassRecord.name)
    )
    if set_name is not None:
        query = query.where(ClassSetRecord.name == set_name)
    return [_to_class(r, s, h) for r, s, h in session.execute(query).all()]


def class_sets(session: Session) -> list[str]:
    """Names of the class sets that hold at least one class."""
    return list(
        session.scalars(
            select(ClassSetRecord.name)
            .join(ClassRecord, ClassRecord.set_id == ClassSetRecord.id)
            .distinct()
            .order_by(ClassSetRecord.name)
        ).all()
    )


def delete_class(session: Session, name: str, set_name: str) -> None:
    """Delete a class and its support vectors.

    Raises:
        ClassError: no such class.
    """
    record = find_class(session, name, set_name)
    if record is None:
        raise _missing(session, name, set_name)
    session.delete(record)


def set_class_volume(
    session: Session, name: str, set_name: str, volume: ClassVolume | None
) -> SupportClass:
    """Replace (or with None, forget) the molecular volume of a class.

    Raises:
        ClassError: no such class.
    """
    record = find_class(session, name, set_name)
    if record is None:
        raise _missing(session, name, set_name)
    _write_volume(record, volume)
    session.flush()
    return _to_class(record, set_name, _model_hash(session, record))


def _model_hash(session: Session, record: ClassRecord) -> str:
    model = session.get(ModelRecord, record.model_id)
    if model is None:  # the foreign key forbids it: a damaged catalog
        raise StoreError(f"class {record.name!r} names a model the catalog does not hold")
    return model.weights_hash


def rename_class(session: Session, old: str, new: str, set_name: str) -> SupportClass:
    """Rename a class within its set.

    Raises:
        ClassError: no class ``old``, or ``new`` taken.
    """
    record = find_class(session, old, set_name)
    if record is None:
        raise _missing(session, old, set_name)
    if new != old and find_class(session, new, set_name) is not None:
        raise ClassError(
            f"class {new!r} already exists in set {set_name!r}; choose another name or "
            "remove it first"
        )
    record.name = new
    session.flush()
    return _to_class(record, set_name, _model_hash(session, record))
