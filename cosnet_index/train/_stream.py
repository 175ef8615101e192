"""The episodes a run trains on, simulated ahead of the step that uses them.

:func:`episode_source` gives ``draw(step)``, the seeded episodes of a step (clean SNRs only for
the first ``clean_steps``); :func:`episode_stream` yields them in order, simulated one step ahead
in a thread beside training (``sim_workers=0``) or up to 4 steps ahead in a worker process
(``sim_workers=1``). Episode ``k`` depends only on (seed, k), so both give the same episodes.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Generator, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import torch

from cosnet_index.data.episodes import Episode, EpisodeSampler, SimulateFn
from cosnet_index.train.config import TrainConfig

__all__ = ["episode_source", "episode_stream"]


def episode_source(
    class_names: Sequence[str],
    config: TrainConfig,
    simulate: SimulateFn | None,
    simulation_config: Any,
) -> Callable[[int], list[Episode]]:
    """``draw(step)``: the episodes of a step (clean SNRs only for the first ``clean_steps``)."""
    sampler = EpisodeSampler(
        class_names,
        config.ways,
        config.snrs,
        config.snr_weights,
        config.crowding_fraction,
        seed=config.seed,
        simulate=simulate,
        simulation_config=simulation_config,
    )
    clean = EpisodeSampler(
        class_names,
        config.ways,
        [s for s in config.snrs if s >= 1000] or [math.inf],
        crowding_fraction=config.crowding_fraction,
        seed=config.seed,
        simulate=simulate,
        simulation_config=simulation_config,
    )

    def draw(step: int) -> list[Episode]:
        src = clean if step < config.clean_steps else sampler
        k = config.episodes_per_step
        return [src.episode(step * k + i) for i in range(k)]

    return draw


def episode_stream(
    draw: Callable[[int], list[Episode]], start: int, config: TrainConfig
) -> Generator[tuple[int, list[Episode]], None, None]:
    """``(step, episodes)`` from ``start`` to ``config.steps``, simulated ahead of training.

    ``sim_workers=0``: one thread simulates the next step while this one trains (shares the
    interpreter and torch's thread pool). ``sim_workers=k``: k worker processes (one torch thread
    each; worker i simulates steps i, i + k, ...; the loader returns them in step order) keep up
    to 4 steps each ready, so simulation never waits for the GIL. Episode ``k`` depends only on
    (seed, k), so all give the same episodes.
    """
    if start >= config.steps:
        return
    if config.sim_workers == 0:
        pool = ThreadPoolExecutor(max_workers=1)
        future = pool.submit(draw, start)
        try:
            for step in range(start, config.steps):
                episodes = future.result()
                if step + 1 < config.steps:
                    future = pool.submit(draw, step + 1)
                yield step, episodes
        finally:
            future.cancel()
            pool.shutdown(wait=True, cancel_futures=True)
        return
    loader = torch.utils.data.DataLoader(
        _StepDataset(draw, start, config.steps),
        batch_size=None,
        num_workers=config.sim_workers,
        prefetch_factor=4,
        multiprocessing_context="fork" if os.name == "posix" else None,
    )
    yield from loader


class _StepDataset(torch.utils.data.IterableDataset):
    """The episodes of steps ``start .. stop - 1``; worker i of k takes steps i, i + k, ...
    (the loader interleaves its workers round-robin, which restores the step order)."""

    def __init__(self, draw: Callable[[int], list[Episode]], start: int, stop: int) -> None:
        self.draw, self.start, self.stop = draw, start, stop

    def __iter__(self) -> Iterator[tuple[int, list[Episode]]]:
        info = torch.utils.data.get_worker_info()
        first, every = (0, 1) if info is None else (info.id, info.num_workers)
        for step in range(self.start + first, self.stop, every):
            yield step, self.draw(step)
