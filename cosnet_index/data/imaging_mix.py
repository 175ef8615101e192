"""Which microscope images a training episode: a mix of presets, one microscope per collection.

A spec names presets with weights, ``"paper:1,broad:3"`` (a bare ``"broad"`` is ``broad:1``).
Each episode draws one preset from the weights; under ``per="collection"`` its boxes are ONE
collection (support and queries share one microscope, with per-particle defocus and position,
:meth:`~cosnet_index.simulate.microscope.ImagingRanges.sample_collection`), as when a user
classifies a collection with a support picked from it. With probability ``cross_collection``
the two halves of an episode (the A and B sets) come from two collections instead: a class
reused on another microscope. ``per="box"`` draws a microscope per box (the old training, kept
for comparison).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from cosnet_index.errors import InputError

__all__ = ["ImagingMix", "parse_imaging_mix"]

PER_CHOICES = ("box", "collection")


@dataclass(frozen=True)
class ImagingMix:
    """Presets and weights of the episodes' imaging (see the module docstring)."""

    presets: tuple[str, ...] = ("paper",)
    weights: tuple[float, ...] = (1.0,)
    per: str = "box"
    cross_collection: float = 0.0

    def __post_init__(self) -> None:
        from cosnet_index.simulate.microscope import imaging_preset

        if not self.presets or len(self.presets) != len(self.weights):
            raise InputError("an imaging mix needs one weight per preset, e.g. 'paper:1,broad:3'")
        for name in self.presets:
            imaging_preset(name)  # unknown names fail here, before any step
        if any(not (w >= 0 and math.isfinite(w)) for w in self.weights) or sum(self.weights) <= 0:
            raise InputError(f"imaging weights must be >= 0 and not all 0, got {self.weights}")
        if self.per not in PER_CHOICES:
            raise InputError(f"per must be one of {PER_CHOICES}, got {self.per!r}")
        if not 0.0 <= self.cross_collection <= 1.0:
            raise InputError(f"cross_collection must be in [0, 1], got {self.cross_collection}")

    @property
    def spec(self) -> str:
        """The ``name:weight,...`` spec of this mix."""
        return ",".join(f"{p}:{w:g}" for p, w in zip(self.presets, self.weights, strict=True))

    def choose(self, seed: int) -> tuple[str, bool]:
        """(preset, cross-collection?) of the episode simulated with ``seed`` (deterministic)."""
        rng = np.random.default_rng([int(seed), 0x1A6E])
        p = np.asarray(self.weights, dtype=np.float64)
        preset = self.presets[int(rng.choice(len(p), p=p / p.sum()))]
        cross = bool(rng.random() < self.cross_collection)
        return preset, cross

    def __call__(self, names: Sequence[str], snr: Any, seed: int, **kwargs: Any) -> Any:
        """A :data:`~cosnet_index.data.episodes.SimulateFn`: the episode's boxes ``names``
        (set A then set B) imaged by the preset and collection(s) this mix draws for ``seed``."""
        from cosnet_index.simulate import simulate_subtomograms

        preset, cross = self.choose(seed)
        collections = None
        if self.per == "collection":
            half = len(names) // 2
            collections = [0] * len(names) if not cross else [0] * half + [1] * (len(names) - half)
        return simulate_subtomograms(
            names, snr, seed, imaging=preset, collections=collections, **kwargs
        )

    def to_dict(self) -> dict[str, Any]:
        """The mix and every preset's full ranges (for a checkpoint's data manifest)."""
        from cosnet_index.simulate.microscope import imaging_preset

        return {
            "spec": self.spec,
            "per": self.per,
            "cross_collection": self.cross_collection,
            "ranges": {p: imaging_preset(p).to_dict() for p in self.presets},
        }


def parse_imaging_mix(spec: str, per: str = "box", cross_collection: float = 0.0) -> ImagingMix:
    """``"paper:1,broad:3"`` (or one preset name) -> :class:`ImagingMix`.

    Raises:
        InputError: a malformed spec, an unknown preset or a bad weight.
    """
    presets, weights = [], []
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        name, _, weight = part.partition(":")
        try:
            value = float(weight) if weight else 1.0
        except ValueError:
            raise InputError(
                f"bad imaging weight {weight!r} in {spec!r}: write e.g. 'paper:1,broad:3'"
            ) from None
        presets.append(name.strip())
        weights.append(value)
    return ImagingMix(tuple(presets), tuple(weights), per, cross_collection)
