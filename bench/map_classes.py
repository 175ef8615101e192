"""Classes made from a reference map against classes made from one particle, on the hard benchmark.

Same episodes for every method (held-out molecules of the real-molecule library, ``shifted``
imaging drawn per subtomogram, N classes, one query of one of them): a class is either

- ``particle``: one support subtomogram of the molecule (the hard benchmark's 1-shot), or
- ``map``: the molecule's density map, imaged by ``classes add --map``'s code path
  (``classes/_reference.py``: random orientations, CTF + missing wedge of ONE given setting,
  vectors averaged into one shot), with the default settings (``ReferenceImaging()``: defocus
  -4 um, +-60 degrees, 4 nm) or with the tilt range of the shifted preset (+-44 degrees).

The map is the noise-free density the simulator poses (``class_info``, the molecule's own
atoms): an ideal reference, better than an EMDB map of another conformation or resolution.
Queries are scored as the store scores classes (``class_scores``, ``DEFAULT_REDUCE``); accuracy
with 95% Wilson intervals, and the paired difference map - particle on the same episodes with a
95% bootstrap interval (2000 resamples of the episodes, seed 0).

    nice -n 10 python bench/map_classes.py --threads 2 --episodes 100   # docs/ecosystem.md
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import pandas as pd
import torch
from _common import bench_parser, load_model, setup_run


def main() -> None:
    parser = bench_parser(__doc__, checkpoint="")
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--ways", default="2,5")
    parser.add_argument("--snrs", default="0.5")
    parser.add_argument("--tiers", default="size-matched,large")
    parser.add_argument("--orientations", type=int, default=16)
    args = parser.parse_args()
    setup_run(args)

    from cosnet_index.benchmark import imaging_simulate, simulate_snrs
    from cosnet_index.benchmark.tiers import TIER_NAMES, draw_classes, hard_tiers
    from cosnet_index.classes import ReferenceImaging
    from cosnet_index.classes._reference import image_reference, reference_vector
    from cosnet_index.evaluate import accuracy_cells, accuracy_table
    from cosnet_index.query._scores import DEFAULT_REDUCE, class_scores
    from cosnet_index.simulate import class_info

    model, info, _ = load_model(args.checkpoint)
    simulate = imaging_simulate("shifted")
    snrs = tuple(float(s) for s in args.snrs.split(","))
    settings = {
        "map, default imaging": ReferenceImaging(orientations=args.orientations),
        "map, tilt +-44": ReferenceImaging(
            orientations=args.orientations, tilt_min_deg=-44.0, tilt_max_deg=44.0
        ),
    }
    t0 = time.perf_counter()
    map_vectors: dict[tuple[str, str], np.ndarray] = {}
    rows = []
    for tier in hard_tiers(names=args.tiers.split(",")):
        for label, imaging in settings.items():
            for k, name in enumerate(tier.classes):
                density = class_info(name, 1.0, imaging.resolution_nm)
                boxes = image_reference(density, dataclasses.replace(imaging, seed=args.seed + k))
                with torch.no_grad():
                    map_vectors[label, name] = reference_vector(model, boxes)  # (1, d)
        code = TIER_NAMES.index(tier.name)
        for ways in (int(w) for w in args.ways.split(",")):
            ways = min(ways, tier.max_ways())
            for start in range(0, args.episodes, 25):
                count = min(25, args.episodes - start)
                rng = np.random.default_rng([args.seed, code, ways, start, 18])
                picks = np.stack([draw_classes(tier, ways, rng) for _ in range(count)])
                target = rng.integers(0, ways, size=count)
                names = [tier.classes[i] for i in picks.reshape(-1)]
                names += [tier.classes[picks[j, target[j]]] for j in range(count)]
                imaged = simulate_snrs(simulate, names, snrs, int(rng.integers(2**31 - 1)))
                for snr in snrs:
                    vols = torch.as_tensor(imaged[snr][1])
                    n_sup = count * ways
                    with torch.no_grad():
                        xb = model.embed(vols).numpy()
                    support, query = xb[:n_sup].reshape(count, ways, 1, -1), xb[n_sup:]
                    for j in range(count):
                        classes = [tier.classes[i] for i in picks[j]]
                        methods = {"particle": [support[j, c] for c in range(ways)]}
                        for label in settings:
                            methods[label] = [map_vectors[label, c] for c in classes]
                        for method, protos in methods.items():
                            s = class_scores(
                                query[j : j + 1], protos, model.head_bias, reduce=DEFAULT_REDUCE
                            )
                            rows.append(
                                {
                                    "method": method,
                                    "tier": tier.name,
                                    "ways": ways,
                                    "snr": snr,
                                    "episode": start + j,
                                    "correct": bool(int(s[0].argmax()) == int(target[j])),
                                    "seconds": 0.0,
                                }
                            )
    frame = pd.DataFrame(rows)
    table = accuracy_table(frame, keys=("method", "tier", "ways", "snr"))
    print(
        f"hard benchmark, {args.episodes} episodes per cell, seed {args.seed}, model "
        f"{info.hash[:12]}, reduce {DEFAULT_REDUCE!r}, {args.orientations} orientations per map, "
        f"{time.perf_counter() - t0:.0f} s"
    )
    print("| tier | N-way | class from | " + " | ".join(f"SNR {s:g}" for s in snrs) + " |")
    print("|---|---|---|" + "---|" * len(snrs))
    for (tier, ways, method), cell in table.groupby(["tier", "ways", "method"], sort=False):
        print(f"| {tier} | {ways} | {method} | " + " | ".join(accuracy_cells(cell, snrs)) + " |")
    print()
    print("| tier | N-way | SNR | map - particle (paired, 95% bootstrap) |")
    print("|---|---|---|---|")
    boot = np.random.default_rng(0)
    for (tier, ways, snr), cell in frame.groupby(["tier", "ways", "snr"], sort=False):
        base = cell[cell["method"] == "particle"].set_index("episode")["correct"]
        for label in settings:
            other = cell[cell["method"] == label].set_index("episode")["correct"]
            diff = (other.astype(float) - base.astype(float)).to_numpy()
            draws = boot.integers(0, len(diff), (2000, len(diff)))
            lo, hi = np.percentile(diff[draws].mean(axis=1), [2.5, 97.5])
            print(
                f"| {tier} | {ways} | {snr:g} | {label}: {diff.mean():+.3f} [{lo:+.3f}, "
                f"{hi:+.3f}] (n={len(diff)}) |"
            )


if __name__ == "__main__":
    main()
