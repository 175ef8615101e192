"""Hits segmented per second end to end, with and without the volume prior, in one run.

``segment_hits`` on a store's hits as ``cosnet-index segment`` runs it (boxes cut again from the
memory-mapped tomograms, decoder, masks, MRC files and ``segments.parquet``; no CRF): once with
every mask ``p > 0.5`` (``--no-prior``) and once with every hit under a volume prior (``--mass-kda``
for all of them, the same code path as a class volume), interleaved, the best of ``--repeats``
each. The issue's bar: at least 100 boxes/s on 2 cores with the prior on.

    cosnet-index demo --out cosnet-demo                      # a store and its classified hits
    python bench/segment_prior_speed.py --store cosnet-demo/store \\
        --hits cosnet-demo/result.parquet --threads 2
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", required=True)
    parser.add_argument("--hits", required=True, help="a classify or search table (.parquet)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--limit", type=int, default=None, help="only the first N hits")
    parser.add_argument("--mass-kda", type=float, default=300.0, help="the prior's mass (kDa)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from cosnet_index.query import read_table
    from cosnet_index.segment.hits import segment_hits
    from cosnet_index.store import Store

    hits, _ = read_table(args.hits)
    if "passes" in hits.columns:
        hits = hits[hits["passes"].astype(bool)].reset_index(drop=True)
    hits = hits.head(args.limit) if args.limit else hits
    variants = {
        "p > 0.5 (--no-prior)": {"class_prior": False},
        f"volume prior ({args.mass_kda:g} kDa)": {"masses_kda": {None: args.mass_kda}},
    }
    best = dict.fromkeys(variants, float("inf"))
    with Store.open(args.store, readonly=True) as store, tempfile.TemporaryDirectory() as tmp:
        for round_ in range(args.repeats + 1):  # the first round warms the caches up
            for name, kwargs in variants.items():
                out = Path(tmp) / f"{round_}-{len(best)}-{hash(name) & 0xFFFF}"
                t0 = time.perf_counter()
                summary = segment_hits(store, hits, out, crf_params=None, device="cpu", **kwargs)
                seconds = time.perf_counter() - t0
                if round_:
                    best[name] = min(best[name], seconds)
                assert len(summary.table) == len(hits)
    print(f"{len(hits)} hits, {args.threads} thread(s), best of {args.repeats}:")
    for name, seconds in best.items():
        print(f"  {name}: {len(hits) / seconds:.0f} boxes/s ({seconds:.2f} s)")


if __name__ == "__main__":
    main()
