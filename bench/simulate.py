"""Throughput of the subtomogram simulator (subtomograms/s), beside the bare FFT cost.

Run: python bench/simulate.py [--threads 2] [--repeats 5]

For each batch size it times ``simulate_subtomograms`` (SNR 0.1, the default 32^3 config, the
default training split's classes, maps already cached) and, as a reference measured in the same
run, one forward + one inverse real FFT of the same batch (the floor of any Fourier-space
imaging model). The ratio says how many "bare FFT round trips" one simulated batch costs.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from cosnet_index.simulate import SimulationConfig, default_split, simulate_subtomograms


def _best_time(fn, repeats: int) -> float:  # noqa: ANN001
    fn()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 128, 256])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = SimulationConfig()
    classes = default_split(400, 24).train
    rng = np.random.default_rng(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, box {config.box}")
    print(f"{'batch':>6} {'crowding':>8} {'subtomo/s':>10} {'bare FFT/s':>11} {'ratio':>6}")
    for batch in args.batch_sizes:
        names = list(rng.choice(classes, batch))
        simulate_subtomograms(names, 0.1, 0, config)  # builds and caches the class maps
        volume = torch.randn(batch, config.box, config.box, config.box)

        def bare_fft(volume: torch.Tensor = volume) -> None:
            torch.fft.irfftn(torch.fft.rfftn(volume, dim=(-3, -2, -1)), dim=(-3, -2, -1))

        fft_rate = batch / _best_time(bare_fft, args.repeats)
        for crowding in (False, True):
            seeds = iter(range(10**6))
            sim_time = _best_time(
                lambda c=crowding, n=names: simulate_subtomograms(n, 0.1, next(seeds), config, c),
                args.repeats,
            )
            rate = batch / sim_time
            print(
                f"{batch:>6} {crowding!s:>8} {rate:>10.0f} {fft_rate:>11.0f} {fft_rate / rate:>6.1f}"
            )


if __name__ == "__main__":
    main()
