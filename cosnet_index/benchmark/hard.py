"""The hard benchmark: held-out real molecules, shifted imaging, N-way K-shot, template matching.

For each tier (:mod:`cosnet_index.benchmark.tiers`), N (ways) and SNR, ``episodes`` seeded
episodes. An episode draws N classes of the tier (size-matched tier: inside one mass window),
``max(shots)`` support subtomograms per class and one query of one of them; every subtomogram is
posed and imaged independently (the ``imaging`` preset samples a microscope setting per
subtomogram). A K-shot cell uses the first K supports of each class of the same episodes, so
1-shot and 5-shot are paired; the SNRs of an episode share its classes, poses and imaging and
differ only in the noise level, so they are paired too.

- COS-Net: each class's K support vectors are combined exactly as the store combines the shots
  of a class (:func:`cosnet_index.query._scores.class_scores`, ``reduce=DEFAULT_REDUCE``); the
  prediction is the class of highest probability.
- Template matching (:mod:`cosnet_index._template_matching`): the query is rotated over
  ``baseline_rotations`` rotations and compared with each support by missing-wedge-constrained
  NCC; a class scores its best support (the same K references), for the first
  ``baseline_episodes`` episodes of every cell.

Accuracy comes with a 95% Wilson interval (:func:`cosnet_index.evaluate.wilson_interval`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from cosnet_index.benchmark._hard_maps import collection_imaging, map_prototypes
from cosnet_index.benchmark._hard_simulation import (
    episode_collections,
    imaging_simulate,
    simulate_snrs,
)
from cosnet_index.benchmark._hard_tables import KEYS
from cosnet_index.benchmark.tiers import TIER_NAMES, Tier, draw_classes
from cosnet_index.data.episodes import SimulateFn
from cosnet_index.errors import InputError
from cosnet_index.evaluate import episode_rows
from cosnet_index.model import CosNet
from cosnet_index.query._scores import DEFAULT_REDUCE, Reduce, class_scores
from cosnet_index.simulate.microscope.presets import SHIFTED_FIELDS

__all__ = ["COLLECTION_MODES", "HardConfig", "hard_cell_episodes", "run_hard_benchmark"]

logger = logging.getLogger(__name__)

COLLECTION_MODES = ("same", "cross", "box", "map")


@dataclass(frozen=True)
class HardConfig:
    """What the hard benchmark runs (defaults: the table in docs/results.md)."""

    tiers: tuple[str, ...] = TIER_NAMES
    ways: tuple[int, ...] = (2, 5, 10)
    shots: tuple[int, ...] = (1, 5)
    snrs: tuple[float, ...] = (1000.0, 0.5, 0.1)
    episodes: int = 100
    baseline_episodes: int = 40
    baseline_rotations: int = 100
    imaging: str = "shifted"
    # "same": an episode is one collection (its supports and query share a microscope, per-
    # particle defocus and position vary); "cross": the supports come from one collection and the
    # query from another (classes reused across microscopes); "box": a microscope per box (the
    # benchmark before the campaign issue); "map": the same queries as "same", each class one
    # prototype made from its map imaged like the collection (``classes add --map``; 1-shot,
    # no template-matching baseline; benchmark/_hard_maps.py)
    collection: str = "same"
    crowding: bool = False
    reduce: Reduce = DEFAULT_REDUCE
    seed: int = 0
    chunk: int = 25  # episodes simulated and embedded at once

    def __post_init__(self) -> None:
        if min(self.ways, default=0) < 2:
            raise InputError(f"ways must all be >= 2, got {self.ways}")
        if min(self.shots, default=0) < 1:
            raise InputError(f"shots must all be >= 1, got {self.shots}")
        if any(not s > 0 for s in self.snrs):
            raise InputError(f"every SNR must be > 0 (inf for no noise), got {self.snrs}")
        if self.episodes < 1 or self.baseline_episodes < 0 or self.baseline_rotations < 1:
            raise InputError("episodes >= 1, baseline_episodes >= 0, baseline_rotations >= 1")
        if self.chunk < 1:
            raise InputError(f"chunk must be >= 1, got {self.chunk}")
        if self.collection not in COLLECTION_MODES:
            raise InputError(
                f"collection must be one of {COLLECTION_MODES}, got {self.collection!r}"
            )
        if self.collection == "map" and max(self.shots) > 1:
            raise InputError(
                "supports made from maps are one prototype per class: use --shots 1 with "
                f"--collection map (got shots {self.shots})"
            )


def _cosnet_predictions(
    support: torch.Tensor, query: torch.Tensor, shots: int, bias: float, reduce: Reduce
) -> tuple[np.ndarray, np.ndarray]:
    """Scores (e, N) of each query against its classes' first ``shots`` support vectors."""
    e, n = support.shape[:2]
    scores = np.empty((e, n), dtype=np.float32)
    for j in range(e):
        prototypes = [support[j, c, :shots].numpy() for c in range(n)]  # (shots, d) each
        scores[j] = class_scores(query[j : j + 1].numpy(), prototypes, bias, reduce=reduce)[0]
    return scores, scores.argmax(axis=1)


