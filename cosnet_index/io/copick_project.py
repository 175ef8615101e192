"""copick projects in and out: tomograms and picks to index, picks and segmentations back.

copick (``pip install 'cosnet-index[copick]'``) keeps a project as a JSON configuration over a
static and an overlay root: per run, OME-Zarr tomograms per voxel spacing and type, JSON picks
per (object, user, session) and Zarr segmentations. Conventions (copick's, checked by the
round-trip test):

- arrays are ``(z, y, x)``; pick locations are in **angstrom from the volume's corner**, so
  ``voxel index = location / voxel spacing`` (this package's x, y, z voxels directly);
- a run's name is its tomogram's name in the store.

In: :func:`materialise_tomograms` writes each run's tomogram (one voxel spacing, one type) as an
MRC file (slab by slab, atomically; reused when present with the same shape and voxel size)
because indexing reads memory-mapped MRC; :func:`read_picks` gives the picks as a coordinate
table. Out: :func:`write_picks` writes a classify or search table as picks, one object per class
(created in the configuration when missing), user ``cosnet-index``, one session per call, the
probability as the score; :func:`write_segmentation` writes a label volume of ``segment --merge``
as a multilabel segmentation whose voxels hold the copick label of their class. An object this
package creates gets, when the class's molecular volume is known, the ``radius`` (angstrom) of
the sphere of that volume: the one size field copick's objects carry (objects already in the
configuration keep theirs). The configuration file changes only by the objects added
(:func:`~cosnet_index.io._copick_config.add_objects_to_config`); every other field stays as it was.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cosnet_index.errors import InputError
from cosnet_index.files import atomic_write, reserve_space
from cosnet_index.io._copick_config import add_objects_to_config

__all__ = [
    "COPICK_USER",
    "add_objects_to_config",
    "copick_object_name",
    "materialise_tomograms",
    "next_session_id",
    "open_project",
    "read_picks",
    "sphere_radius_angstrom",
    "write_picks",
    "write_segmentation",
]

logger = logging.getLogger(__name__)

COPICK_USER = "cosnet-index"
"""The copick user id of everything this package writes."""

_SLAB = 32  # z slices copied at a time from Zarr to MRC


def open_project(config_path: str | os.PathLike[str]) -> Any:
    """The copick root of a project configuration (JSON).

    Raises:
        InputError: copick is not installed, or the configuration cannot be read.
    """
    root_logger = logging.getLogger()
    handlers, level = list(root_logger.handlers), root_logger.level
    try:
        import copick
    except ImportError:
        raise InputError(
            "copick projects need the copick package: pip install 'cosnet-index[copick]'"
        ) from None
    finally:  # importing copick installs its own root log handler at INFO: undo that
        root_logger.handlers[:] = handlers
        root_logger.setLevel(level)
    path = Path(config_path)
    if not path.is_file():
        raise InputError(f"copick configuration {path} does not exist; give the project's JSON")
    try:
        return copick.from_file(str(path))
    except (ValueError, OSError, KeyError) as exc:
        raise InputError(f"cannot open copick project {path}: {exc}") from None


def _runs(root: Any, names: Sequence[str] | None) -> list[Any]:
    runs = list(root.runs)
    if not names:
        if not runs:
            raise InputError("the copick project has no runs")
        return runs
    by_name = {run.name: run for run in runs}
    missing = [n for n in names if n not in by_name]
    if missing:
        raise InputError(
            f"copick run(s) {missing} not in the project; it has {sorted(by_name)[:10]}"
        )
    return [by_name[n] for n in names]


def materialise_tomograms(
    root: Any,
    out_dir: str | os.PathLike[str],
    *,
    runs: Sequence[str] | None = None,
    voxel_spacing: float = 10.0,
    tomo_type: str = "wbp",
) -> list[Path]:
    """Write each run's tomogram as ``out_dir/<run>.mrc`` (header voxel size = the spacing).

    A file already there with the same shape and voxel size is reused (delete it to refresh).

    Raises:
        InputError: a run without that voxel spacing or tomogram type (the message lists what
            the run has).
    """
    import mrcfile

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for run in _runs(root, runs):
        spacing = run.get_voxel_spacing(float(voxel_spacing))
        if spacing is None:
            have = sorted(float(vs.voxel_size) for vs in run.voxel_spacings)
            raise InputError(
                f"copick run {run.name} has no voxel spacing {voxel_spacing:g} A (it has "
                f"{have}); pick one with --voxel-spacing"
            )
        found = spacing.get_tomograms(tomo_type)
        tomogram = found[0] if found else None
        if tomogram is None:
            have = sorted(t.tomo_type for t in spacing.tomograms)
            raise InputError(
                f"copick run {run.name} has no {tomo_type!r} tomogram at {voxel_spacing:g} A "
                f"(it has {have}); pick one with --tomo-type"
            )
        array = tomogram.zarr()  # lazily read
        import zarr

        level = zarr.open(array, mode="r")["0"]
        shape = tuple(int(s) for s in level.shape)
        path = out / f"{run.name}.mrc"
        if _same_mrc(path, shape, float(voxel_spacing)):
            logger.info("copick run %s: reusing %s", run.name, path)
            paths.append(path)
            continue
        with atomic_write(path) as tmp:
            with mrcfile.new_mmap(tmp, shape=shape, mrc_mode=2, overwrite=True) as mrc:
                reserve_space(tmp)  # a full disk: WriteError now, not SIGBUS in the loop
                for z0 in range(0, shape[0], _SLAB):
                    mrc.data[z0 : z0 + _SLAB] = np.asarray(level[z0 : z0 + _SLAB], np.float32)
                mrc.voxel_size = float(voxel_spacing)
                mrc.update_header_stats()
        logger.info("copick run %s: wrote %s %s", run.name, path, shape)
        paths.append(path)
    return paths


def _same_mrc(path: Path, shape: tuple[int, ...], voxel: float) -> bool:
    import mrcfile

    if not path.is_file():
        return False
    try:
        with mrcfile.mmap(path, mode="r", permissive=True) as mrc:
            same_shape = tuple(int(s) for s in mrc.data.shape) == shape
            return same_shape and bool(np.isclose(float(mrc.voxel_size.x), voxel))
    except (ValueError, OSError):
        return False


def read_picks(
    root: Any,
    *,
    runs: Sequence[str] | None = None,
    voxel_spacing: float = 10.0,
    pick_object: str | None = None,
    pick_user: str | None = None,
    pick_session: str | None = None,
) -> pd.DataFrame:
    """Picks of the runs as ``tomogram, x, y, z`` (voxels at ``voxel_spacing``) + copick columns.

    Picks written by this package (user ``cosnet-index``) are left out unless ``pick_user`` asks
    for them. Extra columns: ``copick_object``, ``copick_user``, ``copick_session``.

    Raises:
        InputError: no pick matches in any run.
    """
    frames = []
    for run in _runs(root, runs):
        for picks in run.get_picks(
            object_name=pick_object, user_id=pick_user, session_id=pick_session
        ):
            if pick_user is None and picks.user_id == COPICK_USER:
                continue
            xyz_angstrom, _ = picks.numpy()
            if len(xyz_angstrom) == 0:
                continue
            xyz = np.asarray(xyz_angstrom, dtype=np.float64) / float(voxel_spacing)
            frames.append(
                pd.DataFrame(
                    {
                        "tomogram": run.name,
                        "x": xyz[:, 0],
                        "y": xyz[:, 1],
                        "z": xyz[:, 2],
                        "copick_object": picks.pickable_object_name,
                        "copick_user": picks.user_id,
                        "copick_session": picks.session_id,
                    }
                )
            )
    if not frames:
        wanted = ", ".join(
            f"{k} {v!r}"
            for k, v in (("object", pick_object), ("user", pick_user), ("session", pick_session))
            if v is not None
        )
        raise InputError(
            f"no copick picks{' with ' + wanted if wanted else ''} in the chosen runs; check "
            "--pick-object/--pick-user (copick picks show them)"
        )
    return pd.concat(frames, ignore_index=True)


def copick_object_name(class_name: str) -> str:
    """The copick object name of a class (copick allows no ``_``: it becomes ``-``)."""
    from copick.util.escape import sanitize_name

    return str(sanitize_name(str(class_name), suppress_warnings=True))


def next_session_id(root: Any, user_id: str = COPICK_USER) -> str:
    """The smallest non-negative integer (as text) no picks or segmentations of ``user_id`` use."""
    used = set()
    for run in root.runs:
        used |= {p.session_id for p in run.get_picks(user_id=user_id)}
        used |= {s.session_id for s in run.get_segmentations(user_id=user_id)}
    k = 0
    while str(k) in used:
        k += 1
    return str(k)


def sphere_radius_angstrom(volume_nm3: float) -> float:
    """The radius in angstrom of the sphere of ``volume_nm3`` (copick's object size)."""
    return 10.0 * float(3.0 * volume_nm3 / (4.0 * np.pi)) ** (1.0 / 3.0)


def _ensure_objects(
    root: Any,
    class_names: Sequence[str],
    config_path: str | None,
    volumes_nm3: Mapping[str, float] | None = None,
) -> dict:
    names = {c: copick_object_name(c) for c in class_names}
    clash = pd.Series(list(names.values())).duplicated()
    if clash.any():
        raise InputError(
            f"classes {sorted(names)} map to the same copick object names {sorted(names.values())}"
            " (copick turns '_' into '-'); rename a class with `classes rename`"
        )
    added = []
    for class_name, name in names.items():
        if root.get_object(name) is None:
            volume = (volumes_nm3 or {}).get(class_name)
            size = {} if volume is None else {"radius": round(sphere_radius_angstrom(volume), 1)}
            root.new_object(name, is_particle=True, **size)
            label = int(root.get_object(name).label)
            added.append({"name": name, "is_particle": True, "label": label, **size})
    if added and config_path is not None:
        add_objects_to_config(config_path, added)
    return {c: root.get_object(n) for c, n in names.items()}


def write_picks(
    root: Any,
    table: pd.DataFrame,
    voxel_sizes: Mapping[str, float],
    *,
    session_id: str,
    config_path: str | os.PathLike[str] | None = None,
    user_id: str = COPICK_USER,
    unknown: str = "unknown",
    volumes_nm3: Mapping[str, float] | None = None,
) -> dict[tuple[str, str], int]:
    """Write a classify/search table as copick picks: one object per class, per run.

    Args:
        root: the copick root.
        table: columns ``tomogram, x, y, z`` (voxels), ``class``, ``probability``.
        voxel_sizes: tomogram name -> its voxel size in angstrom (the store's record).
        session_id: the copick session of this call (picks of the same object, user and session
            are replaced: re-running with the same session never duplicates).
        config_path: the configuration file, rewritten when classes become new objects.
        user_id: the copick user (default ``cosnet-index``).
        unknown: the open-set label; its rows are not written.
        volumes_nm3: class -> molecular volume: a new object gets the radius of its sphere.

    Returns:
        ``(run, object) -> picks written``.

    Raises:
        InputError: missing columns, no tomogram that is a run of the project (rows of other
            tomograms are left out with a warning), or class names that clash as copick object
            names.
    """
    need = {"tomogram", "x", "y", "z", "class", "probability"}
    if not need <= set(table.columns):
        raise InputError(
            f"the table lacks columns {sorted(need - set(table.columns))}; give a classify "
            "result or search hits"
        )
    rows = table[table["class"].astype(str) != unknown]
    runs = {run.name: run for run in root.runs}
    missing = sorted(set(rows["tomogram"].astype(str)) - set(runs))
    if missing and len(missing) == rows["tomogram"].nunique():
        raise InputError(
            f"no tomogram of the table is a run of the copick project (tomograms {missing[:5]})"
        )
    if missing:
        logger.warning("left out tomograms that are not copick runs: %s", ", ".join(missing))
        rows = rows[~rows["tomogram"].astype(str).isin(missing)]
    objects = _ensure_objects(
        root, sorted(set(rows["class"].astype(str))), config_path, volumes_nm3
    )
    written = {}
    for (tomogram, class_name), group in rows.groupby(["tomogram", "class"], sort=True):
        voxel = float(voxel_sizes[str(tomogram)])
        xyz = group[["x", "y", "z"]].to_numpy(np.float64) * voxel  # angstrom from the corner
        name = objects[str(class_name)].name
        picks = runs[str(tomogram)].new_picks(name, session_id, user_id, exist_ok=True)
        picks.from_numpy(
            xyz, np.tile(np.eye(4), (len(xyz), 1, 1)), scores=group["probability"].to_numpy(float)
        )
        written[str(tomogram), name] = len(xyz)
    return written


def write_segmentation(
    root: Any,
    run_name: str,
    labels_zyx: np.ndarray,
    label_class: Mapping[int, str],
    voxel_size_angstrom: float,
    *,
    session_id: str,
    config_path: str | os.PathLike[str] | None = None,
    name: str = "cosnet-index",
    user_id: str = COPICK_USER,
    volumes_nm3: Mapping[str, float] | None = None,
) -> dict[str, int]:
    """Write a ``segment --merge`` label volume as a copick multilabel segmentation.

    Args:
        labels_zyx: the label volume (0 background, else a hit's label).
        label_class: hit label -> class name (``segments.parquet``).
        voxel_size_angstrom: the tomogram's voxel size.
        volumes_nm3: class -> molecular volume: a new object gets the radius of its sphere.

    Returns:
        class -> voxels written with its copick object label.

    Raises:
        InputError: the run is not in the project.
    """
    runs = {run.name: run for run in root.runs}
    if run_name not in runs:
        raise InputError(f"tomogram {run_name!r} is not a run of the copick project")
    classes = sorted(set(label_class.values()))
    objects = _ensure_objects(root, classes, config_path, volumes_nm3)
    lookup = np.zeros(int(max(label_class, default=0)) + 1, dtype=np.uint8)
    for label, class_name in label_class.items():
        lookup[int(label)] = int(objects[class_name].label)
    labels = np.asarray(labels_zyx)
    if labels.max(initial=0) >= len(lookup):
        raise InputError("the label volume holds labels that segments.parquet does not list")
    out = lookup[labels.astype(np.int64)]  # (z, y, x) copick object labels
    segmentation = runs[run_name].new_segmentation(
        float(voxel_size_angstrom), name, session_id, is_multilabel=True, user_id=user_id,
        exist_ok=True,
    )  # fmt: skip
    segmentation.from_numpy(out)
    return {c: int((out == objects[c].label).sum()) for c in classes}
