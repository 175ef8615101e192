"""Episodic n-way-1-shot sampling from the simulator (training and evaluation).

An *episode* is two support sets over the same ``n`` randomly drawn classes: set A and set B hold
one independently posed (random rotation, shift, CTF, missing wedge, noise) subtomogram of each
class. Every (A_i, B_j) pair is a training pair, with label ``i == j``: ``n`` positives and
``n(n-1)`` negatives, which the loss balances (see :func:`cosnet_index.train.episode_loss`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from cosnet_index.errors import InputError

__all__ = ["Episode", "EpisodeSampler", "SimulateFn", "default_simulate"]

SimulateFn = Callable[..., Any]
"""``simulate(names, snr, seed, crowding=...) -> batch`` with ``.volumes`` (n, B, B, B) float32
and ``.masks`` (n, B, B, B) bool, like :func:`cosnet_index.simulate.simulate_subtomograms`."""


def default_simulate() -> SimulateFn:
    """The project's simulator (imported lazily)."""
    from cosnet_index.simulate import simulate_subtomograms

    return simulate_subtomograms


@dataclass
class Episode:
    """Two support sets over the same classes; ``volumes_a[i]`` and ``volumes_b[i]`` are class
    ``classes[i]``."""

    classes: list[str]
    snr: float
    volumes_a: torch.Tensor  # (n, B, B, B) float32
    masks_a: torch.Tensor  # (n, B, B, B) bool
    volumes_b: torch.Tensor  # (n, B, B, B)
    masks_b: torch.Tensor  # (n, B, B, B)


class EpisodeSampler:
    """Draw seeded episodes.

    Args:
        class_names: the classes to draw from (e.g. ``default_split().train``).
        ways: classes per episode ``n``.
        snrs: SNR levels (``math.inf`` = no noise), one drawn per episode.
        snr_weights: relative probability of each level (uniform when None).
        crowding_fraction: probability that an episode's boxes contain neighbour molecules.
        seed: the sampler's seed; episode ``k`` depends only on (seed, k).
        simulate: the simulator function (default: the project's).
        simulation_config: passed to the simulator as ``config`` when given.

    Raises:
        InputError: fewer classes than ``ways``, or bad SNR weights.
    """

    def __init__(
        self,
        class_names: Sequence[str],
        ways: int,
        snrs: Sequence[float] = (math.inf, 1000.0, 0.5, 0.1),
        snr_weights: Sequence[float] | None = None,
        crowding_fraction: float = 0.0,
        seed: int = 0,
        simulate: SimulateFn | None = None,
        simulation_config: Any = None,
    ) -> None:
        self.class_names = list(class_names)
        if ways < 2 or ways > len(self.class_names):
            raise InputError(
                f"ways={ways} needs 2..{len(self.class_names)} classes; "
                "lower --ways or give more classes"
            )
        weights = np.ones(len(snrs)) if snr_weights is None else np.asarray(snr_weights, float)
        if len(weights) != len(snrs) or (weights < 0).any() or weights.sum() <= 0:
            raise InputError("snr_weights must be non-negative, one per SNR level, not all zero")
        self.ways = ways
        self.snrs = [float(s) for s in snrs]
        self.snr_p = weights / weights.sum()
        self.crowding_fraction = crowding_fraction
        self.seed = seed
        self.simulate = simulate or default_simulate()
        self.simulation_config = simulation_config

    def episode(self, index: int, snr: float | None = None) -> Episode:
        """Episode number ``index`` (deterministic in ``(seed, index)``)."""
        rng = np.random.default_rng([self.seed, index])
        picks = rng.choice(len(self.class_names), size=self.ways, replace=False)
        classes = [self.class_names[i] for i in picks]
        if snr is None:
            snr = self.snrs[int(rng.choice(len(self.snrs), p=self.snr_p))]
        crowding = bool(rng.random() < self.crowding_fraction)
        kwargs: dict[str, Any] = {"crowding": crowding}
        if self.simulation_config is not None:
            kwargs["config"] = self.simulation_config
        sim_seed = int(rng.integers(2**31 - 1))
        batch = self.simulate(classes + classes, snr, sim_seed, **kwargs)
        volumes = torch.as_tensor(np.asarray(batch.volumes, dtype=np.float32))
        masks = torch.as_tensor(np.asarray(batch.masks, dtype=bool))
        n = self.ways
        return Episode(classes, snr, volumes[:n], masks[:n], volumes[n:], masks[n:])

    def __iter__(self) -> Iterator[Episode]:
        index = 0
        while True:
            yield self.episode(index)
            index += 1
