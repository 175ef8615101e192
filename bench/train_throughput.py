"""Training throughput before/after the campaign's changes, and where a step's time goes.

In ONE run on this machine (idle: stop any training chunk first), from the shipped weights:

- ``before``: the training of the model issue (``train --imaging realistic``): a microscope per
  box, default memory layout, the decoder on every box, simulation in a thread;
- ``after``: the campaign's configuration (``cosnet_index.campaign.campaign_config``): a
  microscope per collection, imaging filters batched per collection, ``channels_last_3d``, the
  decoder on a quarter of the boxes, simulation in a worker process.

Each trains ``--steps`` steps (after ``--warmup`` steps not timed) on the same classes, with the
class maps of both imaging resolutions built beforehand (as in a long run, where they are
cached), and prints boxes/s and the ratio after/before. Then the parts of one step, each timed
alone on the same episodes: simulation (1 thread, as in the worker), forward, backward and the
optimiser (``--threads``).

    python bench/train_throughput.py --threads 2 --steps 60 --seed 0
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import tempfile
import time

import torch

from cosnet_index.campaign import campaign_config
from cosnet_index.data import EpisodeSampler
from cosnet_index.model.checkpoint import default_checkpoint_path, load_checkpoint
from cosnet_index.simulate.split import training_classes
from cosnet_index.train import TrainConfig, episode_loss, train

CLASSES = "train-real,lib-train,proc:0-199"


def configs(threads: int, steps: int, seed: int) -> dict[str, TrainConfig]:
    start = str(default_checkpoint_path())
    after = dataclasses.replace(
        campaign_config(0.0, threads, seed, start),
        steps=steps,
        checkpoint_every=10**6,
        keep_every=0,
        warmup_steps=0,
    )
    before = TrainConfig(
        steps=steps,
        lr=3e-4,
        warmup_steps=0,
        clean_steps=0,
        imaging="realistic",
        channels_last=False,
        decoder_fraction=1.0,
        sim_workers=0,
        checkpoint_every=10**6,
        keep_every=0,
        threads=threads,
        seed=seed,
        init_from=start,
    )
    return {"before": before, "after": after}


def warm_class_maps(names: list[str]) -> None:
    """Build every class map at the resolutions both configurations use (cached per process;
    the worker process is forked after this, so it inherits them)."""
    from cosnet_index.simulate import simulate_subtomograms

    for k in range(0, len(names), 32):
        part = names[k : k + 32]
        simulate_subtomograms(part, math.inf, 0, imaging="paper")
        simulate_subtomograms(part, math.inf, 0, imaging="broad")


def boxes_per_second(config: TrainConfig, names: list[str], warmup: int) -> float:
    walls: list[float] = []

    def record(row: dict) -> None:
        walls.append(float(row["wall_s"]))

    with tempfile.TemporaryDirectory() as out:
        train(out, names, config=config, progress=False, on_step=record)
    timed = walls[warmup:]
    boxes = config.episodes_per_step * 2 * config.ways * (len(timed) - 1)
    return boxes / (timed[-1] - timed[0])


def step_parts(config: TrainConfig, names: list[str], threads: int, repeats: int) -> dict:
    """Seconds per step of each part, timed alone on the same episodes."""
    mix = config.imaging_mix()
    sampler = EpisodeSampler(
        names, config.ways, config.snrs, config.snr_weights, config.crowding_fraction,
        seed=config.seed, simulate=mix,
    )  # fmt: skip
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    steps = [
        [sampler.episode(s * config.episodes_per_step + i) for i in range(config.episodes_per_step)]
        for s in range(repeats)
    ]
    sim = (time.perf_counter() - t0) / repeats
    torch.set_num_threads(threads)
    model, _ = load_checkpoint(default_checkpoint_path())
    model.train()
    if config.channels_last:
        model.to(memory_format=torch.channels_last_3d)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-6)
    fwd = bwd = opt = 0.0
    for k, episodes in enumerate([steps[0], *steps]):  # the first is a warm-up
        t0 = time.perf_counter()
        parts = episode_loss(
            model, episodes, 1.0, 0.0, config.decoder_fraction, config.channels_last
        )
        t1 = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        parts["loss"].backward()
        t2 = time.perf_counter()
        optimizer.step()
        t3 = time.perf_counter()
        if k:
            fwd, bwd, opt = fwd + t1 - t0, bwd + t2 - t1, opt + t3 - t2
    return {"simulate (1 thread)": sim, "forward": fwd / repeats, "backward": bwd / repeats,
            "optimiser": opt / repeats}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=60, help="timed steps per configuration")
    parser.add_argument("--warmup", type=int, default=10, help="untimed first steps")
    parser.add_argument("--repeats", type=int, default=8, help="steps for the part timings")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--classes", default=CLASSES, help="training classes (a smoke run: fewer)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    names = list(training_classes(args.classes))
    t0 = time.perf_counter()
    warm_class_maps(names)
    print(f"class maps of {len(names)} classes built in {time.perf_counter() - t0:.0f} s")
    rates = {}
    for label, config in configs(args.threads, args.steps + args.warmup, args.seed).items():
        rates[label] = boxes_per_second(config, names, args.warmup)
        print(f"{label:>6}: {rates[label]:6.1f} boxes/s through the network (training)")
    print(f" ratio after/before: {rates['after'] / rates['before']:.2f}x")
    print(f"\nparts of one step (32 boxes), seconds, torch threads {args.threads}:")
    for label, config in configs(args.threads, args.steps, args.seed).items():
        parts = step_parts(config, names, args.threads, args.repeats)
        text = ", ".join(f"{k} {v:.3f}" for k, v in parts.items())
        print(f"{label:>6}: {text}")


if __name__ == "__main__":
    main()
