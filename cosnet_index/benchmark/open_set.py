"""Open set and discovery on the hard benchmark: named molecules, unnamed ones, a microscope
change.

An *episode* is a small collection: ``known + novel`` held-out real molecules (drawn from the
hard benchmark's tiers, :func:`~cosnet_index.benchmark.hard_tiers`), ``per_molecule`` particles
of each, every particle posed and imaged independently (``imaging`` preset: ``shifted`` draws a
microscope outside the training defaults per particle, ``paper`` is the training imaging). The
first particle of each known molecule is its one-shot support (a particle of the collection, as
``classes add --subtomogram`` makes it); the other molecules are unnamed. The SNRs of an episode
share its particles and differ only in the noise (:func:`~cosnet_index.benchmark.simulate_snrs`).

Per particle (supports left out) :func:`score_collection` gives three novelty scores and two
decisions: the maximum head probability (fixed threshold ``min_prob``), the distance to the
nearest prototype in L2 (a rule-free baseline), and classify's collection rule
(:mod:`cosnet_index.query._open_set`). :func:`open_set_table` turns them into AUROC, novel flagged
at 5% of known lost, closed-set accuracy and each rule's operating point, with 95% bootstrap
intervals over episodes. :func:`discovery_rows` runs ``discover --exclude-known`` (the collection
rule, then :func:`~cosnet_index.query.discover`) per episode and scores its candidates against the
truth (:func:`discovery_table`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from cosnet_index.benchmark._hard_simulation import imaging_simulate, simulate_snrs
from cosnet_index.benchmark._open_set_metrics import (
    adjusted_rand_index,
    auroc,
    bootstrap_interval,
    completeness,
    flagged_at_lost,
    molecules_found,
    purity,
)
from cosnet_index.benchmark.tiers import TIER_NAMES, hard_tiers
from cosnet_index.data.episodes import SimulateFn
from cosnet_index.errors import InputError
from cosnet_index.model import CosNet
from cosnet_index.query import (
    DEFAULT_LEVEL,
    DEFAULT_MIN_PROB,
    DEFAULT_NEIGHBOURS,
    class_scores,
    discover,
    fit_open_set_rule,
    novelty_scores,
    unknown_mask,
)

__all__ = [
    "Collection",
    "OpenSetConfig",
    "discovery_rows",
    "discovery_table",
    "load_collections",
    "open_set_table",
    "save_collections",
    "score_collection",
    "simulate_collections",
]

log = logging.getLogger(__name__)

METHODS = {
    "max_prob": "max head probability (fixed threshold)",
    "prototype_l2": "nearest prototype, L2 distance",
    "collection": "collection rule (--rule collection)",
}


@dataclass(frozen=True)
class OpenSetConfig:
    """What the open-set benchmark simulates (defaults: the tables in docs/queries.md)."""

    known: int = 5
    novel: int = 4
    per_molecule: int = 20
    episodes: int = 20
    snrs: tuple[float, ...] = (1000.0, 0.5, 0.1)
    imaging: str = "shifted"
    tiers: tuple[str, ...] = TIER_NAMES
    seed: int = 0

    def __post_init__(self) -> None:
        if self.known < 1 or self.novel < 1 or self.per_molecule < 2 or self.episodes < 1:
            raise InputError("known, novel, episodes >= 1 and per_molecule >= 2 are needed")


@dataclass(frozen=True)
class Collection:
    """One episode: molecules (known first), truth (n,) molecule index, support (known,)
    particle index of each known molecule's shot, vectors {snr: (n, d) stored vectors}."""

    episode: int
    molecules: tuple[str, ...]
    known: int
    truth: np.ndarray
    support: np.ndarray
    vectors: dict[float, np.ndarray]


def simulate_collections(
    model: CosNet, config: OpenSetConfig, simulate: SimulateFn | None = None
) -> list[Collection]:
    """Simulate and embed every episode of ``config`` (seeded by ``config.seed`` and episode).

    Raises:
        InputError: the tiers hold fewer than ``known + novel`` molecules.
    """
    simulate = simulate or imaging_simulate(config.imaging)
    pool = sorted({c for t in hard_tiers(names=config.tiers) for c in t.classes})
    ways = config.known + config.novel
    if len(pool) < ways:
        raise InputError(f"{len(pool)} held-out molecules, fewer than {ways}; lower known/novel")
    out = []
    for e in range(config.episodes):
        rng = np.random.default_rng([config.seed, e])
        molecules = tuple(pool[i] for i in rng.choice(len(pool), ways, replace=False))
        truth = np.repeat(np.arange(ways), config.per_molecule)
        names = [molecules[i] for i in truth]
        imaged = simulate_snrs(simulate, names, config.snrs, int(rng.integers(2**31 - 1)))
        vectors = {}
        for snr in config.snrs:
            with torch.no_grad():
                vectors[snr] = model.embed(torch.as_tensor(imaged[snr][1])).numpy()  # (n, d)
        support = np.arange(config.known) * config.per_molecule
        out.append(Collection(e, molecules, config.known, truth, support, vectors))
        log.info("open set: episode %d/%d simulated", e + 1, config.episodes)
    return out


