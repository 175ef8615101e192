"""Step (6) of the build: the manifest (one row per molecule, its mass tier) and the maps file.

``manifest.csv`` (sorted by name) and ``maps.npz`` (each map float16, written atomically and
readable by all) are everything the loader (``library.py``) reads.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from cosnet_index.files import atomic_write
from cosnet_index.simulate.molecules._library_build._maps import density_map, geometry
from cosnet_index.simulate.molecules._library_build._models import Molecule, mass_kda

log = logging.getLogger(__name__)

__all__ = ["TIERS", "tier_of", "write_library"]

TIERS: tuple[tuple[str, float, float], ...] = (
    ("tiny-under-80kDa", 0.0, 80.0),
    ("small-80-200kDa", 80.0, 200.0),
    ("medium-0.2-2MDa", 200.0, 2000.0),
    ("large-2-5MDa", 2000.0, 5000.0),
    ("huge-over-5MDa", 5000.0, np.inf),
)


def tier_of(mass_kda: float) -> str:
    """The mass band of a molecule (``small-80-200kDa``, ``large-2-5MDa``, ...)."""
    for name, lo, hi in TIERS:
        if lo <= mass_kda < hi:
            return name
    return TIERS[-1][0]  # pragma: no cover


def write_library(molecules: list[Molecule], out: Path, reserved: frozenset[str]):  # type: ignore[no-untyped-def]
    import pandas as pd

    rows, maps = [], {}
    for m in molecules:
        assert not set(m.pdb_ids) & reserved, m.name
        volume = density_map(m.coords, m.atomic_number)
        diameter, rg, shape = geometry(m.coords, m.atom_mass, m.recipe)
        mass = mass_kda(m.atom_mass)
        maps[m.name] = volume.astype(np.float16)
        rows.append(
            {
                "name": m.name,
                "pdb_id": ";".join(m.pdb_ids),
                "source_package": m.source_package,
                "source_version": m.source_version,
                "licence": m.licence,
                "source_file": m.source_file,
                "assembly": m.assembly,
                "recipe": m.recipe or "file",
                "n_copies": m.n_copies,
                "min_contact_A": round(m.min_contact_angstrom, 2),
                "mass_kda": round(mass, 1),
                "diameter_nm": round(diameter, 2),
                "rg_nm": round(rg, 2),
                "shape": shape,
                "split": m.split,
                "tier": tier_of(mass),
                "map_voxels": volume.shape[0],
            }
        )
    frame = pd.DataFrame(rows).sort_values("name").reset_index(drop=True)
    frame.to_csv(out / "manifest.csv", index=False)
    with atomic_write(out / "maps.npz") as tmp:
        with open(tmp, "wb") as handle:  # a file object: savez would append .npz to a name
            np.savez_compressed(handle, **maps)
        os.chmod(tmp, 0o644)  # readable by all whatever the umask
    log.info("wrote %d molecules to %s", len(frame), out)
    return frame
