"""Test-time augmentation of the support on the hard benchmark: wedge-preserving rotations.

A one-shot class has one support vector. Rotating the support box by 180 degrees about x, y or z
keeps its missing wedge where it was (exactly about y, the tilt axis, whatever the tilt range;
about x and z for a symmetric tilt range, and nearly so for the shifted preset's asymmetric
ones), so the rotated copies are boxes the microscope could have recorded: three more "shots" of
the same particle, with no new data. Here the class's shots are the support and its copies,
combined as the store combines shots (``DEFAULT_REDUCE``), against the plain support, on the
same episodes (hard benchmark, size-matched and large tiers, ``shifted`` imaging).

    python bench/support_tta.py --threads 1 --episodes 100       # docs/training.md
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import torch
from _common import bench_parser, load_model, setup_run

ROTATIONS = ((), ((1, 2),), ((0, 2),), ((0, 1),))  # identity; 180 deg about x (z,y), y (z,x), z


def rotated(volumes: torch.Tensor) -> list[torch.Tensor]:
    """The boxes ``(n, z, y, x)`` and their 180-degree rotations about x, y and z."""
    out = []
    for plane in ROTATIONS:
        v = volumes
        for dims in plane:
            v = torch.rot90(v, 2, dims=(dims[0] + 1, dims[1] + 1))
        out.append(v.contiguous())
    return out


def main() -> None:
    parser = bench_parser(__doc__, checkpoint="")
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--ways", type=int, default=10)
    parser.add_argument("--snrs", default="1000,0.5,0.1")
    args = parser.parse_args()
    setup_run(args)

    from cosnet_index.benchmark import imaging_simulate, simulate_snrs
    from cosnet_index.benchmark.tiers import TIER_NAMES, draw_classes, hard_tiers
    from cosnet_index.evaluate import accuracy_cells, accuracy_table
    from cosnet_index.query._scores import DEFAULT_REDUCE, class_scores

    model, info, _ = load_model(args.checkpoint)
    simulate = imaging_simulate("shifted")
    snrs = tuple(float(s) for s in args.snrs.split(","))
    t0 = time.perf_counter()
    rows = []
    for tier in hard_tiers():
        ways = min(args.ways, tier.max_ways())
        code = TIER_NAMES.index(tier.name)
        for start in range(0, args.episodes, 25):
            count = min(25, args.episodes - start)
            rng = np.random.default_rng([args.seed, code, ways, start, 7])
            picks = np.stack([draw_classes(tier, ways, rng) for _ in range(count)])
            target = rng.integers(0, ways, size=count)
            names = [tier.classes[i] for i in picks.reshape(-1)]
            names += [tier.classes[picks[j, target[j]]] for j in range(count)]
            imaged = simulate_snrs(simulate, names, snrs, int(rng.integers(2**31 - 1)))
            for snr in snrs:
                vols = torch.as_tensor(imaged[snr][1])
                n_sup = count * ways
                with torch.no_grad():
                    views = [model.embed(v) for v in rotated(vols[:n_sup])]
                    query = model.embed(vols[n_sup:]).numpy()
                plain = views[0].numpy().reshape(count, ways, 1, -1)
                aug = torch.stack(views, dim=1).numpy().reshape(count, ways, len(views), -1)
                for method, support in (("support", plain), ("support + 3 rotations", aug)):
                    for j in range(count):
                        protos = [support[j, c] for c in range(ways)]
                        s = class_scores(
                            query[j : j + 1], protos, model.head_bias, reduce=DEFAULT_REDUCE
                        )
                        rows.append(
                            {
                                "method": method,
                                "tier": tier.name,
                                "ways": ways,
                                "snr": snr,
                                "correct": bool(int(s[0].argmax()) == int(target[j])),
                                "seconds": 0.0,
                            }
                        )
    table = accuracy_table(pd.DataFrame(rows), keys=("method", "tier", "ways", "snr"))
    print(
        f"hard benchmark, 1-shot, {args.episodes} episodes per cell, seed {args.seed}, model "
        f"{info.hash[:12]}, reduce {DEFAULT_REDUCE!r}, {time.perf_counter() - t0:.0f} s"
    )
    print("| tier | N-way | support | " + " | ".join(f"SNR {s:g}" for s in snrs) + " |")
    print("|---|---|---|" + "---|" * len(snrs))
    for (tier, ways, method), cell in table.groupby(["tier", "ways", "method"], sort=False):
        print(f"| {tier} | {ways} | {method} | " + " | ".join(accuracy_cells(cell, snrs)) + " |")


if __name__ == "__main__":
    main()
