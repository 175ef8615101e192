"""The volume ``classes add --map`` records without a mass or contour, against the mass volume.

For every map of the project that has a known mass (the 10 shipped PDB-derived maps of
``simulate/structures``, 0.5 nm voxels; every real-molecule library map, written as an MRC at
1 nm voxels), :func:`cosnet_index.classes.volume_of_map` with the estimated contour, divided by
``mass / 0.81 Da/A^3``. About 10 s on one core.

    python bench/map_volume.py
"""

from __future__ import annotations

import logging
import tempfile
from importlib import resources
from pathlib import Path

import mrcfile
import numpy as np


def main() -> None:
    from cosnet_index.classes import volume_of_map
    from cosnet_index.geometry import mass_kda_to_volume_nm3
    from cosnet_index.simulate.molecules._real import REAL_MASS_KDA
    from cosnet_index.simulate.molecules.library import library_manifest, library_map

    logging.basicConfig(level=logging.WARNING)
    folder = resources.files("cosnet_index.simulate") / "structures"
    shipped = []
    for name, kda in REAL_MASS_KDA.items():
        with resources.as_file(folder / f"{name}.mrc") as path:
            shipped.append(volume_of_map(path).volume_nm3 / mass_kda_to_volume_nm3(kda))
    print(
        f"{len(shipped)} shipped maps: estimated / mass volume {min(shipped):.2f}-"
        f"{max(shipped):.2f}, median {np.median(shipped):.2f}"
    )
    manifest = library_manifest()
    ratios = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "map.mrc"
        for name, kda in zip(manifest["name"], manifest["mass_kda"], strict=True):
            with mrcfile.new(path, overwrite=True) as mrc:
                mrc.set_data(library_map(name, 1.0).astype(np.float32))
                mrc.voxel_size = 10.0
            ratios.append(volume_of_map(path).volume_nm3 / mass_kda_to_volume_nm3(kda))
    ratio = np.array(ratios)
    lo, hi = np.quantile(ratio, [0.1, 0.9])
    print(
        f"{len(ratio)} library maps: median {np.median(ratio):.2f}, 10th-90th percentile "
        f"{lo:.2f}-{hi:.2f}"
    )
    for tier, rows in manifest.assign(ratio=ratio).groupby("tier"):
        print(f"  {tier}: median {rows['ratio'].median():.2f} ({len(rows)} maps)")


if __name__ == "__main__":
    main()
