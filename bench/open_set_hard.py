"""Open set and discovery on the hard benchmark (issue 20): the tables of docs/queries.md.

Episodes of 5 named + 4 unnamed held-out real molecules, 20 particles each, one-shot supports,
imaging drawn outside the training defaults (``--imaging shifted``) or the training imaging
(``--imaging paper``), SNR 1000, 0.5 and 0.1 (cosnet_index/benchmark/open_set.py).

    python bench/open_set_hard.py open-set --seed 0           # the open-set tables (both imagings)
    python bench/open_set_hard.py discovery --seed 0          # the discovery tables
    python bench/open_set_hard.py open-set --seed 1 --sweep   # tuning seed: level x neighbours
    python bench/open_set_hard.py discovery --seed 1          # tuning seed: the discover defaults
    python bench/open_set_hard.py --quick                     # smoke run: 3 small episodes

Both subcommands cache the embedded episodes in ``--cache-dir`` (default
``bench-out/open_set_hard``), so the second one reuses the first one's simulation. ``--sweep``
prints the collection rule's operating point for a grid of ``level`` x ``neighbours``.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np
import pandas as pd
from _common import bench_parser, load_model, setup_run

from cosnet_index.benchmark.open_set import (
    METHODS,
    OpenSetConfig,
    discovery_rows,
    discovery_table,
    load_collections,
    open_set_table,
    save_collections,
    score_collection,
    simulate_collections,
)
from cosnet_index.query import DEFAULT_LEVEL, DEFAULT_MIN_PROB, DEFAULT_NEIGHBOURS


def _ci(cell: tuple[float, float, float]) -> str:
    value, lo, hi = cell
    return f"{value:.3f} [{lo:.3f}, {hi:.3f}]"


def _collections(args: argparse.Namespace, model, imaging: str) -> list:  # type: ignore[no-untyped-def]
    config = OpenSetConfig(
        per_molecule=args.per_molecule,
        episodes=args.episodes,
        snrs=tuple(args.snr),
        imaging=imaging,
        seed=args.seed,
    )
    cache = Path(args.cache_dir) / f"{imaging}-seed{args.seed}-e{args.episodes}.npz"
    found = load_collections(cache, config)
    if found is not None:
        print(f"episodes from the cache {cache}")
        return found
    t0 = time.perf_counter()
    collections = simulate_collections(model, config)
    cache.parent.mkdir(parents=True, exist_ok=True)
    save_collections(cache, collections, config)
    print(f"simulated and embedded {len(collections)} episodes in {time.perf_counter() - t0:.0f} s")
    return collections


def open_set(args: argparse.Namespace, model, collections) -> None:  # type: ignore[no-untyped-def]
    bias = model.head_bias
    rows = pd.concat(
        [
            score_collection(c, snr, bias, args.min_prob, args.level, args.neighbours)
            for c in collections
            for snr in args.snr
        ]
    )
    if rows["fallback"].any():
        print("WARNING: some episodes fell back to the fixed rule")
    table = open_set_table(rows, seed=args.seed)
    print(
        f"\nrule parameters: fixed threshold {args.min_prob:g}; collection level {args.level:g}, "
        f"{args.neighbours} neighbours\n"
    )
    print(
        "| SNR | method | AUROC known vs novel | novel flagged at 5% known lost "
        "| closed-set accuracy | rule: novel flagged | rule: known lost "
        "| known / novel / episodes |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in table.itertuples():
        op = (
            f"{_ci(r.novel_flagged)} | {_ci(r.known_lost)}"
            if isinstance(r.novel_flagged, tuple)
            else "- | -"
        )
        print(
            f"| {r.snr:g} | {METHODS[r.method]} | {_ci(r.auroc)} | {_ci(r.flagged_at_lost)} | "
            f"{_ci(r.closed_set_accuracy)} | {op} | {r.known} / {r.novel} / {r.episodes} |"
        )
    if args.sweep:
        print("\ncollection rule sweep: novel flagged / known lost (pooled), per SNR")
        snrs = " | ".join(f"SNR {s:g}" for s in args.snr)
        print(f"| level | neighbours | {snrs} | mean balanced |")
        print("|---|---|" + "---|" * len(args.snr) + "---|")
        for neighbours in (5, 10, 20):
            for level in np.round(np.arange(0.05, 0.96, 0.05), 2):
                cells, balanced = [], []
                for snr in args.snr:
                    r = pd.concat(
                        [
                            score_collection(c, snr, bias, args.min_prob, level, neighbours)
                            for c in collections
                        ]
                    )
                    f = r.loc[~r["known"], "flag_collection"].mean()
                    lost = r.loc[r["known"], "flag_collection"].mean()
                    cells.append(f"{f:.3f} / {lost:.3f}")
                    balanced.append((f + 1 - lost) / 2)
                row = " | ".join(cells)
                print(f"| {level:.2f} | {neighbours} | {row} | {np.mean(balanced):.3f} |")


def discovery(args: argparse.Namespace, model, collections) -> pd.Series:  # type: ignore[no-untyped-def]
    bias = model.head_bias
    rows = pd.concat(
        [
            discovery_rows(c, snr, bias, args.min_probs, args.min_sizes, args.min_prob, args.seed)
            for c in collections
            for snr in args.snr
        ]
    )
    table = discovery_table(rows, seed=args.seed)
    print(
        "\n| SNR | --min-prob | --min-size | purity | completeness | ARI | candidates / unnamed "
        "per episode | unnamed molecules found (purity >= 0.9) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in table.itertuples():
        print(
            f"| {r.snr:g} | {r.min_prob:g} | {r.min_size} | {_ci(r.purity)} | "
            f"{_ci(r.completeness)} | {_ci(r.ari)} | {r.candidates:.1f} / {r.unnamed:.0f} | "
            f"{r.found}/{r.unnamed_total} = {r.found / r.unnamed_total:.2f} |"
        )
    mean_ari = (
        table.assign(ari_value=[a[0] for a in table["ari"]])
        .groupby(["min_prob", "min_size"])["ari_value"]
        .mean()
    )
    print("\nmean ARI over the SNRs (rows --min-prob, columns --min-size):")
    print(mean_ari.unstack().round(3).to_string())
    return mean_ari


TIE = 0.005  # ARI differences below this count as ties


def choose_discovery_defaults(per_imaging: dict[str, pd.Series]) -> None:
    """The defaults: the highest ARI averaged over SNRs and imagings; among settings within
    TIE of it, the largest --min-size (fewer spurious small candidates in large collections),
    then the highest --min-prob (purer candidates)."""
    mean_ari = pd.concat(per_imaging, axis=1).mean(axis=1)
    close = mean_ari[mean_ari >= mean_ari.max() - TIE]
    mp, ms = max(close.index, key=lambda key: (key[1], key[0]))
    print(f"\nmean ARI over SNRs and imagings ({', '.join(per_imaging)}):")
    print(mean_ari.unstack().round(3).to_string())
    print(
        f"chosen: --min-prob {mp:g} --min-size {ms} (ARI {mean_ari[(mp, ms)]:.3f}; best "
        f"{mean_ari.max():.3f}, ties within {TIE})"
    )


def main() -> None:
    parser = bench_parser(
        __doc__, checkpoint="default: the shipped weights", quick="3 episodes x 10 per molecule"
    )
    parser.add_argument("table", choices=["open-set", "discovery"], nargs="?", default="open-set")
    parser.add_argument(
        "--imaging", choices=["shifted", "paper"], nargs="+", default=["shifted", "paper"]
    )
    parser.add_argument("--snr", type=float, nargs="+", default=[1000.0, 0.5, 0.1])
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--per-molecule", type=int, default=20)
    parser.add_argument("--min-prob", type=float, default=DEFAULT_MIN_PROB, help="fixed rule")
    parser.add_argument("--level", type=float, default=DEFAULT_LEVEL)
    parser.add_argument("--neighbours", type=int, default=DEFAULT_NEIGHBOURS)
    parser.add_argument("--sweep", action="store_true", help="open-set: level x neighbours grid")
    parser.add_argument(
        "--min-probs", type=float, nargs="+", default=[0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.86]
    )
    parser.add_argument("--min-sizes", type=int, nargs="+", default=[3, 5, 10])
    parser.add_argument("--cache-dir", default="bench-out/open_set_hard")
    args = parser.parse_args()
    if args.quick:
        args.episodes, args.per_molecule = 3, 10
    setup_run(args)
    model, info, path = load_model(args.checkpoint)
    print(
        f"checkpoint {path} (hash {info.hash[:12]}), head bias {model.head_bias:.3f}; seed "
        f"{args.seed}, {args.episodes} episodes x (5 named + 4 unnamed) x "
        f"{args.per_molecule} particles"
    )
    per_imaging = {}
    for imaging in args.imaging:
        print(f"\n## imaging {imaging}\n")
        collections = _collections(args, model, imaging)
        t0 = time.perf_counter()
        if args.table == "open-set":
            open_set(args, model, collections)
        else:
            per_imaging[imaging] = discovery(args, model, collections)
        print(f"\nscored in {time.perf_counter() - t0:.0f} s")
    if per_imaging:
        choose_discovery_defaults(per_imaging)
    if not math.isfinite(model.head_bias):
        raise SystemExit("bad checkpoint")


if __name__ == "__main__":
    main()
