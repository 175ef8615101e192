"""Dask indexing throughput (issue 17): 1 and 2 local workers beside the single process.

Writes ``--tomograms`` noisy 10 A tomograms with ``--particles`` dark blobs each (the crash
harness's world, ``tests/_crash_util.make_world``), then indexes them with the shipped model
(or ``--checkpoint``) into fresh stores three ways: the single-process ``index``, and
``index --workers 1`` / ``--workers 2`` (a Dask LocalCluster; cluster start-up included).
Reports subtomograms per second and the ratio to the single process, best of ``--repeats``.

    python bench/dask_index.py --tomograms 4 --particles 64 --repeats 1
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests._crash_util


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tomograms", type=int, default=4)
    parser.add_argument("--particles", type=int, default=64, help="per tomogram")
    parser.add_argument("--checkpoint", default=None, help="default: the shipped weights")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--modes", default="single,workers=1,workers=2")
    parser.add_argument("--threads", type=int, default=None, help="torch threads, single mode")
    args = parser.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)

    from cosnet_index.model import default_checkpoint_path
    from cosnet_index.store import Store, index_tomograms
    from cosnet_index.store.distributed import index_on_dask
    from tests._crash_util import make_world

    checkpoint = args.checkpoint or str(default_checkpoint_path())
    with tempfile.TemporaryDirectory(prefix="cosnet-dask-bench-") as tmp:
        world = make_world(Path(tmp) / "world", n_tomograms=args.tomograms,
                           n_per_tomogram=args.particles, n_indexed=0, seed=args.seed)  # fmt: skip
        results: dict[str, float] = {}
        for mode in args.modes.split(","):
            best = float("inf")
            for r in range(args.repeats):
                path = Path(tmp) / f"{mode}-{r}"
                shutil.rmtree(path, ignore_errors=True)
                with Store.create(path, model_path=checkpoint) as store:
                    started = time.perf_counter()
                    if mode == "single":
                        summary = index_tomograms(store, world.tomograms, world.coords,
                                                  batch_size=args.batch_size,
                                                  progress=False)  # fmt: skip
                    else:
                        summary = index_on_dask(store, world.tomograms, world.coords,
                                                workers=int(mode.split("=")[1]),
                                                batch_size=args.batch_size)  # fmt: skip
                    best = min(best, time.perf_counter() - started)
                assert summary.subtomograms_indexed == args.tomograms * args.particles
            results[mode] = args.tomograms * args.particles / best
            ratio = results[mode] / results.get("single", results[mode])
            print(f"{mode}: {results[mode]:.1f} subtomograms/s ({ratio:.2f} x the first mode)",
                  flush=True)  # fmt: skip
    print(json.dumps({"args": vars(args), "subtomograms_per_s": results}))


if __name__ == "__main__":
    main()