def save_collections(
    path: str | Path, collections: Sequence[Collection], config: OpenSetConfig
) -> None:
    """Cache embedded episodes (npz) so that both tables reuse one simulation."""
    arrays: dict[str, np.ndarray] = {"config": np.array(repr(asdict(config)))}
    for c in collections:
        arrays[f"{c.episode}/molecules"] = np.array(c.molecules)
        arrays[f"{c.episode}/truth"] = c.truth
        arrays[f"{c.episode}/support"] = c.support
        arrays[f"{c.episode}/known"] = np.array(c.known)
        for snr, xb in c.vectors.items():
            arrays[f"{c.episode}/x/{snr!r}"] = xb
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez_compressed(tmp, **arrays)
    tmp.replace(path)


def load_collections(path: str | Path, config: OpenSetConfig) -> list[Collection] | None:
    """The cached episodes of ``config`` at ``path``, or None (no cache, or another config)."""
    path = Path(path)
    if not path.is_file():
        return None
    with np.load(path) as z:
        if str(z["config"]) != repr(asdict(config)):
            log.info("cache %s holds another configuration: simulating again", path)
            return None
        out = []
        for e in range(config.episodes):
            vectors = {s: z[f"{e}/x/{float(s)!r}"] for s in config.snrs}
            out.append(
                Collection(
                    e,
                    tuple(str(m) for m in z[f"{e}/molecules"]),
                    int(z[f"{e}/known"]),
                    z[f"{e}/truth"],
                    z[f"{e}/support"],
                    vectors,
                )
            )
    return out


def _rule_scores(c: Collection, snr: float, bias: float) -> np.ndarray:
    xb = c.vectors[snr]
    return class_scores(xb, [xb[i : i + 1] for i in c.support], bias)  # (n, known)


def score_collection(
    c: Collection,
    snr: float,
    bias: float,
    min_prob: float = DEFAULT_MIN_PROB,
    level: float = DEFAULT_LEVEL,
    neighbours: int = DEFAULT_NEIGHBOURS,
) -> pd.DataFrame:
    """One row per non-support particle: truth, closed-set correctness, novelty scores, flags."""
    xb = c.vectors[snr]
    scores = _rule_scores(c, snr, bias)
    rule = fit_open_set_rule(scores, bias, "collection", min_prob, level, neighbours)
    protos = xb[c.support]  # (known, d)
    l2 = np.sqrt(((xb[:, None, :] - protos[None]) ** 2).sum(axis=2)).min(axis=1)
    p_best = scores.max(axis=1)
    keep = np.ones(len(xb), bool)
    keep[c.support] = False
    known = c.truth < c.known
    return pd.DataFrame(
        {
            "episode": c.episode,
            "snr": float(snr),
            "molecule": np.array(c.molecules)[c.truth][keep],
            "known": known[keep],
            "correct": (scores.argmax(axis=1) == c.truth)[keep],
            "max_prob": (1.0 - p_best)[keep],
            "prototype_l2": l2[keep],
            "collection": novelty_scores(scores, rule)[keep],
            "flag_max_prob": (p_best < min_prob)[keep],
            "flag_collection": unknown_mask(scores, rule)[keep],
            "fallback": rule.name != "collection",
        }
    )


def _cell(rows: pd.DataFrame, fn, seed: int) -> tuple[float, float, float]:  # type: ignore[no-untyped-def]
    groups = [g for _, g in rows.groupby("episode")]
    value = fn(groups)
    lo, hi = bootstrap_interval(groups, fn, seed=seed)
    return value, lo, hi


