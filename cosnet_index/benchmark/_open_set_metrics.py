"""Metrics of the open-set and discovery tables: AUROC, novel flagged at a known loss, purity,
completeness, adjusted Rand index, and a bootstrap over episodes.

Plain NumPy/SciPy (no scikit-learn); each is checked on hand-made inputs in
``tests/test_open_set.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from scipy.special import comb
from scipy.stats import rankdata

from cosnet_index.errors import InputError

__all__ = [
    "adjusted_rand_index",
    "auroc",
    "bootstrap_interval",
    "completeness",
    "flagged_at_lost",
    "molecules_found",
    "purity",
]


def auroc(known: np.ndarray, novel: np.ndarray) -> float:
    """Area under the ROC curve of a novelty score: P(novel scores above known), ties count 1/2.

    Args:
        known: (n_known,) novelty scores of known-class particles.
        novel: (n_novel,) novelty scores of novel particles.

    Returns:
        AUROC in [0, 1] (NaN when either set is empty).
    """
    known, novel = np.asarray(known, np.float64), np.asarray(novel, np.float64)
    if len(known) == 0 or len(novel) == 0:
        return float("nan")
    ranks = rankdata(np.concatenate([known, novel]))  # average ranks for ties
    u = ranks[len(known) :].sum() - len(novel) * (len(novel) + 1) / 2.0
    return float(u / (len(known) * len(novel)))


def flagged_at_lost(known: np.ndarray, novel: np.ndarray, lost: float = 0.05) -> float:
    """Fraction of novel particles flagged when the threshold loses at most ``lost`` of known ones.

    The threshold is the smallest score above which at most ``lost`` of the known particles lie
    (a particle is flagged when its score is strictly above it).
    """
    known, novel = np.asarray(known, np.float64), np.asarray(novel, np.float64)
    if len(known) == 0 or len(novel) == 0:
        return float("nan")
    allowed = int(np.floor(lost * len(known)))  # known particles that may be flagged
    ordered = np.sort(known)[::-1]
    threshold = ordered[allowed] if allowed < len(ordered) else -np.inf
    return float((novel > threshold).mean())


def bootstrap_interval(
    groups: Sequence[object],
    statistic: Callable[[Sequence[object]], float],
    n_boot: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
) -> tuple[float, float]:
    """Percentile bootstrap interval of ``statistic`` over resampled ``groups`` (episodes).

    Episodes, not particles, are resampled: particles of one episode share classes, supports and
    a collection, so they are not independent.
    """
    if len(groups) == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(n_boot):
        pick = rng.integers(0, len(groups), size=len(groups))
        values.append(statistic([groups[i] for i in pick]))
    values_arr = np.asarray(values, np.float64)
    values_arr = values_arr[np.isfinite(values_arr)]
    if len(values_arr) == 0:
        return float("nan"), float("nan")
    lo, hi = np.quantile(values_arr, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)


def _contingency(truth: np.ndarray, labels: np.ndarray) -> np.ndarray:
    truth, labels = np.asarray(truth), np.asarray(labels)
    if truth.shape != labels.shape:
        raise InputError(f"truth {truth.shape} and labels {labels.shape} differ in shape")
    _, t = np.unique(truth, return_inverse=True)
    _, c = np.unique(labels, return_inverse=True)
    table = np.zeros((t.max(initial=-1) + 1, c.max(initial=-1) + 1), np.int64)
    np.add.at(table, (t, c), 1)
    return table


def adjusted_rand_index(truth: np.ndarray, labels: np.ndarray) -> float:
    """Hubert-Arabie adjusted Rand index of two labelings of the same items (1: identical).

    Items with label -1 (no candidate) are each their own cluster.
    """
    labels = np.asarray(labels).copy()
    free = labels == -1
    if free.any():
        labels[free] = labels.max(initial=0) + 1 + np.arange(int(free.sum()))
    table = _contingency(truth, labels)
    n = table.sum()
    if n < 2:
        return 1.0
    pairs = comb(table, 2).sum()
    rows = comb(table.sum(axis=1), 2).sum()
    cols = comb(table.sum(axis=0), 2).sum()
    expected = rows * cols / comb(n, 2)
    top = (rows + cols) / 2.0
    if top == expected:  # both labelings trivial (all one cluster, or all singletons)
        return 1.0
    return float((pairs - expected) / (top - expected))


def purity(truth: np.ndarray, labels: np.ndarray) -> float:
    """Members of candidates that belong to their candidate's majority molecule (labels -1 left
    out); NaN without any candidate member."""
    truth, labels = np.asarray(truth), np.asarray(labels)
    member = labels >= 0
    if not member.any():
        return float("nan")
    table = _contingency(truth[member], labels[member])
    return float(table.max(axis=0).sum() / member.sum())


def _majority(truth: np.ndarray, labels: np.ndarray) -> dict[int, tuple[object, float]]:
    """candidate -> (majority molecule, its fraction of the candidate)."""
    out = {}
    for c in np.unique(labels[labels >= 0]):
        values, counts = np.unique(truth[labels == c], return_counts=True)
        out[int(c)] = (values[counts.argmax()], float(counts.max() / counts.sum()))
    return out


def completeness(truth: np.ndarray, labels: np.ndarray, molecules: Sequence[object]) -> float:
    """Particles of ``molecules`` that lie in a candidate whose majority is their molecule, over
    all their particles (flagged or not, clustered or not)."""
    truth, labels = np.asarray(truth), np.asarray(labels)
    majority = _majority(truth, labels)
    mine = np.isin(truth, list(molecules))
    if not mine.any():
        return float("nan")
    pairs = zip(truth[mine], labels[mine], strict=True)
    hit = np.array([lab >= 0 and majority[int(lab)][0] == t for t, lab in pairs])
    return float(hit.mean())


def molecules_found(
    truth: np.ndarray, labels: np.ndarray, molecules: Sequence[object], min_purity: float = 0.9
) -> int:
    """How many of ``molecules`` are the majority of at least one candidate of purity at least
    ``min_purity``."""
    truth, labels = np.asarray(truth), np.asarray(labels)
    found = {m for m, frac in _majority(truth, labels).values() if frac >= min_purity}
    return len(found & set(molecules))
