"""Named support classes of a store: add, list, get, remove, rename; class sets.

A class is a name and K support vectors (shots) of the store's model. Vectors of stored
subtomograms are copied from the store (no network call); an MRC box or a position in a
tomogram that the store does not hold is embedded once with the store's model and the same
normalisation as indexing. Changing classes never touches the stored embeddings.

Names: 1-64 characters from ``A-Z a-z 0-9 . _ + -``, starting with a letter or digit, not
``unknown`` (the open-set label); unique within a class set (``default`` unless named).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Sequence

import numpy as np

from cosnet_index import defaults
from cosnet_index.classes._examples import vectors_at, vectors_of_mrc
from cosnet_index.classes._reference import ReferenceImaging, vectors_of_reference
from cosnet_index.defaults import UNKNOWN
from cosnet_index.errors import ClassError, InputError
from cosnet_index.store import Store
from cosnet_index.store.class_catalog import SupportClass

__all__ = [
    "DEFAULT_SET",
    "ReferenceImaging",
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


# -- public API ----------------------------------------------------------------------------------


def add_class(
    store: Store,
    name: str,
    *,
    subtomogram_ids: Sequence[int] = (),
    mrc_paths: Sequence[str | os.PathLike[str]] = (),
    at: Sequence[tuple[str, float, float, float]] = (),
    set_name: str = DEFAULT_SET,
    description: str = "",
    append: bool = False,
    invert_contrast: bool = False,
    reference_map: str | os.PathLike[str] | None = None,
    reference_model: str | os.PathLike[str] | None = None,
    map_voxel_size_angstrom: float | None = None,
    reference_imaging: ReferenceImaging | None = None,
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
        reference_map: a density map (MRC): imaged like the collection in several orientations,
            their vectors averaged into one shot (``classes/_reference.py``); or
        reference_model: a PDB/mmCIF atomic model (the ``pdb`` extra), the same way.
        map_voxel_size_angstrom: the map's voxel size when its header is wrong or missing.
        reference_imaging: how the collection was imaged (default :class:`ReferenceImaging`).

    Raises:
        ClassError: bad or duplicate name (without ``append``), no example given.
        StoreError: unknown subtomogram ids, ids of another model, or appending to a class of
            another model.
        InputError, MrcError, CoordinateError: unusable MRC files or positions.
    """
    name, set_name = check_name(name), check_name(set_name, "set")
    reference = reference_map is not None or reference_model is not None
    if not (len(subtomogram_ids) or len(mrc_paths) or len(at) or reference):
        raise ClassError(
            f"class {name!r} needs at least one example: --subtomogram ID, --mrc FILE, "
            "--at TOMO X Y Z, --map MAP.mrc or --model MODEL.cif"
        )
    with store.write_lock():
        if not append and store.has_class(name, set_name):  # refuse before any embedding
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
        if reference:
            xb, source = vectors_of_reference(
                store,
                map_path=reference_map,
                model_path=reference_model,
                map_voxel_size_angstrom=map_voxel_size_angstrom,
                imaging=reference_imaging,
            )
            vectors.append(xb)
            sources.append(source)
        xb = np.ascontiguousarray(np.concatenate(vectors), dtype="<f4")  # (K, dim)
        if not np.isfinite(xb).all():
            raise InputError(f"an example of {name!r} embeds to non-finite values; check its box")
        result = store.save_class(name, set_name, xb, sources, description)
    log.info("class %s/%s: %d shots", set_name, name, result.shots)
    return result


def get_classes(
    store: Store, names: Sequence[str] | None = None, *, set_name: str = DEFAULT_SET
) -> list[SupportClass]:
    """Classes of a set with their vectors, in the order of ``names`` (default: all, by name).

    Raises:
        ClassError: an unknown name, or an empty set.
        StoreError: a class made with another model than the store's (never mixed).
    """
    set_name = check_name(set_name, "set")
    checked = None if names is None else [check_name(n) for n in names]
    return store.support_classes(set_name, checked)


def list_classes(store: Store, set_name: str | None = None) -> list[SupportClass]:
    """Every class (of one set, or of all sets), by set then name; any model."""
    return store.list_classes(None if set_name is None else check_name(set_name, "set"))


def list_sets(store: Store) -> list[str]:
    """Names of the class sets that hold at least one class."""
    return store.class_sets()


def remove_class(store: Store, name: str, *, set_name: str = DEFAULT_SET) -> None:
    """Delete a class and its support vectors (stored embeddings are untouched).

    Raises:
        ClassError: no such class.
    """
    name, set_name = check_name(name), check_name(set_name, "set")
    store.remove_class(name, set_name)
    log.info("removed class %s/%s", set_name, name)


def rename_class(store: Store, old: str, new: str, *, set_name: str = DEFAULT_SET) -> SupportClass:
    """Rename a class within its set.

    Raises:
        ClassError: no class ``old``, an invalid ``new``, or ``new`` taken.
    """
    old, new, set_name = check_name(old), check_name(new), check_name(set_name, "set")
    return store.rename_class(old, new, set_name)
