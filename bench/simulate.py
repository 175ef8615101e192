"""Throughput of the subtomogram simulator (subtomograms/s), beside the bare FFT cost.

Run: python bench/simulate.py [--threads 2] [--repeats 5] [--dataset-size 2048]

For each batch size it times ``simulate_subtomograms`` (SNR 0.1, the default 32^3 config, random
classes of the default training split, maps already cached) with the ``paper`` (fast) and the
``realistic`` imaging presets, with and without crowding, and, as a reference measured in the same
run, one forward + one inverse real FFT of the same batch (the floor of any Fourier-space imaging
model). It prints wall-clock rates and rates per CPU-second of this process
(``time.process_time``): on a machine shared with other jobs the wall-clock rate drops with the
load, the CPU-time rate much less. ``ratio`` = simulation time / bare FFT time; ``vs paper`` =
realistic time / paper time (CPU), same batch, same run.

Then it times the data-parallel generator: ``make_dataset(..., imaging="realistic")`` (the
seeded, sharded on-disk cache) in this process and with 2 worker processes, in samples/s of wall
clock (process start-up included).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import numpy as np
import torch
from _common import bench_parser, setup_run

from cosnet_index.simulate import (
    SimulationConfig,
    default_split,
    make_dataset,
    simulate_subtomograms,
)


def _best(fn: Callable[[], object], repeats: int) -> tuple[float, float]:
    """Best wall time and best CPU time of ``repeats`` calls (after one warm-up call)."""
    fn()
    wall = cpu = float("inf")
    for _ in range(repeats):
        w0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall = min(wall, time.perf_counter() - w0)
        cpu = min(cpu, time.process_time() - c0)
    return wall, cpu


def main() -> None:
    parser = bench_parser(__doc__, seed=None)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 128, 256])
    parser.add_argument("--dataset-size", type=int, default=2048)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    args = parser.parse_args()
    setup_run(args)
    config = SimulationConfig()
    classes = default_split(400, 24).train
    rng = np.random.default_rng(0)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, box {config.box}, "
        f"{os.cpu_count()} CPUs, load average {load:.1f}"
    )
    header = (
        "batch",
        "preset",
        "crowding",
        "wall/s",
        "cpu-s rate",
        "FFT wall/s",
        "FFT cpu rate",
        "ratio",
        "vs paper",
    )
    print("{:>6} {:>9} {:>8} {:>8} {:>10} {:>10} {:>12} {:>6} {:>8}".format(*header))
    for batch in args.batch_sizes:
        names = [str(c) for c in rng.choice(classes, batch)]
        for preset in ("paper", "realistic"):  # builds and caches the class maps
            simulate_subtomograms(names, 0.1, 0, config, imaging=preset)
        volume = torch.randn(batch, config.box, config.box, config.box)

        def bare_fft(volume: torch.Tensor = volume) -> None:
            torch.fft.irfftn(torch.fft.rfftn(volume, dim=(-3, -2, -1)), dim=(-3, -2, -1))

        fft_wall, fft_cpu = _best(bare_fft, args.repeats)
        for crowding in (False, True):
            paper_cpu = float("nan")
            for preset in ("paper", "realistic"):
                seeds = iter(range(1, 10**6))

                def simulate(c: bool = crowding, n: list = names, s=seeds, p=preset) -> None:
                    simulate_subtomograms(n, 0.1, next(s), config, c, imaging=p)

                wall, cpu = _best(simulate, args.repeats)
                paper_cpu = cpu if preset == "paper" else paper_cpu
                print(
                    f"{batch:>6} {preset:>9} {crowding!s:>8} {batch / wall:>8.0f} "
                    f"{batch / cpu:>10.0f} {batch / fft_wall:>10.0f} {batch / fft_cpu:>12.0f} "
                    f"{cpu / fft_cpu:>6.1f} {cpu / paper_cpu:>8.2f}"
                )
    _dataset_rates(classes, args.dataset_size, args.workers)


def _dataset_rates(classes: list[str], size: int, workers: list[int]) -> None:
    """Wall-clock samples/s of the sharded on-disk cache, in-process and with worker processes."""
    import tempfile

    names = [str(c) for c in classes[: max(1, size // 64)]]
    per_class = max(1, size // len(names))
    print(f"\nmake_dataset(imaging='realistic'): {len(names) * per_class} subtomograms, SNR 0.1")
    print("{:>8} {:>8} {:>10}".format("workers", "wall s", "samples/s"))
    for w in workers:
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            data = make_dataset(tmp, names, per_class, [0.1], 0, imaging="realistic", workers=w)
            wall = time.perf_counter() - start
            print(f"{w:>8} {wall:>8.1f} {len(data) / wall:>10.0f}")


if __name__ == "__main__":
    main()
