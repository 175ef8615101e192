"""The hard benchmark's classes: held-out real molecules in a size-matched and a large tier.

The truth is the real-molecule library's manifest (name, PDB id, mass, diameter, train/held-out
split); the tiers are derived from it here:

- ``size-matched``: held-out molecules of 80-200 kDa. An episode draws its N classes inside one
  *mass window* (every mass within a factor 1.5 of the lightest), so size alone cannot tell
  them apart.
- ``large``: held-out complexes of 2-5 MDa, whose diameters (20-40 nm) approach or exceed the
  32-voxel box at 1 nm; any N of them make an episode.

Before the library exists (or without it) the tiers fall back to the held-out real maps of
:mod:`cosnet_index.simulate.split` whose masses fit (see :func:`benchmark_molecules`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from cosnet_index.errors import InputError

__all__ = [
    "TIER_NAMES",
    "Tier",
    "benchmark_molecules",
    "draw_classes",
    "hard_tiers",
    "mass_windows",
]

logger = logging.getLogger(__name__)

MOLECULE_COLUMNS = ("name", "pdb_id", "mass_kda", "diameter_nm", "split", "source")


@dataclass(frozen=True)
class Tier:
    """One tier of the hard benchmark.

    Attributes:
        name: ``size-matched`` or ``large``.
        classes: held-out class names (registered with the simulator), sorted by mass.
        masses_kda: the mass of each class, in the order of ``classes``.
        mass_ratio: an episode's classes lie within this factor of each other's masses
            (None: any classes of the tier).
        mass_range_kda: the tier's mass range (inclusive).
    """

    name: str
    classes: tuple[str, ...]
    masses_kda: tuple[float, ...]
    mass_ratio: float | None
    mass_range_kda: tuple[float, float]

    def max_ways(self) -> int:
        """The largest N for which an episode can be drawn."""
        windows = mass_windows(self.masses_kda, self.mass_ratio)
        return max((len(w) for w in windows), default=0)


TIER_SPECS: dict[str, tuple[tuple[float, float], float | None]] = {
    "size-matched": ((80.0, 200.0), 1.5),
    "large": ((2000.0, 5000.0), None),
}
TIER_NAMES: tuple[str, ...] = tuple(TIER_SPECS)


def _library_molecules() -> pd.DataFrame | None:
    """The real-molecule library's held-out rows, or None without a library.

    The simulator finds ``lib-*`` class names by itself, at any voxel size and resolution.
    """
    try:
        from cosnet_index.simulate.molecules.library import library_manifest

        manifest = library_manifest()
    except (ImportError, InputError) as exc:  # no library module, or no built library
        logger.info("no real-molecule library: %s", exc)
        return None
    rows = manifest[manifest["split"] == "heldout"].copy()
    rows["source"] = "library"
    return rows[list(MOLECULE_COLUMNS)].reset_index(drop=True)


def _split_molecules() -> pd.DataFrame:
    """The held-out real maps shipped with the simulator (cosnet_index/simulate/split.py)."""
    from cosnet_index.simulate import class_info
    from cosnet_index.simulate.molecules import REAL_MASS_KDA
    from cosnet_index.simulate.split import HELDOUT_REAL

    rows = []
    for name in HELDOUT_REAL:
        info = class_info(name)
        rows.append(
            {
                "name": name,
                "pdb_id": name.rsplit("_", 1)[-1].upper(),
                "mass_kda": REAL_MASS_KDA[name],
                "diameter_nm": 2.0 * info.radius_voxels * info.voxel_size_nm,
                "split": "heldout",
                "source": "split.py",
            }
        )
    return pd.DataFrame(rows, columns=list(MOLECULE_COLUMNS))


def benchmark_molecules(source: str = "auto") -> pd.DataFrame:
    """Held-out real molecules the benchmark may use, one row each.

    Args:
        source: ``library`` (the real-molecule library's held-out molecules),
            ``split`` (the five held-out real maps of ``split.py``), or ``auto`` (the library when
            it is installed, else ``split``).

    Returns:
        Columns name, pdb_id, mass_kda, diameter_nm, split (always ``heldout``), source.

    Raises:
        InputError: unknown ``source``, or ``library`` asked for but not available.
    """
    if source not in ("auto", "library", "split"):
        raise InputError(f"unknown molecule source {source!r}: use auto, library or split")
    if source in ("auto", "library"):
        rows = _library_molecules()
        if rows is not None:
            return rows
        if source == "library":
            raise InputError(
                "the real-molecule library (cosnet_index.simulate.molecules.library: manifest.csv "
                "and maps.npz) is not available; build it or use --molecules split"
            )
        logger.warning("no real-molecule library: the hard benchmark uses split.py's held-out maps")
    return _split_molecules()


def hard_tiers(
    molecules: pd.DataFrame | None = None,
    names: Sequence[str] = TIER_NAMES,
    max_classes: int | None = None,
) -> tuple[Tier, ...]:
    """The benchmark's tiers from held-out molecules (default: :func:`benchmark_molecules`).

    Args:
        molecules: rows with name, mass_kda (and split; non-held-out rows are dropped).
        names: which tiers, in order.
        max_classes: keep at most this many classes per tier (the lightest; for quick tests).

    Raises:
        InputError: an unknown tier name.
    """
    unknown = [n for n in names if n not in TIER_SPECS]
    if unknown:
        raise InputError(f"unknown tier(s) {unknown}: choose from {', '.join(TIER_NAMES)}")
    rows = benchmark_molecules() if molecules is None else molecules
    if "split" in rows:
        rows = rows[rows["split"] == "heldout"]
    rows = rows.sort_values(["mass_kda", "name"])
    tiers = []
    for name in names:
        (lo, hi), ratio = TIER_SPECS[name]
        inside = rows[(rows["mass_kda"] >= lo) & (rows["mass_kda"] <= hi)]
        if max_classes is not None:
            inside = inside.iloc[:max_classes]
        tiers.append(
            Tier(
                name=name,
                classes=tuple(str(c) for c in inside["name"]),
                masses_kda=tuple(float(m) for m in inside["mass_kda"]),
                mass_ratio=ratio,
                mass_range_kda=(lo, hi),
            )
        )
    return tuple(tiers)


def mass_windows(masses_kda: Sequence[float], ratio: float | None) -> list[np.ndarray]:
    """Groups of class indices whose masses lie within ``ratio`` of each other.

    One window per class: the classes from its mass up to ``ratio`` times it (so every pair of a
    window is within the factor). ``ratio=None``: one window of every class.
    """
    masses = np.asarray(masses_kda, dtype=np.float64)
    if ratio is None:
        return [np.arange(len(masses))] if len(masses) else []
    return [np.flatnonzero((masses >= m) & (masses <= m * ratio)) for m in masses]


def draw_classes(tier: Tier, ways: int, rng: np.random.Generator) -> np.ndarray:
    """Indices into ``tier.classes`` of one episode's ``ways`` classes.

    A window with at least ``ways`` classes is drawn uniformly, then ``ways`` of its classes.

    Raises:
        InputError: no window of the tier holds ``ways`` classes.
    """
    windows = [w for w in mass_windows(tier.masses_kda, tier.mass_ratio) if len(w) >= ways]
    if not windows:
        raise InputError(
            f"tier {tier.name!r} has no {ways} classes within a mass factor "
            f"{tier.mass_ratio} ({len(tier.classes)} classes); lower --ways"
        )
    window = windows[int(rng.integers(len(windows)))]
    return rng.choice(window, size=ways, replace=False)
