"""A toy simulator for model/training tests: distinct solid shapes, seeded, instant."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class ToyBatch:
    volumes: np.ndarray  # (n, 32, 32, 32) float32, molecules dark
    masks: np.ndarray  # (n, 32, 32, 32) bool


def _shape(name: str, grid: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    z, y, x = grid - rng.uniform(-2, 2, size=(3, 1, 1, 1))
    if name == "ball":
        return z**2 + y**2 + x**2 < 8**2
    if name == "cube":
        return (np.abs(z) < 6) & (np.abs(y) < 6) & (np.abs(x) < 6)
    if name == "rod":
        axis = rng.integers(3)
        coords = [z, y, x]
        long = coords.pop(axis)
        return (np.abs(long) < 12) & (coords[0] ** 2 + coords[1] ** 2 < 3**2)
    # "ring"
    r = np.sqrt(y**2 + x**2)
    return (np.abs(r - 8) < 2.5) & (np.abs(z) < 3)


def toy_simulate(names, snr, seed, crowding=False, config=None, collections=None) -> ToyBatch:
    """Toy boxes of the named shapes; ``collections`` (one microscope per collection) is
    accepted like the real simulator's and ignored: the toy has no microscope."""
    rng = np.random.default_rng(seed)
    c = np.arange(32) - 15.5
    grid = np.stack(np.meshgrid(c, c, c, indexing="ij"))
    masks = np.stack([_shape(n, grid, rng) for n in names])
    signal = -masks.astype(np.float32)
    noise_std = 0.0 if not np.isfinite(snr) else float(np.sqrt(signal.var() / snr))
    volumes = signal + rng.normal(0, 1, signal.shape).astype(np.float32) * noise_std
    return ToyBatch(volumes.astype(np.float32), masks)
