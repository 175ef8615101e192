"""How often the contrast and voxel-size checks of ``index`` are right, on simulated tomograms.

Tomograms of held-out molecules of the hard benchmark's two tiers (mixed sizes, 100 picks each,
SNR 0.5) are simulated with the ``paper``, ``realistic`` and ``shifted`` imaging presets. Each
is checked (``io/plausibility.estimate_plausibility``, the picks as coordinates) four ways:
as written, with its voxels negated (bright molecules), with a header voxel size 4x too small
(2.5 A for 10 A data: a binned tomogram whose header kept the unbinned pixel size) and 4x too
large (40 A), and with as many picks drawn at random positions (right answer: ``unclear``).
Counted: the contrast verdict (``dark``/``bright``/``unclear``) and whether the
size warning fires. A realistic-preset tomogram can itself come out inverted (the preset
inverts 10% of them): its "as written" truth is then bright.

    nice -n 10 python bench/plausibility.py --tomograms 6     # docs/ecosystem.md
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import mrcfile
import numpy as np
import pandas as pd


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tomograms", type=int, default=6, help="per imaging preset")
    parser.add_argument("--presets", default="paper,realistic,shifted")
    parser.add_argument("--particles", type=int, default=100)
    parser.add_argument("--snr", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from cosnet_index.benchmark.tiers import hard_tiers
    from cosnet_index.io import open_tomogram
    from cosnet_index.io.plausibility import estimate_plausibility
    from cosnet_index.simulate import simulate_tomogram

    classes = [c for tier in hard_tiers() for c in tier.classes]
    t0 = time.perf_counter()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for preset in args.presets.split(","):
            for k in range(args.tomograms):
                seed = args.seed + 1000 * k
                sim = simulate_tomogram(
                    folder, f"{preset}{k}", classes, args.particles, args.snr, seed,
                    shape=(96, 256, 256), imaging=preset, write_tables=False,
                )  # fmt: skip
                xyz = sim.particles[["x", "y", "z"]].to_numpy(np.float64)
                inverted_by_preset = _inverted(sim.particles)
                with mrcfile.open(sim.path) as mrc:
                    data = np.array(mrc.data, dtype=np.float32)
                    voxel = float(mrc.voxel_size.x)
                rng = np.random.default_rng(seed)
                nowhere = rng.uniform([0, 0, 20], [255, 255, 75], size=xyz.shape)  # x, y, z
                for case, sign, header, picks in (
                    ("as written", 1.0, voxel, xyz),
                    ("negated", -1.0, voxel, xyz),
                    ("header 4x too small", 1.0, voxel / 4, xyz),
                    ("header 4x too large", 1.0, voxel * 4, xyz),
                    ("random picks", 1.0, voxel, nowhere),
                ):
                    path = folder / f"{preset}{k}-{len(rows)}.mrc"
                    with mrcfile.new(path, overwrite=True) as mrc:
                        mrc.set_data(sign * data)
                        mrc.voxel_size = header
                    with open_tomogram(path) as tomogram:
                        found = estimate_plausibility(tomogram.info(), picks, seed=args.seed)
                    truth = "dark" if (sign > 0) != inverted_by_preset else "bright"
                    if case == "random picks":
                        truth = "unclear"  # nothing to see: no verdict is the right answer
                    rows.append(
                        {
                            "preset": preset,
                            "case": case,
                            "truth": truth,
                            "verdict": found.contrast,
                            "t": found.t,
                            "diameter_angstrom": found.diameter_angstrom,
                            "size_warning": found.size_problem is not None,
                        }
                    )
                    path.unlink()
                sim.path.unlink()
    frame = pd.DataFrame(rows)
    print(
        f"{args.tomograms} tomograms per preset, {args.particles} picks each, SNR {args.snr:g}, "
        f"seed {args.seed}, {time.perf_counter() - t0:.0f} s"
    )
    print("| preset | case | n | expected | dark | bright | unclear | as expected | size warning |")
    print("|---|---|---|---|---|---|---|---|---|")
    for (preset, case), cell in frame.groupby(["preset", "case"], sort=False):
        counts = cell["verdict"].value_counts()
        expected = "/".join(sorted(set(cell["truth"])))
        diameters = cell["diameter_angstrom"].replace([np.inf], np.nan).dropna()
        median = f", median {diameters.median():.0f} A" if len(diameters) else ""
        print(
            f"| {preset} | {case} | {len(cell)} | {expected} | {counts.get('dark', 0)} | "
            f"{counts.get('bright', 0)} | {counts.get('unclear', 0)} | "
            f"{int((cell['verdict'] == cell['truth']).sum())} | "
            f"{int(cell['size_warning'].sum())}{median} |"
        )


def _inverted(particles: pd.DataFrame) -> bool:
    """Whether the simulator inverted this tomogram's contrast (realistic preset, 10%)."""
    import json

    if "imaging" not in particles.columns or particles.empty:
        return False
    return bool(json.loads(particles["imaging"].iloc[0]).get("invert_contrast", False))


if __name__ == "__main__":
    main()
