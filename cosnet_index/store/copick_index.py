"""``copick index``: index the tomograms of a copick project from its picks.

The runs' tomograms (one voxel spacing, one type) are written once as MRC files under
``STORE/copick/<project>/`` (indexing reads memory-mapped MRC, and segmenting re-reads boxes
from there later), the picks become ``STORE/copick/<project>/picks.csv`` (tomogram = run
name, x, y, z voxels, copick object/user/session kept as extra columns), and
:func:`~cosnet_index.store.indexer.index_tomograms` does the rest: checks, resume, no
duplicates.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cosnet_index.files import atomic_write
from cosnet_index.io.copick_project import materialise_tomograms, open_project, read_picks
from cosnet_index.store.indexer import IndexSummary, index_tomograms
from cosnet_index.store.store import Store

__all__ = ["copick_cache_dir", "index_copick"]


def copick_cache_dir(store: Store, root: Any) -> Path:
    """``STORE/copick/<project name>``: where a project's MRC copies and picks table live."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", str(getattr(root.config, "name", "") or "project"))
    return Path(store.path) / "copick" / name


def index_copick(
    store: Store,
    config_path: str | os.PathLike[str],
    *,
    runs: Sequence[str] | None = None,
    voxel_spacing: float = 10.0,
    tomo_type: str = "wbp",
    pick_object: str | None = None,
    pick_user: str | None = None,
    pick_session: str | None = None,
    **index_options: Any,
) -> IndexSummary:
    """Index a copick project's runs from their picks.

    Args:
        store: an open, writable store.
        config_path: the project's copick configuration (JSON).
        runs: run names (default: every run).
        voxel_spacing: the tomograms' voxel spacing in angstrom.
        tomo_type: the tomogram type (``wbp``, ``denoised``, ...).
        pick_object, pick_user, pick_session: which picks (default: every pick not written by
            cosnet-index).
        index_options: passed to :func:`~cosnet_index.store.indexer.index_tomograms`
            (``invert_contrast``, ``contrast_check``, ``edge``, ``batch_size``, ...).

    Raises:
        InputError: copick missing, an unknown run, voxel spacing or tomogram type, no picks;
            and whatever ``index_tomograms`` raises (before the store changes).
    """
    root = open_project(config_path)
    picks = read_picks(
        root,
        runs=runs,
        voxel_spacing=voxel_spacing,
        pick_object=pick_object,
        pick_user=pick_user,
        pick_session=pick_session,
    )
    with_picks = sorted(set(picks["tomogram"]))
    folder = copick_cache_dir(store, root)
    paths = materialise_tomograms(
        root, folder, runs=with_picks, voxel_spacing=voxel_spacing, tomo_type=tomo_type
    )
    coords = folder / "picks.csv"
    with atomic_write(coords) as tmp:
        picks.to_csv(tmp, index=False)
    return index_tomograms(store, paths, coords, **index_options)