def hard_cell_episodes(
    model: CosNet,
    tier: Tier,
    ways: int,
    config: HardConfig,
    simulate: SimulateFn | None = None,
) -> pd.DataFrame:
    """Every episode of one (tier, N) for every SNR and K of ``config``; one row per
    (method, shots, snr, episode).

    Columns: method, tier, ways, shots, snr, episode, classes, target, pred, correct,
    score_target, score_pred, seconds (COS-Net: per embedded subtomogram; template matching:
    per comparison), and the query's microscope ``query_<field>`` for each field of
    :data:`~cosnet_index.simulate.microscope.presets.SHIFTED_FIELDS` (the fields the
    ``shifted`` preset moves) when the simulator records it.

    Raises:
        InputError: the tier cannot make a ``ways``-way episode.
    """
    from cosnet_index._template_matching import rotation_grid, template_match_scores

    simulate = simulate or imaging_simulate(config.imaging)
    k_max = max(config.shots)
    rotations = rotation_grid(config.baseline_rotations, seed=config.seed)
    tier_code = TIER_NAMES.index(tier.name) if tier.name in TIER_NAMES else 99
    bias = model.head_bias
    rows: list[dict] = []
    first_row = 0
    for start in range(0, config.episodes, config.chunk):
        count = min(config.chunk, config.episodes - start)
        rng = np.random.default_rng([config.seed, tier_code, ways, start])
        picks = np.stack([draw_classes(tier, ways, rng) for _ in range(count)])  # (e, N)
        target = rng.integers(0, ways, size=count)
        names = [tier.classes[i] for i in np.repeat(picks.reshape(-1), k_max)]  # (e, N, K)
        names += [tier.classes[picks[j, target[j]]] for j in range(count)]
        sim_seed = int(rng.integers(2**31 - 1))
        labels = [";".join(tier.classes[i] for i in p) for p in picks]
        collections = episode_collections(config.collection, count, ways * k_max)
        imaged = simulate_snrs(simulate, names, config.snrs, sim_seed, config.crowding, collections)
        n_support = count * ways * k_max
        from_maps = None
        if config.collection == "map":  # the supports' boxes are replaced by the classes' maps
            batch = imaged[config.snrs[0]][0]
            members = [range(j * ways * k_max, (j + 1) * ways * k_max) for j in range(count)]
            settings = [
                collection_imaging(batch, [*m, n_support + j], sim_seed + j)
                for j, m in enumerate(members)
            ]
            classes = [[tier.classes[i] for i in p] for p in picks]
            from_maps = map_prototypes(model, classes, settings)
        for snr in config.snrs:
            batch, volumes = imaged[snr]
            vols = torch.as_tensor(volumes)
            box = vols.shape[-1]
            t0 = time.perf_counter()
            if from_maps is None:
                vectors = model.embed(vols)
                support_v = vectors[:n_support].reshape(count, ways, k_max, -1)
                query_v = vectors[n_support:]
            else:
                query_v = vectors = model.embed(vols[n_support:])
                support_v = from_maps
            per_box = (time.perf_counter() - t0) / len(vectors)
            for shots in config.shots:
                scores, pred = _cosnet_predictions(support_v, query_v, shots, bias, config.reduce)
                rows += _rows(
                    "cosnet", tier, ways, shots, snr, start, labels, target, scores, pred, per_box
                )
            support = vols[:n_support].reshape(count, ways * k_max, box, box, box)
            query = vols[n_support:]
            n_base = min(count, max(0, config.baseline_episodes - start))
            if from_maps is not None:
                n_base = 0  # template matching from a map: not implemented here
            for j in range(n_base):
                t0 = time.perf_counter()
                # one query rotated once, compared with all N x K supports, under the episode's
                # typical tilt range
                members = [*range(j * ways * k_max, (j + 1) * ways * k_max), n_support + j]
                tilt = _tilt_max_deg(batch, members)
                s = template_match_scores(query[j : j + 1], support[j], rotations, tilt)[0]
                per_comparison = (time.perf_counter() - t0) / (ways * k_max)
                s = s.reshape(ways, k_max).numpy()
                for shots in config.shots:
                    best = s[None, :, :shots].max(axis=2)  # a class scores its best reference
                    rows += _rows(
                        "template_matching",
                        tier,
                        ways,
                        shots,
                        snr,
                        start + j,
                        labels[j : j + 1],
                        target[j : j + 1],
                        best,
                        best.argmax(axis=1),
                        per_comparison,
                    )
        imaging = _query_imaging(imaged[config.snrs[0]][0], n_support, count)
        for row in rows[first_row:]:
            row.update(imaging[row["episode"] - start])
        first_row = len(rows)
        logger.info("%s N=%d: %d/%d episodes", tier.name, ways, start + count, config.episodes)
    return pd.DataFrame(rows)


