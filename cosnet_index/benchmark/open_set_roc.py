"""The open-set ROC: novel particles flagged against named particles lost, for every rule.

Each episode is ONE collection: every particle of it is imaged by one microscope drawn from the
``imaging`` preset (``collections=[0] * n``; per-particle defocus and position vary), held-out
real molecules of the hard benchmark's tiers. Four kinds of collection (:data:`SCENARIOS`):

- ``all-named``: ``molecules`` molecules, ``per_molecule`` particles each, every molecule named
  by one of its particles (``classes add --subtomogram``); nothing is novel.
- ``half-named``: the same particles, the first ``named`` molecules named, the rest unnamed.
- ``maps``: the same particles, every molecule named by its reference map (``classes add
  --map``'s code path: :func:`~cosnet_index.classes._reference.image_reference`, the default
  :class:`~cosnet_index.classes.ReferenceImaging`, vectors averaged into one shot); nothing is
  novel, and no particle of the collection is a support.
- ``dominant``: other particles of other molecules; one named molecule holds ``dominant_share``
  of the particles, the rest split evenly over ``named - 1`` named and the unnamed molecules.

For every rule of :data:`GRIDS` and each of its parameters (the mixture rule's ``max_lost``, the
collection rule's ``level``, the fixed rule's ``min_prob``) :func:`roc_rows` counts, per episode
and SNR, named particles lost to ``unknown``, novel particles flagged, calls right (a named
particle given its molecule, a novel one ``unknown``) and, for the mixture rule, the loss it
estimated itself. :func:`roc_table` pools episodes, with 95% bootstrap intervals over episodes at
each rule's default. Support particles are left out of every count.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from cosnet_index.benchmark._open_set_metrics import bootstrap_interval
from cosnet_index.benchmark.hard import imaging_simulate, simulate_snrs
from cosnet_index.benchmark.tiers import TIER_NAMES, hard_tiers
from cosnet_index.data.episodes import SimulateFn
from cosnet_index.errors import InputError
from cosnet_index.model import CosNet
from cosnet_index.query import (
    DEFAULT_LEVEL,
    DEFAULT_MAX_LOST,
    DEFAULT_MIN_PROB,
    DEFAULT_RULE,
    class_scores,
    fit_open_set_rule,
    unknown_mask,
)

__all__ = [
    "GRIDS",
    "SCENARIOS",
    "RocConfig",
    "RocEpisode",
    "roc_rows",
    "roc_table",
    "simulate_roc_episodes",
]

log = logging.getLogger(__name__)

SCENARIOS = ("all-named", "half-named", "maps", "dominant")

GRIDS: dict[str, tuple[str, tuple[float, ...], float]] = {
    "mixture": ("max_lost", (0.01, 0.02, 0.05, 0.1, 0.2, 0.3), DEFAULT_MAX_LOST),
    "collection": ("level", (0.5, 0.6, 0.7, 0.8, 0.9), DEFAULT_LEVEL),
    "fixed": ("min_prob", (0.5, 0.7, 0.8, 0.86, 0.95), DEFAULT_MIN_PROB),
}
"""rule -> (parameter, values swept, the rule's default value)."""


@dataclass(frozen=True)
class RocConfig:
    """What the ROC benchmark simulates (defaults: the table in docs/queries.md)."""

    molecules: int = 9
    named: int = 5
    per_molecule: int = 20
    dominant_share: float = 0.8
    episodes: int = 10
    snrs: tuple[float, ...] = (1000.0, 0.5)
    imaging: str = "shifted"
    tiers: tuple[str, ...] = TIER_NAMES
    map_orientations: int = 16
    seed: int = 0

    def __post_init__(self) -> None:
        if not 1 <= self.named < self.molecules:
            raise InputError(f"named must lie in [1, molecules), got {self.named}")
        if self.per_molecule < 2 or self.episodes < 1:
            raise InputError("per_molecule >= 2 and episodes >= 1 are needed")
        if not 0.0 < self.dominant_share < 1.0:
            raise InputError(f"dominant_share must lie in (0, 1), got {self.dominant_share}")


@dataclass(frozen=True)
class RocEpisode:
    """One collection of one scenario.

    Attributes:
        scenario, episode: which.
        molecules: the molecule of each truth index (named ones first).
        named: molecules ``[0, named)`` are named.
        truth: (n,) molecule index of each particle.
        support: (named,) particle index of each named molecule's support, -1 for a map.
        vectors: {snr: (n, d) stored vectors}; shots: {snr: (named, d) support vectors}.
    """

    scenario: str
    episode: int
    molecules: tuple[str, ...]
    named: int
    truth: np.ndarray
    support: np.ndarray
    vectors: dict[float, np.ndarray]
    shots: dict[float, np.ndarray]


def _embed(model: CosNet, volumes: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model.embed(torch.as_tensor(volumes)).numpy()  # (n, d)


def _imaged(
    model: CosNet, simulate: SimulateFn, names: list[str], snrs: tuple[float, ...], seed: int
) -> dict[float, np.ndarray]:
    """Stored vectors of ``names``, one collection (one microscope), at every SNR."""
    imaged = simulate_snrs(simulate, names, snrs, seed, collections=[0] * len(names))
    return {snr: _embed(model, imaged[snr][1]) for snr in snrs}


def _map_shot(model: CosNet, name: str, config: RocConfig, cache: dict[str, np.ndarray]) -> Any:
    """A molecule's class made from its map, as ``classes add --map`` makes it (cached)."""
    if name not in cache:
        from cosnet_index.classes import ReferenceImaging
        from cosnet_index.classes._reference import image_reference, reference_vector
        from cosnet_index.simulate import class_info

        imaging = ReferenceImaging(orientations=config.map_orientations, seed=config.seed)
        density = class_info(name, float(model.config.voxel_size_nm), imaging.resolution_nm)
        boxes = image_reference(density, imaging, box=int(model.config.box))
        with torch.no_grad():
            cache[name] = reference_vector(model, boxes)[0]  # (d,)
    return cache[name]


def _dominant_counts(config: RocConfig) -> np.ndarray:
    """Particles per molecule in a ``dominant`` collection: the first molecule holds
    ``dominant_share`` of ``molecules * per_molecule``, the others share the rest (>= 2 each)."""
    total = config.molecules * config.per_molecule
    first = round(config.dominant_share * total)
    rest = np.full(config.molecules - 1, (total - first) // (config.molecules - 1))
    rest[: (total - first) % (config.molecules - 1)] += 1
    return np.concatenate([[first], np.maximum(rest, 2)])


def simulate_roc_episodes(
    model: CosNet,
    config: RocConfig,
    scenarios: tuple[str, ...] = SCENARIOS,
    simulate: SimulateFn | None = None,
) -> list[RocEpisode]:
    """Simulate and embed every episode of every scenario (seeded by ``config.seed``, episode).

    ``all-named``, ``half-named`` and ``maps`` share one collection per episode (they differ in
    the classes named); ``dominant`` is a second collection.

    Raises:
        InputError: an unknown scenario, or tiers with fewer than ``molecules`` molecules.
    """
    unknown = sorted(set(scenarios) - set(SCENARIOS))
    if unknown:
        raise InputError(f"unknown scenarios {unknown}: use {', '.join(SCENARIOS)}")
    simulate = simulate or imaging_simulate(config.imaging)
    pool = sorted({c for t in hard_tiers(names=config.tiers) for c in t.classes})
    if len(pool) < config.molecules:
        raise InputError(f"{len(pool)} held-out molecules, fewer than {config.molecules}")
    maps: dict[str, np.ndarray] = {}
    out = []
    for e in range(config.episodes):
        rng = np.random.default_rng([config.seed, e])
        molecules = tuple(pool[i] for i in rng.choice(len(pool), config.molecules, replace=False))
        seeds = rng.integers(2**31 - 1, size=2)
        if set(scenarios) & {"all-named", "half-named", "maps"}:
            truth = np.repeat(np.arange(config.molecules), config.per_molecule)
            vectors = _imaged(model, simulate, [molecules[i] for i in truth], config.snrs,
                              int(seeds[0]))  # fmt: skip
            firsts = np.arange(config.molecules) * config.per_molecule
            for scenario, named in (("all-named", config.molecules), ("half-named", config.named)):
                if scenario in scenarios:
                    shots = {s: v[firsts[:named]] for s, v in vectors.items()}
                    out.append(RocEpisode(scenario, e, molecules, named, truth, firsts[:named],
                                          vectors, shots))  # fmt: skip
            if "maps" in scenarios:
                shot = np.stack([_map_shot(model, m, config, maps) for m in molecules])
                out.append(RocEpisode("maps", e, molecules, config.molecules, truth,
                                      np.full(config.molecules, -1), vectors,
                                      {s: shot for s in config.snrs}))  # fmt: skip
        if "dominant" in scenarios:
            counts = _dominant_counts(config)
            truth = np.repeat(np.arange(config.molecules), counts)
            vectors = _imaged(model, simulate, [molecules[i] for i in truth], config.snrs,
                              int(seeds[1]))  # fmt: skip
            firsts = np.concatenate([[0], np.cumsum(counts)[:-1]])[: config.named]
            shots = {s: v[firsts] for s, v in vectors.items()}
            out.append(RocEpisode("dominant", e, molecules, config.named, truth, firsts, vectors,
                                  shots))  # fmt: skip
        log.info("open-set ROC: episode %d/%d simulated", e + 1, config.episodes)
    return out


def roc_rows(episode: RocEpisode, snr: float, bias: float) -> pd.DataFrame:
    """One row per (rule, parameter): counts of one episode at one SNR (supports left out)."""
    scores = class_scores(episode.vectors[snr], [s[None] for s in episode.shots[snr]], bias)
    keep = np.ones(len(scores), bool)
    keep[episode.support[episode.support >= 0]] = False
    truth = episode.truth[keep]
    named = truth < episode.named
    best = scores.argmax(axis=1)[keep]
    rows = []
    for rule, (parameter, values, default) in GRIDS.items():
        for value in values:
            kwargs = {parameter: value}
            fitted = fit_open_set_rule(scores, bias, rule, **kwargs)  # type: ignore[arg-type]
            flags = unknown_mask(scores, fitted)[keep]
            right = np.where(named, ~flags & (best == truth), flags)
            rows.append(
                {
                    "scenario": episode.scenario,
                    "episode": episode.episode,
                    "snr": float(snr),
                    "rule": rule,
                    "parameter": parameter,
                    "value": float(value),
                    "rule_default": bool(np.isclose(value, default)),
                    "default": rule == DEFAULT_RULE and bool(np.isclose(value, default)),
                    "named": int(named.sum()),
                    "lost": int(flags[named].sum()),
                    "novel": int((~named).sum()),
                    "flagged": int(flags[~named].sum()),
                    "right": int(right.sum()),
                    "closed_right": int((best == truth)[named].sum()),
                    "estimated_lost": fitted.estimated_lost,
                    "dominant": fitted.dominant is not None,
                }
            )
    return pd.DataFrame(rows)


def _ratio(groups: list[pd.DataFrame], top: str, bottom: str) -> float:
    g = pd.concat(groups)
    total = g[bottom].sum()
    return float(g[top].sum() / total) if total else float("nan")


def _estimated(groups: list[pd.DataFrame]) -> float:
    """The mixture rule's own estimate of the named particles lost, pooled like ``lost``."""
    g = pd.concat(groups)
    if g["estimated_lost"].isna().all() or not g["named"].sum():
        return float("nan")
    return float((g["estimated_lost"].astype(float) * g["named"]).sum() / g["named"].sum())


def roc_table(rows: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """Per (scenario, SNR, rule, value): named lost, novel flagged, calls right, closed-set
    accuracy and the estimated loss, pooled over episodes; ``(value, lo, hi)`` with a 95%
    bootstrap over episodes at each rule's default, plain values elsewhere."""
    stats = {
        "lost": lambda gs: _ratio(gs, "lost", "named"),
        "flagged": lambda gs: _ratio(gs, "flagged", "novel"),
        "right": _right,
        "closed": lambda gs: _ratio(gs, "closed_right", "named"),
        "estimated_lost": _estimated,
    }
    out = []
    keys = ["scenario", "snr", "rule", "parameter", "value"]
    for key, g in rows.groupby(keys, sort=False):
        groups = [r for _, r in g.groupby("episode")]
        row: dict[str, Any] = dict(zip(keys, key, strict=True))
        row["rule_default"] = bool(g["rule_default"].iloc[0])
        row["default"] = bool(g["default"].iloc[0])
        row["episodes"] = len(groups)
        row["named"] = int(g["named"].sum())
        row["novel"] = int(g["novel"].sum())
        row["dominant"] = float(g["dominant"].mean())
        for name, fn in stats.items():
            value = fn(groups)
            if row["rule_default"]:
                row[name] = (value, *bootstrap_interval(groups, fn, seed=seed))
            else:
                row[name] = (value, float("nan"), float("nan"))
        out.append(row)
    return pd.DataFrame(out)


def _right(groups: list[pd.DataFrame]) -> float:
    g = pd.concat(groups)
    total = g["named"].sum() + g["novel"].sum()
    return float(g["right"].sum() / total) if total else float("nan")
