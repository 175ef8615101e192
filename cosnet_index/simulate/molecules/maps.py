"""Class density maps by name: real (shipped PDB-derived maps) and procedural (``proc-00042``)."""

from __future__ import annotations

import re

import numpy as np

from cosnet_index.errors import InputError
from cosnet_index.simulate.molecules._density import ClassMap
from cosnet_index.simulate.molecules._procedural import load_procedural
from cosnet_index.simulate.molecules._real import REAL_CLASSES, load_real

__all__ = [
    "REAL_CLASSES",
    "ClassMap",
    "class_info",
    "class_map",
    "is_class_name",
    "procedural_map",
    "procedural_name",
    "real_map",
    "register_class_map",
    "register_library",
]

_PROC = re.compile(r"^proc-(\d+)$")
DEFAULT_RESOLUTION_NM = 4.0
_REGISTERED: dict[tuple[str, float, float], ClassMap] = {}


def register_class_map(info: ClassMap, resolution_nm: float = DEFAULT_RESOLUTION_NM) -> None:
    """Make a custom map (from :func:`map_from_mrc_file` or :func:`map_from_atomic_model`)
    usable by name in every simulator function, at its voxel size and ``resolution_nm``.

    Raises:
        InputError: the name is a built-in class or already registered with another map.
    """
    key = (info.name, float(info.voxel_size_nm), float(resolution_nm))
    if info.name in REAL_CLASSES or _PROC.match(info.name):
        raise InputError(
            f"{info.name!r} is a built-in class name; register the map under another name"
        )
    if key in _REGISTERED and _REGISTERED[key] is not info:
        raise InputError(f"a class {info.name!r} is already registered; use another name")
    _REGISTERED[key] = info


def procedural_name(class_id: int) -> str:
    """The class name of procedural class ``class_id``: ``proc-00042``."""
    if class_id < 0:
        raise InputError(f"procedural class ids are >= 0, got {class_id}")
    return f"proc-{int(class_id):05d}"


def is_class_name(name: str) -> bool:
    """True for a real class stem, ``proc-<digits>``, a library molecule or a registered map."""
    registered = any(key[0] == name for key in _REGISTERED)
    return (
        name in REAL_CLASSES
        or _PROC.match(name) is not None
        or registered
        or _is_library_name(name)
    )


def _is_library_name(name: str) -> bool:
    """True for a molecule of the real-molecule library (``lib-...``, see ``library.py``)."""
    if not name.startswith("lib-"):
        return False
    from cosnet_index.simulate.molecules.library import library_names

    try:
        return name in library_names()
    except InputError:  # no library built or shipped
        return False


def class_info(
    name: str, voxel_size_nm: float = 1.0, resolution_nm: float = DEFAULT_RESOLUTION_NM
) -> ClassMap:
    """The cached :class:`ClassMap` (density, mask threshold, radius, mass) of a class.

    Raises:
        InputError: ``name`` is neither a real class nor ``proc-<id>``.
    """
    voxel_size_nm, resolution_nm = float(voxel_size_nm), float(resolution_nm)
    if voxel_size_nm <= 0:
        raise InputError(f"voxel_size_nm must be > 0, got {voxel_size_nm}")
    if name in REAL_CLASSES:
        return load_real(name, voxel_size_nm, resolution_nm)
    registered = _REGISTERED.get((name, voxel_size_nm, resolution_nm))
    if registered is not None:
        return registered
    if _is_library_name(name):
        from cosnet_index.simulate.molecules.library import library_class

        return library_class(name, voxel_size_nm, resolution_nm)
    match = _PROC.match(name)
    if match is None:
        raise InputError(
            f"unknown class {name!r}: use a real class ({', '.join(REAL_CLASSES)}), "
            "a procedural one like 'proc-00042' or a library molecule (library_names())"
        )
    return load_procedural(int(match.group(1)), voxel_size_nm, resolution_nm)


def real_map(name: str, voxel_size_nm: float = 1.0) -> np.ndarray:
    """A shipped real map at ``voxel_size_nm``: (d, d, d) float32, molecule positive.

    Resampled with an anti-alias low-pass, low-passed to 4 nm, centre of mass on voxel ``d // 2``,
    scaled to mean 1 inside the molecular volume. Cached; the returned array is a copy.

    Raises:
        InputError: unknown name.
    """
    if name not in REAL_CLASSES:
        raise InputError(f"unknown real class {name!r}; choose one of {', '.join(REAL_CLASSES)}")
    return class_info(name, voxel_size_nm).density.copy()


def procedural_map(class_id: int, voxel_size_nm: float = 1.0) -> np.ndarray:
    """Procedural class ``class_id`` (seeded, distinct per id): (d, d, d) float32, positive."""
    return class_info(procedural_name(class_id), voxel_size_nm).density.copy()


def class_map(name: str, voxel_size_nm: float = 1.0) -> np.ndarray:
    """The map of a real class stem or of ``proc-<id>``: (d, d, d) float32, positive."""
    return class_info(name, voxel_size_nm).density.copy()


def register_library(
    split: str | None = None, voxel_size_nm: float = 1.0, resolution_nm: float = 4.0
) -> tuple[str, ...]:
    """Register library molecules as simulator classes (:func:`register_class_map`).

    Not needed for names alone (:func:`class_info` finds ``lib-*`` names by itself); use it to
    build the maps once up front.

    Args:
        split: ``train``, ``heldout`` or None (all).
        voxel_size_nm: voxel size of the simulation.
        resolution_nm: its resolution (>= 2 nm).

    Returns:
        the registered names, e.g. for ``simulate_subtomograms(names=...)``.

    Raises:
        InputError: unknown split, or a resolution finer than 2 nm.
    """
    from cosnet_index.simulate.molecules.library import library_class, library_names

    names = library_names(split)
    for name in names:
        register_class_map(library_class(name, voxel_size_nm, resolution_nm), resolution_nm)
    return names