def open_set_table(rows: pd.DataFrame, lost: float = 0.05, seed: int = 0) -> pd.DataFrame:
    """Per SNR and method: AUROC, novel flagged at ``lost`` known lost, closed-set accuracy and
    the rule's operating point, each ``(value, lo, hi)`` with a 95% bootstrap over episodes."""

    def pooled(groups):  # type: ignore[no-untyped-def]
        return pd.concat(groups)

    out = []
    for snr, at in rows.groupby("snr", sort=False):
        for method in METHODS:

            def auc(groups, m=method):  # type: ignore[no-untyped-def]
                r = pooled(groups)
                return auroc(r.loc[r["known"], m].to_numpy(), r.loc[~r["known"], m].to_numpy())

            def at_lost(groups, m=method):  # type: ignore[no-untyped-def]
                r = pooled(groups)
                k, n = r.loc[r["known"], m].to_numpy(), r.loc[~r["known"], m].to_numpy()
                return flagged_at_lost(k, n, lost)

            def closed(groups):  # type: ignore[no-untyped-def]
                r = pooled(groups)
                return float(r.loc[r["known"], "correct"].mean())

            row = {
                "snr": snr,
                "method": method,
                "auroc": _cell(at, auc, seed),
                "flagged_at_lost": _cell(at, at_lost, seed),
                "closed_set_accuracy": _cell(at, closed, seed),
                "known": int(at["known"].sum()),
                "novel": int((~at["known"]).sum()),
                "episodes": int(at["episode"].nunique()),
            }
            flag = f"flag_{method}"
            if flag in at:

                def flagged(groups, f=flag):  # type: ignore[no-untyped-def]
                    r = pooled(groups)
                    return float(r.loc[~r["known"], f].mean())

                def lost_known(groups, f=flag):  # type: ignore[no-untyped-def]
                    r = pooled(groups)
                    return float(r.loc[r["known"], f].mean())

                row["novel_flagged"] = _cell(at, flagged, seed)
                row["known_lost"] = _cell(at, lost_known, seed)
            out.append(row)
    return pd.DataFrame(out)


def discovery_rows(
    c: Collection,
    snr: float,
    bias: float,
    min_probs: Sequence[float],
    min_sizes: Sequence[int],
    known_prob: float = DEFAULT_MIN_PROB,
    seed: int = 0,
) -> pd.DataFrame:
    """``discover --exclude-known`` on one episode for each (min_prob, min_size), scored.

    The particles the collection rule calls ``unknown`` are clustered; candidates are scored on
    every particle of the collection (purity: members of a candidate from its majority molecule,
    known ones wrongly flagged included), and on the unnamed molecules' particles (completeness,
    ARI with unclustered particles as singletons, molecules found: majority of a candidate of
    purity >= 0.9).
    """
    xb = c.vectors[snr]
    scores = _rule_scores(c, snr, bias)
    flagged = np.flatnonzero(
        unknown_mask(scores, fit_open_set_rule(scores, bias, "collection", known_prob))
    )
    novel_ids = list(range(c.known, len(c.molecules)))
    novel = c.truth >= c.known
    rows = []
    for min_prob in min_probs:
        for min_size in min_sizes:
            labels = np.full(len(xb), -1, np.int64)
            n_candidates = 0
            if len(flagged) >= 2:
                found = discover(
                    xb[flagged], flagged, bias, min_prob=min_prob, min_size=min_size, seed=seed
                )
                labels[flagged] = found.labels
                n_candidates = len(found.candidates)
            rows.append(
                {
                    "episode": c.episode,
                    "snr": float(snr),
                    "min_prob": float(min_prob),
                    "min_size": int(min_size),
                    "flagged": len(flagged),
                    "candidates": n_candidates,
                    "unnamed": len(novel_ids),
                    "purity": purity(c.truth, labels),
                    "completeness": completeness(c.truth, labels, novel_ids),
                    "ari": adjusted_rand_index(c.truth[novel], labels[novel]),
                    "found": molecules_found(c.truth, labels, novel_ids),
                }
            )
    return pd.DataFrame(rows)


def discovery_table(rows: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """Per (snr, min_prob, min_size): mean purity, completeness, ARI (95% bootstrap over
    episodes), candidates per episode, and molecules found over unnamed molecules."""
    out = []
    for (snr, mp, ms), g in rows.groupby(["snr", "min_prob", "min_size"], sort=False):
        groups = [r for _, r in g.groupby("episode")]
        row = {"snr": snr, "min_prob": mp, "min_size": ms, "episodes": len(groups)}
        for key in ("purity", "completeness", "ari"):

            def mean(gs, k=key):  # type: ignore[no-untyped-def]
                values = pd.concat(gs)[k].to_numpy(dtype=np.float64)
                values = values[np.isfinite(values)]  # purity: NaN in an episode without candidates
                return float(values.mean()) if len(values) else float("nan")

            row[key] = (mean(groups), *bootstrap_interval(groups, mean, seed=seed))
        row["candidates"] = float(g["candidates"].mean())
        row["unnamed"] = float(g["unnamed"].mean())
        row["found"] = int(g["found"].sum())
        row["unnamed_total"] = int(g["unnamed"].sum())
        out.append(row)
    return pd.DataFrame(out)
