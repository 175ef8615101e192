"""The build: steps (1) to (6) in order, from the pinned sources to the manifest and the maps."""

from __future__ import annotations

import os
from pathlib import Path

from cosnet_index.errors import InputError
from cosnet_index.simulate.molecules._library_build._assemblies import build_recipes
from cosnet_index.simulate.molecules._library_build._manifest import write_library
from cosnet_index.simulate.molecules._library_build._models import read_entries
from cosnet_index.simulate.molecules._library_build._split import read_reserved

__all__ = ["build_library"]


def build_library(
    out_dir: str | os.PathLike[str],
    reserved_path: str | os.PathLike[str],
    cache_dir: str | os.PathLike[str] | None = None,
):  # type: ignore[no-untyped-def]
    """Build ``manifest.csv`` and ``maps.npz`` into ``out_dir``; return the manifest DataFrame.

    Args:
        out_dir: the library folder (created); point ``$COSNET_MOLECULES`` at it to use it.
        reserved_path: RESERVED.txt, PDB entries never to use.
        cache_dir: download cache (default ``out_dir/cache``).

    Raises:
        InputError: RESERVED.txt missing, gemmi missing, or a download failed.
    """
    try:
        import gemmi  # noqa: F401
    except ImportError:
        raise InputError(
            "building the library needs gemmi: pip install 'cosnet-index[pdb]'"
        ) from None
    reserved_path = Path(reserved_path)
    if not reserved_path.is_file():
        raise InputError(f"{reserved_path} not found: give the path of RESERVED.txt")
    reserved = read_reserved(reserved_path)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cache = Path(cache_dir) if cache_dir else out / "cache"

    molecules = read_entries(cache, reserved)  # steps (1) to (3), and (5) for the entries
    molecules += build_recipes(molecules)  # step (4)
    return write_library(molecules, out, reserved)  # step (6)
