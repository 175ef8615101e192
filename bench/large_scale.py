"""Large molecules at a second scale: the same network on a 2x binned box, on the hard benchmark.

Complexes of 2-5 MDa (33-56 nm across) overflow the model's 32^3 box at 1 nm. This measures, on
the hard benchmark's ``large`` tier (held-out real molecules, ``shifted`` imaging), the shipped
network on

- ``scale 1``: the box as indexed today, 32^3 at 1 nm (32 nm of the molecule);
- ``scale 2``: a 64^3 box at 1 nm Fourier-cropped to 32^3 (2 nm voxels, 64 nm field of view:
  the whole molecule, at half the sampling), exactly as ``index`` resamples a tomogram whose
  voxel size differs from the model's (:func:`cosnet_index.io.boxes.fourier_resample`);

Same episodes (classes, targets) for every method; accuracy with 95% Wilson intervals.

    python bench/large_scale.py --threads 2 --episodes 100      # docs/training.md, large molecules
    python bench/large_scale.py --threads 1 --episodes 20 --quick
"""

from __future__ import annotations

import dataclasses
import functools
import time

import numpy as np
import pandas as pd
from _common import bench_parser, load_model, setup_run


def binned_simulate(simulate, factor: int, box: int):
    """``simulate`` at ``factor * box`` voxels, Fourier-cropped back to ``box``."""
    from cosnet_index.io.boxes import fourier_resample

    def run(names, snr, seed, **kwargs):
        batch = simulate(names, snr, seed, **kwargs)
        volumes = fourier_resample(np.asarray(batch.volumes, dtype=np.float32), box)
        return dataclasses.replace(batch, volumes=volumes)

    return run


def main() -> None:
    parser = bench_parser(__doc__, checkpoint="", quick="1-shot only")
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--ways", default="5,10")
    parser.add_argument("--snrs", default="1000,0.5,0.1")
    args = parser.parse_args()
    setup_run(args)

    from cosnet_index.benchmark import HardConfig, hard_accuracy_table, hard_cell_episodes
    from cosnet_index.benchmark.tiers import hard_tiers
    from cosnet_index.evaluate import accuracy_cells
    from cosnet_index.simulate import SimulationConfig, simulate_subtomograms

    model, info, _ = load_model(args.checkpoint)
    box = model.config.box if hasattr(model.config, "box") else 32
    tier = next(t for t in hard_tiers() if t.name == "large")
    config = HardConfig(
        tiers=("large",),
        ways=tuple(int(w) for w in args.ways.split(",")),
        shots=(1,) if args.quick else (1, 5),
        snrs=tuple(float(s) for s in args.snrs.split(",")),
        episodes=args.episodes,
        baseline_episodes=0,
        collection="box",  # the documented figures: a microscope per box
        seed=args.seed,
    )
    t0 = time.perf_counter()
    frames = []
    sims = {
        "scale 1": functools.partial(simulate_subtomograms, imaging=config.imaging),
        "scale 2": binned_simulate(
            functools.partial(
                simulate_subtomograms,
                imaging=config.imaging,
                config=SimulationConfig(box=2 * box),
            ),
            2,
            box,
        ),
    }
    for method, simulate in sims.items():
        for ways in config.ways:
            if tier.max_ways() < ways:
                continue
            frame = hard_cell_episodes(model, tier, ways, config, simulate)
            frame["method"] = method
            frames.append(frame)
    episodes = pd.concat(frames, ignore_index=True)
    table = hard_accuracy_table(episodes)
    snrs = sorted(table["snr"].unique(), key=lambda s: -s)
    print(
        f"large tier ({len(tier.classes)} held-out molecules), imaging {config.imaging!r}, "
        f"{args.episodes} episodes per cell, seed {args.seed}, model {info.hash[:12]}, "
        f"{time.perf_counter() - t0:.0f} s"
    )
    print("| N-way K-shot | box | " + " | ".join(f"SNR {s:g}" for s in snrs) + " |")
    print("|---|---|" + "---|" * len(snrs))
    for (ways, shots, method), rows in table.groupby(["ways", "shots", "method"]):
        print(
            f"| {ways}-way {shots}-shot | {method} | "
            + " | ".join(accuracy_cells(rows, snrs))
            + " |"
        )


if __name__ == "__main__":
    main()
