"""The open-set ROC of docs/queries.md (issue 26): novel flagged against named lost, every rule.

Collections of the hard benchmark's held-out real molecules, one microscope per collection
(``--imaging`` preset, same-collection imaging): all named, half named, all named from maps, and
one named molecule with 80% of the particles (cosnet_index/benchmark/open_set_roc.py). For each
rule and parameter it prints named lost / novel flagged, calls right, closed-set accuracy, and
the mixture rule's own estimate of the loss; ``**`` marks classify's default.

    python bench/open_set_roc.py --seed 0                          # the table (shipped weights)
    python bench/open_set_roc.py --seed 0 --checkpoint runs/x.pt   # another model
    python bench/open_set_roc.py --quick                           # smoke run: tiny, minutes

The embedded episodes are cached in ``--cache-dir`` (default ``bench-out/open_set_roc``).
"""

from __future__ import annotations

import argparse
import math
import pickle
import time
from dataclasses import asdict
from pathlib import Path

import pandas as pd
import torch

from cosnet_index.benchmark.open_set_roc import (
    SCENARIOS,
    RocConfig,
    roc_rows,
    roc_table,
    simulate_roc_episodes,
)
from cosnet_index.model import load_checkpoint
from cosnet_index.model.checkpoint import default_checkpoint_path


def _cell(cell: tuple[float, float, float]) -> str:
    value, lo, hi = cell
    if not math.isfinite(value):
        return "-"
    if math.isfinite(lo):
        return f"{value:.3f} [{lo:.3f}, {hi:.3f}]"
    return f"{value:.3f}"


def _episodes(args: argparse.Namespace, model, config: RocConfig) -> list:  # type: ignore[no-untyped-def]
    # the model's hash too: another checkpoint embeds the same particles into other vectors
    key = (
        f"{model.weights_hash[:12]}-{config.imaging}-seed{config.seed}-e{config.episodes}"
        f"-n{config.per_molecule}"
    )
    cache = Path(args.cache_dir) / f"{key}.pkl"
    if cache.is_file():
        with cache.open("rb") as f:
            saved_config, scenarios, episodes = pickle.load(f)
        if saved_config == asdict(config) and set(args.scenario) <= set(scenarios):
            print(f"episodes from the cache {cache}")
            return [e for e in episodes if e.scenario in args.scenario]
    t0 = time.perf_counter()
    episodes = simulate_roc_episodes(model, config, tuple(args.scenario))
    cache.parent.mkdir(parents=True, exist_ok=True)
    with cache.open("wb") as f:
        pickle.dump((asdict(config), tuple(args.scenario), episodes), f)
    print(f"simulated and embedded {len(episodes)} collections in {time.perf_counter() - t0:.0f} s")
    return episodes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=None, help="default: the shipped weights")
    parser.add_argument("--scenario", nargs="+", choices=SCENARIOS, default=list(SCENARIOS))
    parser.add_argument("--imaging", default="shifted")
    parser.add_argument("--snr", type=float, nargs="+", default=[1000.0, 0.5])
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--per-molecule", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cache-dir", default="bench-out/open_set_roc")
    parser.add_argument("--quick", action="store_true", help="1 episode x 4 per molecule, SNR 1000")
    args = parser.parse_args()
    if args.quick:
        args.episodes, args.per_molecule, args.snr = 1, 4, [1000.0]
    torch.set_num_threads(args.threads)
    path = args.checkpoint or default_checkpoint_path()
    model, info = load_checkpoint(path)
    model.eval()
    config = RocConfig(
        per_molecule=args.per_molecule,
        episodes=args.episodes,
        snrs=tuple(args.snr),
        imaging=args.imaging,
        seed=args.seed,
    )
    print(
        f"checkpoint {path} (hash {info.hash[:12]}), head bias {model.head_bias:.3f}; seed "
        f"{args.seed}, imaging {args.imaging} (one microscope per collection), "
        f"{args.episodes} episodes x {config.molecules} molecules x {args.per_molecule} particles"
    )
    episodes = _episodes(args, model, config)
    t0 = time.perf_counter()
    rows = pd.concat([roc_rows(e, snr, model.head_bias) for e in episodes for snr in args.snr])
    table = roc_table(rows, seed=args.seed)
    print(
        "\n| collection | SNR | rule | parameter | named lost | novel flagged | estimated lost "
        "| calls right | closed-set accuracy |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in table.itertuples():
        mark = "**" if r.default else ""
        own = " (rule default)" if r.rule_default and not r.default else ""
        print(
            f"| {r.scenario} | {r.snr:g} | {mark}{r.rule}{mark}{own} | {r.parameter} {r.value:g} "
            f"| {_cell(r.lost)} | {_cell(r.flagged)} | {_cell(r.estimated_lost)} "
            f"| {_cell(r.right)} | {_cell(r.closed)} |"
        )
    print("\nparticles per cell (named / novel, supports left out) and rule fits that saw a class")
    print("holding at least half of the particles (dominant):")
    for scenario, g in table.groupby("scenario", sort=False):
        print(
            f"  {scenario}: {int(g['named'].iloc[0])} / {int(g['novel'].iloc[0])}, dominant in "
            f"{100 * g['dominant'].mean():.0f}% of fits"
        )
    print(f"scored in {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
