"""Which microscope setting the headline loses on: hard-benchmark accuracy by imaging field.

The campaign's headline table (held-out molecules, size-matched tier, ``shifted`` imaging, one
microscope per episode, 10-way 1-shot, the same seeds as ``cosnet-index campaign eval``), each
episode's correctness split by its query's microscope (``query_<field>`` columns of
:func:`cosnet_index.benchmark.hard.hard_cell_episodes`): for every field the ``shifted`` preset
moves, the two sides of its ranges (near / far defocus, high / low resolution, small / large
voxel error; the lower / upper half of the tilt and ice ranges), accuracy with its 95% Wilson
interval and the number of episodes, per SNR. The same episodes as the curve's ``shifted/same``
cells, so the overall row reproduces them.

    python bench/hard_by_imaging.py --checkpoint runs/campaign/ema.pt --seed 0   # docs/training.md
    python bench/hard_by_imaging.py --quick                                      # 25 episodes
"""

from __future__ import annotations

import time

import pandas as pd
from _common import bench_parser, load_model, setup_run, write_json

# field -> (split point, label below, label above): every shifted range is two ranges, or one
# range split at its middle
SPLITS = {
    "query_defocus_um": (-4.5, "far from focus (-8.5 to -6 um)", "near focus (-2.7 to -1 um)"),
    "query_resolution_nm": (3.5, "high resolution (2.0-2.3 nm)", "low resolution (4.8-6.0 nm)"),
    "query_voxel_mismatch": (1.0, "voxels 0.85-0.9 of the header", "voxels 1.1-1.15 of the header"),
    "query_tilt_max_deg": (44.0, "tilt +-40-44 deg", "tilt +-44-48 deg"),
    "query_ice_thickness_nm": (305.0, "ice 260-305 nm", "ice 305-350 nm"),
}


def by_imaging(episodes: pd.DataFrame) -> pd.DataFrame:
    """Accuracy (Wilson 95%) per SNR and side of each imaging field; one row per (field, side,
    snr), the overall rows first."""
    from cosnet_index.evaluate import wilson_interval

    def cell(frame: pd.DataFrame, field: str, side: str) -> list[dict]:
        out = []
        for snr, group in frame.groupby("snr", sort=False):
            k, n = int(group["correct"].sum()), len(group)
            lo, hi = wilson_interval(k, n)
            out.append({"field": field, "side": side, "snr": snr, "accuracy": k / n,
                        "ci_low": lo, "ci_high": hi, "episodes": n})  # fmt: skip
        return out

    rows = cell(episodes, "all", "all")
    for field, (split, below, above) in SPLITS.items():
        if field not in episodes:
            continue
        low = episodes[field] < split
        rows += cell(episodes[low], field, below) + cell(episodes[~low], field, above)
    return pd.DataFrame(rows)


def by_query_class(episodes: pd.DataFrame) -> pd.DataFrame:
    """Accuracy per SNR and query class (``class``, ``snr``, ``accuracy``, ``episodes``), the
    hardest classes first (the mean over SNRs)."""
    names = episodes["classes"].str.split(";")
    true = [n[t] for n, t in zip(names, episodes["target"], strict=True)]
    frame = episodes.assign(query_class=true)
    table = (
        frame.groupby(["query_class", "snr"], sort=False)["correct"]
        .agg(accuracy="mean", episodes="size")
        .reset_index()
    )
    order = table.groupby("query_class")["accuracy"].mean().sort_values().index
    return table.set_index("query_class").loc[order].reset_index()


def markdown(table: pd.DataFrame) -> str:
    snrs = list(dict.fromkeys(table["snr"]))
    lines = [
        "| query's microscope | " + " | ".join(f"SNR {s:g}" for s in snrs) + " | episodes |",
        "|---" * (len(snrs) + 2) + "|",
    ]
    for (_, side), group in table.groupby(["field", "side"], sort=False):
        cells = [
            f"{r.accuracy:.3f} [{r.ci_low:.2f}, {r.ci_high:.2f}]"
            for r in group.set_index("snr").loc[snrs].itertuples()
        ]
        lines.append(f"| {side} | " + " | ".join(cells) + f" | {int(group['episodes'].iloc[0])} |")
    return "\n".join(lines)


def main() -> None:
    parser = bench_parser(__doc__, checkpoint="default: the shipped weights", quick="25 episodes")
    parser.add_argument("--episodes", type=int, default=200)
    parser.add_argument("--out", default=None, help="also write the table as JSON here")
    args = parser.parse_args()
    setup_run(args)

    from cosnet_index.benchmark import HardConfig, benchmark_molecules, hard_tiers
    from cosnet_index.benchmark.hard import run_hard_benchmark
    from cosnet_index.campaign import CURVE_SNRS

    model, info, _ = load_model(args.checkpoint)
    tiers = hard_tiers(benchmark_molecules("auto"), ("size-matched",))
    config = HardConfig(
        tiers=("size-matched",),
        ways=(10,),
        shots=(1,),
        snrs=CURVE_SNRS,
        episodes=25 if args.quick else args.episodes,
        baseline_episodes=0,
        imaging="shifted",
        collection="same",
        seed=args.seed,
    )
    t0 = time.perf_counter()
    episodes, _ = run_hard_benchmark(model, tiers, config, progress=False)
    table = by_imaging(episodes)
    print(f"model {info.hash[:8]}, {config.episodes} episodes per SNR, seed {args.seed}, "
          f"{time.perf_counter() - t0:.0f} s")  # fmt: skip
    print(markdown(table))
    from cosnet_index.benchmark import confused_pairs

    classes = by_query_class(episodes)
    wide = classes.pivot(index="query_class", columns="snr", values="accuracy")
    wide = wide.loc[list(dict.fromkeys(classes["query_class"]))]
    print("\naccuracy by the query's class (episodes per class and SNR: "
          f"{classes['episodes'].min()}-{classes['episodes'].max()})")  # fmt: skip
    print(wide.round(2).to_string())
    print("\nmost frequent mistakes (every SNR):")
    print(confused_pairs(episodes, top=10).to_string(index=False))
    if args.out:
        records = table.to_dict(orient="records")
        write_json(args.out, {"model_hash": info.hash, "seed": args.seed, "table": records})


if __name__ == "__main__":
    main()