def _query_imaging(batch: object, n_support: int, count: int) -> list[dict]:
    """Per episode, ``query_<field>`` of ``SHIFTED_FIELDS`` for its query box (the
    half tilt range as ``tilt_max_deg``); empty dicts when the simulator records no imaging."""
    imaging = getattr(batch, "imaging", ())
    if not imaging:
        return [{} for _ in range(count)]
    out = []
    for j in range(count):
        im = imaging[n_support + j]
        values = {f: getattr(im, f) for f in SHIFTED_FIELDS}
        values["tilt_max_deg"] = (im.tilt_max_deg - im.tilt_min_deg) / 2
        out.append({f"query_{f}": v for f, v in values.items()})
    return out


def _tilt_max_deg(batch: object, members: Sequence[int]) -> float:
    """Median half tilt range of the ``members`` of a batch (60 degrees without imaging info).

    Template matching takes one wedge for the reference and the target; each subtomogram here
    has its own tilt series, so the episode's median stands for all of them.
    """
    imaging = getattr(batch, "imaging", ())
    if not imaging:
        return 60.0
    half = [(imaging[i].tilt_max_deg - imaging[i].tilt_min_deg) / 2 for i in members]
    return float(np.median(half))


def _rows(
    method: str,
    tier: Tier,
    ways: int,
    shots: int,
    snr: float,
    start: int,
    labels: Sequence[str],
    target: np.ndarray,
    scores: np.ndarray,
    pred: np.ndarray,
    seconds: float,
) -> list[dict]:
    cell = {"method": method, "tier": tier.name, "ways": ways, "shots": shots, "snr": float(snr)}
    return episode_rows(cell, start, labels, target, scores, pred, seconds)


def run_hard_benchmark(
    model: CosNet,
    tiers: Sequence[Tier],
    config: HardConfig,
    simulate: SimulateFn | None = None,
    progress: bool = True,
) -> tuple[pd.DataFrame, list[str]]:
    """Every cell of the benchmark; returns (episodes, notes on cells that could not run)."""
    from tqdm.auto import tqdm

    simulate = simulate or imaging_simulate(config.imaging)
    frames, notes = [], []
    cells = [(t, w) for t in tiers for w in config.ways]
    for tier, ways in tqdm(cells, desc="hard benchmark (tier, N)", disable=not progress):
        if tier.max_ways() < ways:
            note = (
                f"{tier.name}, {ways}-way: not run, at most {tier.max_ways()} of the tier's "
                f"{len(tier.classes)} classes can share an episode (mass factor {tier.mass_ratio})"
            )
            logger.warning(note)
            notes.append(note)
            continue
        frames.append(hard_cell_episodes(model, tier, ways, config, simulate))
    episodes = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=KEYS)
    return episodes, notes
