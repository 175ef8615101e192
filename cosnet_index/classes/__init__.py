"""Named support classes of a store: add, list, get, remove, rename; class sets.

A class is a name and K support vectors (shots) of the store's model. Vectors of stored
subtomograms are copied from the store (no network call); an MRC box or a position in a
tomogram that the store does not hold is embedded once with the store's model and the same
normalisation as indexing. Changing classes never touches the stored embeddings.

Names: 1-64 characters from ``A-Z a-z 0-9 . _ + -``, starting with a letter or digit, not
``unknown`` (the open-set label); unique within a class set (``default`` unless named).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from cosnet_index import defaults
from cosnet_index.classes._examples import vectors_at, vectors_of_mrc
from cosnet_index.defaults import UNKNOWN
from cosnet_index.errors import ClassError, InputError, StoreError
from cosnet_index.store.tables import ClassRecord, ClassSetRecord, ModelRecord, SupportVectorRecord

__all__ = [
    "DEFAULT_SET",
    "SupportClass",
    "add_class",
    "check_name",
    "get_classes",
    "list_classes",
    "list_sets",
    "remove_class",
    "rename_class",
]

log = logging.getLogger(__name__)

DEFAULT_SET = defaults.DEFAULT_SET
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,63}")


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

    @property
    def shots(self) -> int:
        """K, the number of support vectors."""
        return len(self.vectors)


def check_name(name: str, what: str = "class") -> str:
    """The stripped name, or ClassError with the rule and a fix."""
    stripped = str(name).strip()
    if not stripped:
        raise ClassError(f"the {what} name is empty; give a name such as 'ribosome'")
    if stripped.lower() == UNKNOWN:
        raise ClassError(
            f"'{UNKNOWN}' is reserved for vectors matching no class; pick another name"
        )
    if not _NAME.fullmatch(stripped):
        raise ClassError(
            f"invalid {what} name {stripped!r}: use 1-64 letters, digits, '.', '_', '+' or '-', "
            "starting with a letter or digit (e.g. 'membrane-protein_2')"
        )
    return stripped


def _source(v: SupportVectorRecord) -> str:
    if v.source_kind == "subtomogram" and v.tomogram is not None:
        return f"subtomogram {v.subtomogram_id} ({v.tomogram} {v.x:g} {v.y:g} {v.z:g})"
    if v.source_kind == "subtomogram":
        return f"subtomogram {v.subtomogram_id}"
    if v.source_kind == "mrc":
        return f"mrc {v.source_path}"
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
    )


def _find(session: Session, name: str, set_name: str) -> ClassRecord | None:
    return session.scalars(
        select(ClassRecord)
        .join(ClassSetRecord, ClassRecord.set_id == ClassSetRecord.id)
        .where(ClassSetRecord.name == set_name, ClassRecord.name == name)
        .options(selectinload(ClassRecord.vectors))
    ).first()


def _missing(name: str, set_name: str, session: Session) -> ClassError:
    known = session.scalars(
        select(ClassRecord.name)
        .join(ClassSetRecord, ClassRecord.set_id == ClassSetRecord.id)
        .where(ClassSetRecord.name == set_name)
        .order_by(ClassRecord.name)
    ).all()
    hint = f"known: {', '.join(known)}" if known else "it has no class yet"
    return ClassError(
        f"no class {name!r} in set {set_name!r} ({hint}); see `cosnet-index classes list`"
    )


# -- public API ----------------------------------------------------------------------------------


def add_class(
    store: Any,
    name: str,
    *,
    subtomogram_ids: Sequence[int] = (),
    mrc_paths: Sequence[str | os.PathLike[str]] = (),
    at: Sequence[tuple[str, float, float, float]] = (),
    set_name: str = DEFAULT_SET,
    description: str = "",
    append: bool = False,
    invert_contrast: bool = False,
) -> SupportClass:
    """Create a class (or add shots with ``append``) from examples.

    Args:
        store: an open :class:`~cosnet_index.store.store.Store`.
        name: class name (see module docstring).
        subtomogram_ids: stored subtomograms: their vectors are copied (no model call).
        mrc_paths: cubic MRC boxes (molecules dark), embedded with the store's model.
        at: ``(tomogram, x, y, z)`` positions in voxels; a position the store indexed reuses its
            vector, any other is cut from the tomogram (name in the store, or an MRC path).
        set_name: the class set (created when new).
        description: free text shown by ``classes list``.
        append: add the examples as further shots of an existing class.
        invert_contrast: negate boxes of MRC files the store did not index (bright molecules);
            tomograms the store indexed keep the convention they were indexed with.

    Raises:
        ClassError: bad or duplicate name (without ``append``), no example given.
        StoreError: unknown subtomogram ids, ids of another model, or appending to a class of
            another model.
        InputError, MrcError, CoordinateError: unusable MRC files or positions.
    """
    name, set_name = check_name(name), check_name(set_name, "set")
    if not (len(subtomogram_ids) or len(mrc_paths) or len(at)):
        raise ClassError(
            f"class {name!r} needs at least one example: --subtomogram ID, --mrc FILE or "
            "--at TOMO X Y Z"
        )
    model_hash = store.model_hash
    with store.write_lock():
        with store.session() as session:  # refuse early, before any embedding
            existing = _find(session, name, set_name)
            if existing is not None and not append:
                raise ClassError(
                    f"class {name!r} already exists in set {set_name!r}; pass --append to add "
                    "shots, or `classes remove` it first"
                )
        vectors, sources = [], []
        if len(subtomogram_ids):
            ids, xb = store.load_vectors(np.asarray(subtomogram_ids, dtype=np.int64))
            vectors.append(xb)
            sources += [{"source_kind": "subtomogram", "subtomogram_id": int(i)} for i in ids]
        if len(mrc_paths):
            vectors.append(vectors_of_mrc(store, mrc_paths, invert_contrast))
            sources += [{"source_kind": "mrc", "source_path": str(p)} for p in mrc_paths]
        if len(at):
            xb, at_sources = vectors_at(store, at, invert_contrast)
            vectors.append(xb)
            sources += at_sources
        xb = np.ascontiguousarray(np.concatenate(vectors), dtype="<f4")  # (K, dim)
        if not np.isfinite(xb).all():
            raise InputError(f"an example of {name!r} embeds to non-finite values; check its box")
        with store.session() as session:
            model = session.scalars(
                select(ModelRecord).where(ModelRecord.weights_hash == model_hash)
            ).one()
            record = _find(session, name, set_name)
            if record is None:
                class_set = session.scalars(
                    select(ClassSetRecord).where(ClassSetRecord.name == set_name)
                ).first()
                if class_set is None:
                    class_set = ClassSetRecord(name=set_name)
                    session.add(class_set)
                    session.flush()
                record = ClassRecord(
                    set_id=class_set.id,
                    name=name,
                    model_id=model.id,
                    description=description,
                    vectors=[],
                )
                session.add(record)
            elif record.model_id != model.id:
                raise StoreError(
                    f"class {name!r} was made with another model than the store's "
                    f"({model_hash[:12]}); remove it and add it again"
                )
            elif description:
                record.description = description
            start = len(record.vectors)
            for k, (vector, source) in enumerate(zip(xb, sources, strict=True)):
                record.vectors.append(
                    SupportVectorRecord(
                        shot=start + k, dim=int(xb.shape[1]), vector=vector.tobytes(), **source
                    )
                )
            session.flush()
            result = _to_class(record, set_name, model_hash)
    log.info("class %s/%s: %d shots", set_name, name, result.shots)
    return result


def get_classes(
    store: Any, names: Sequence[str] | None = None, *, set_name: str = DEFAULT_SET
) -> list[SupportClass]:
    """Classes of a set with their vectors, in the order of ``names`` (default: all, by name).

    Raises:
        ClassError: an unknown name, or an empty set.
        StoreError: a class made with another model than the store's (never mixed).
    """
    set_name = check_name(set_name, "set")
    model_hash = store.model_hash
    with store.session() as session:
        rows = session.execute(
            select(ClassRecord, ModelRecord.weights_hash)
            .join(ClassSetRecord, ClassRecord.set_id == ClassSetRecord.id)
            .join(ModelRecord, ClassRecord.model_id == ModelRecord.id)
            .where(ClassSetRecord.name == set_name)
            .options(selectinload(ClassRecord.vectors))
            .order_by(ClassRecord.name)
        ).all()
        by_name = {r.name: (r, h) for r, h in rows}
        wanted = list(by_name) if names is None else [check_name(n) for n in names]
        if not wanted:
            raise ClassError(
                f"set {set_name!r} has no class; add one with `cosnet-index classes add`"
            )
        if len(set(wanted)) != len(wanted):
            raise ClassError(f"a class is named twice in {wanted}; name each once")
        out = []
        for name in wanted:
            if name not in by_name:
                raise _missing(name, set_name, session)
            record, record_hash = by_name[name]
            if record_hash != model_hash:
                raise StoreError(
                    f"class {name!r} was made with model {record_hash[:12]}, the store's vectors "
                    f"with {model_hash[:12]}; queries never mix models: add the class again"
                )
            out.append(_to_class(record, set_name, record_hash))
    return out


def list_classes(store: Any, set_name: str | None = None) -> list[SupportClass]:
    """Every class (of one set, or of all sets), by set then name; any model."""
    query = (
        select(ClassRecord, ClassSetRecord.name, ModelRecord.weights_hash)
        .join(ClassSetRecord, ClassRecord.set_id == ClassSetRecord.id)
        .join(ModelRecord, ClassRecord.model_id == ModelRecord.id)
        .options(selectinload(ClassRecord.vectors))
        .order_by(ClassSetRecord.name, ClassRecord.name)
    )
    if set_name is not None:
        query = query.where(ClassSetRecord.name == check_name(set_name, "set"))
    with store.session() as session:
        return [_to_class(r, s, h) for r, s, h in session.execute(query).all()]


def list_sets(store: Any) -> list[str]:
    """Names of the class sets that hold at least one class."""
    with store.session() as session:
        return list(
            session.scalars(
                select(ClassSetRecord.name)
                .join(ClassRecord, ClassRecord.set_id == ClassSetRecord.id)
                .distinct()
                .order_by(ClassSetRecord.name)
            ).all()
        )


def remove_class(store: Any, name: str, *, set_name: str = DEFAULT_SET) -> None:
    """Delete a class and its support vectors (stored embeddings are untouched).

    Raises:
        ClassError: no such class.
    """
    name, set_name = check_name(name), check_name(set_name, "set")
    with store.write_lock(), store.session() as session:
        record = _find(session, name, set_name)
        if record is None:
            raise _missing(name, set_name, session)
        session.delete(record)
    log.info("removed class %s/%s", set_name, name)


def rename_class(store: Any, old: str, new: str, *, set_name: str = DEFAULT_SET) -> SupportClass:
    """Rename a class within its set.

    Raises:
        ClassError: no class ``old``, an invalid ``new``, or ``new`` taken.
    """
    old, new, set_name = check_name(old), check_name(new), check_name(set_name, "set")
    with store.write_lock(), store.session() as session:
        record = _find(session, old, set_name)
        if record is None:
            raise _missing(old, set_name, session)
        if new != old and _find(session, new, set_name) is not None:
            raise ClassError(
                f"class {new!r} already exists in set {set_name!r}; choose another name or "
                "remove it first"
            )
        record.name = new
        session.flush()
        model_hash = session.get(ModelRecord, record.model_id).weights_hash  # type: ignore[union-attr]
        return _to_class(record, set_name, model_hash)
