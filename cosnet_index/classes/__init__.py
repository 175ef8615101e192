"""Named support classes of a store: add, list, get, remove, rename, set-volume; class sets.

A class is a name and K support vectors (shots) of the store's model, and its molecular volume
when it can be known (from a map, a model or a mass: ``_volume.py``; ``segment``'s mask prior).
Vectors of stored subtomograms are copied from the store (no network call); an MRC box or a
position in a tomogram that the store does not hold is embedded once with the store's model and
the same normalisation as indexing. Changing classes never touches the stored embeddings.

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
from cosnet_index.classes._volume import (
    volume_of_map,
    volume_of_mass,
    volume_of_model,
)
from cosnet_index.defaults import UNKNOWN
from cosnet_index.errors import ClassError, InputError
from cosnet_index.store import Store
from cosnet_index.store.class_catalog import VOLUME_SOURCES, ClassVolume, SupportClass

__all__ = [
    "DEFAULT_SET",
    "VOLUME_SOURCES",
    "ClassVolume",
    "ReferenceImaging",
    "SupportClass",
    "add_class",
    "check_name",
    "describe_volume",
    "get_classes",
    "list_classes",
    "list_sets",
    "remove_class",
    "rename_class",
    "set_class_volume",
    "volume_of_map",
    "volume_of_mass",
    "volume_of_model",
]

log = logging.getLogger(__name__)

DEFAULT_SET = defaults.DEFAULT_SET
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,63}")
# which volume a later one may replace on `add --append`: one the user gave beats one derived
_VOLUME_RANK = {"user": 3, "mass-kda": 3, "map-mass": 3, "atomic-model": 2, "map-contour": 1}


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
    mass_kda: float | None = None,
    contour: float | None = None,
) -> SupportClass:
    """Create a class (or add shots with ``append``) from examples, with its molecular volume
    when it can be known.

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
        mass_kda: the molecule's mass: the class volume is ``mass / 0.81 Da/A^3`` (it beats
            the map's contour and the model's atomic masses).
        contour: the map's contour level (its own units): the class volume is the map's
            volume above it (default: estimated, ``classes/_volume.py``).

    The volume, when one is found, is computed before anything is embedded; with ``append``
    it replaces the class's only when it is as good (a given mass or volume beats an atomic
    model, which beats a map's contour).

    Raises:
        ClassError: bad or duplicate name (without ``append``), no example given.
        StoreError: unknown subtomogram ids, ids of another model, or appending to a class of
            another model.
        InputError, MrcError, CoordinateError: unusable MRC files or positions, a bad mass or
            contour (nothing is written).
    """
    name, set_name = check_name(name), check_name(set_name, "set")
    reference = reference_map is not None or reference_model is not None
    if not (len(subtomogram_ids) or len(mrc_paths) or len(at) or reference):
        raise ClassError(
            f"class {name!r} needs at least one example: --subtomogram ID, --mrc FILE, "
            "--at TOMO X Y Z, --map MAP.mrc or --model MODEL.cif"
        )
    if contour is not None and reference_map is None:
        raise InputError("--contour is the level of a --map; give it with --map MAP.mrc")
    with store.write_lock():
        if not append and store.has_class(name, set_name):  # refuse before any embedding
            raise ClassError(
                f"class {name!r} already exists in set {set_name!r}; pass --append to add "
                "shots, or `classes remove` it first"
            )
        volume = _class_volume(
            reference_map, reference_model, mass_kda, contour, map_voxel_size_angstrom
        )
        if append and volume is not None:
            volume = _better_volume(store, name, set_name, volume)
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
        result = store.save_class(name, set_name, xb, sources, description, volume)
    log.info("class %s/%s: %d shots, volume %s", set_name, name, result.shots,
             describe_volume(result.volume))  # fmt: skip
    return result


def _class_volume(
    map_path: str | os.PathLike[str] | None,
    model_path: str | os.PathLike[str] | None,
    mass_kda: float | None,
    contour: float | None,
    map_voxel_size_angstrom: float | None,
) -> ClassVolume | None:
    """The volume the examples tell: a map's, a model's or a mass's (None: none of them)."""
    if map_path is not None:
        return volume_of_map(
            map_path,
            contour=contour,
            mass_kda=mass_kda,
            voxel_size_angstrom=map_voxel_size_angstrom,
        )
    if mass_kda is not None:
        return volume_of_mass(mass_kda)
    if model_path is not None:
        return volume_of_model(model_path)
    return None


def _better_volume(
    store: Store, name: str, set_name: str, volume: ClassVolume
) -> ClassVolume | None:
    """``volume`` when it may replace the class's (as good or better), else None (keep it)."""
    old = next((c.volume for c in store.list_classes(set_name) if c.name == name), None)
    if old is None or _VOLUME_RANK[volume.source] >= _VOLUME_RANK[old.source]:
        return volume
    log.warning(
        "class %s keeps its volume %s; the new examples give %s, a weaker source (change it "
        "with `classes set-volume`)",
        name,
        describe_volume(old),
        describe_volume(volume),
    )
    return None


def describe_volume(volume: ClassVolume | None) -> str:
    """``"3500 nm^3 (map-contour: contour 0.02 given)"`` or ``"unknown"``."""
    if volume is None:
        return "unknown"
    return f"{volume.volume_nm3:.0f} nm^3 ({volume.source}" + (
        f": {volume.note})" if volume.note else ")"
    )


def set_class_volume(
    store: Store,
    name: str,
    *,
    mass_kda: float | None = None,
    volume_nm3: float | None = None,
    clear: bool = False,
    set_name: str = DEFAULT_SET,
) -> SupportClass:
    """Add, correct or forget the molecular volume of a class (its vectors are untouched).

    Exactly one of ``mass_kda`` (volume ``mass / 0.81 Da/A^3``), ``volume_nm3`` (as given) or
    ``clear`` (no volume: ``segment`` thresholds its masks at p > 0.5).

    Raises:
        InputError: none or several of the three, a mass or volume that is not positive.
        ClassError: no such class (nothing is changed).
    """
    name, set_name = check_name(name), check_name(set_name, "set")
    given = [mass_kda is not None, volume_nm3 is not None, clear]
    if sum(given) != 1:
        raise InputError(
            "give exactly one of --mass-kda KDA, --volume-nm3 NM3 or --clear, e.g. "
            f"`cosnet-index classes set-volume {name} --mass-kda 450`"
        )
    volume: ClassVolume | None = None
    if mass_kda is not None:
        volume = volume_of_mass(mass_kda)
    elif volume_nm3 is not None:
        volume = ClassVolume(float(volume_nm3), "user", None, "set by hand")
    result = store.set_class_volume(name, set_name, volume)
    log.info("class %s/%s: volume %s", set_name, name, describe_volume(result.volume))
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
