"""Candidate novel classes: cluster vectors on the head's own L1 geometry.

k-means (FAISS) works in L2, but the head compares vectors by L1, so we cluster with average
linkage on L1 distances (scipy) over a seeded subsample, cut the tree where the head's match
probability falls to ``min_prob`` (distance ``b - logit(min_prob)``), keep clusters of at least
``min_size`` sampled members, take each cluster's medoid as its representative (a real stored
subtomogram a user can name with ``classes add --subtomogram``), and assign every vector to its
nearest medoid if the head says they match. A candidate left with fewer than ``min_size``
assigned members is then dropped (its members go to the next-nearest medoid), so that every
reported candidate has at least ``min_size`` members.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.spatial.distance import squareform

from cosnet_index.defaults import DEFAULT_DISCOVER_MIN_PROB, DEFAULT_DISCOVER_MIN_SIZE
from cosnet_index.errors import InputError
from cosnet_index.query._scores import _as_vectors, l1_distances, match_probability

__all__ = ["Discovery", "discover", "match_distance"]

log = logging.getLogger(__name__)


def match_distance(bias: float, min_prob: float) -> float:
    """The L1 distance at which the head's probability equals ``min_prob``: ``b - logit(p)``."""
    if not 0.0 < min_prob < 1.0:
        raise InputError(f"min_prob must lie strictly between 0 and 1, got {min_prob}")
    return float(bias - math.log(min_prob / (1.0 - min_prob)))


@dataclass(frozen=True)
class Discovery:
    """Clusters of vectors proposed as new classes.

    Attributes:
        labels: (n,) int64 candidate of each input vector, -1 where it matches no medoid.
        probability: (n,) float32 head probability to the medoid of its candidate (best medoid
            also for -1 rows; 0 when there is no candidate).
        candidates: one row per candidate, largest first, columns ``candidate`` (0..),
            ``size`` (assigned vectors), ``representative_id`` (medoid's id),
            ``cohesion`` (mean probability of the members to the medoid), ``sampled`` (members in
            the clustered subsample).
    """

    labels: np.ndarray
    probability: np.ndarray
    candidates: pd.DataFrame


def _medoid(d_sub: np.ndarray, members: np.ndarray) -> int:
    """Index (into the sample) of the member with the smallest summed L1 distance to the others."""
    return int(members[d_sub[np.ix_(members, members)].sum(axis=1).argmin()])


def discover(
    xb: np.ndarray,
    ids: np.ndarray,
    bias: float,
    min_prob: float = DEFAULT_DISCOVER_MIN_PROB,
    min_size: int = DEFAULT_DISCOVER_MIN_SIZE,
    n_clusters: int | None = None,
    max_sample: int = 4000,
    seed: int = 0,
) -> Discovery:
    """Cluster vectors (e.g. those classified ``unknown``) into candidate novel classes.

    Args:
        xb: (n, d) stored vectors; ids: (n,) their ids.
        bias: the head's bias ``b``.
        min_prob: two vectors "match" when the head's probability is at least this; the tree is
            cut at the matching distance, and a vector joins a candidate only if it matches its
            medoid.
        min_size: smallest candidate: at least this many sampled members to be proposed, and at
            least this many assigned members to be reported.
        n_clusters: cut the tree into this many clusters instead of at the matching distance.
        max_sample: vectors clustered (seeded subsample; memory grows as its square).
        seed: subsample seed.

    Returns:
        :class:`Discovery`.

    Raises:
        InputError: bad shapes or parameters.
    """
    ids = np.asarray(ids, dtype=np.int64)
    n = len(ids)
    if len(xb) != n:
        raise InputError(f"{n} ids for {len(xb)} vectors; give one id per vector")
    if min_size < 1 or max_sample < 2:
        raise InputError("min_size must be >= 1 and max_sample >= 2")
    cut = match_distance(bias, min_prob)
    empty = pd.DataFrame(
        {
            "candidate": pd.Series(dtype="int64"),
            "size": pd.Series(dtype="int64"),
            "representative_id": pd.Series(dtype="int64"),
            "cohesion": pd.Series(dtype="float32"),
            "sampled": pd.Series(dtype="int64"),
        }
    )
    if n < 2:
        return Discovery(np.full(n, -1, np.int64), np.zeros(n, np.float32), empty)
    rng = np.random.default_rng(seed)
    sample = np.sort(rng.choice(n, size=min(n, max_sample), replace=False))
    xs = _as_vectors(np.asarray(xb)[sample], "stored vectors")  # (m, d)
    d_sub = l1_distances(xs, xs).astype(np.float64)  # (m, m)
    d_sub = (d_sub + d_sub.T) / 2.0
    np.fill_diagonal(d_sub, 0.0)
    tree = linkage(squareform(d_sub, checks=False), method="average")
    if n_clusters is not None:
        sub_labels = fcluster(tree, t=n_clusters, criterion="maxclust")
    else:
        sub_labels = fcluster(tree, t=max(cut, 0.0), criterion="distance")
    groups = [np.flatnonzero(sub_labels == c) for c in np.unique(sub_labels)]
    groups = [g for g in groups if len(g) >= min_size]
    if not groups:
        log.info("discover: no cluster of >= %d members among %d sampled", min_size, len(sample))
        return Discovery(np.full(n, -1, np.int64), np.zeros(n, np.float32), empty)
    medoids = np.array([_medoid(d_sub, g) for g in groups])  # indices into sample
    # assign every vector to its nearest medoid, if the head says they match
    d_all = np.concatenate(
        [
            l1_distances(_as_vectors(np.asarray(xb)[s : s + 65536], "stored vectors"), xs[medoids])
            for s in range(0, n, 65536)
        ]
    )  # (n, n_candidates)
    # --min-size holds for what is reported: a candidate left with fewer than min_size members
    # after the assignment is dropped and its members go to the next-nearest medoid (repeated
    # until every kept candidate is large enough; each round drops at least one)
    alive = np.ones(len(groups), bool)
    while True:
        d_alive = np.where(alive[None, :], d_all, np.inf)
        nearest = d_alive.argmin(axis=1)
        probability = match_probability(d_alive[np.arange(n), nearest], bias)
        matched = probability >= min_prob if n_clusters is None else np.ones(n, bool)
        labels = np.where(matched, nearest, -1)
        sizes = np.bincount(labels[labels >= 0], minlength=len(groups))
        small = alive & (sizes < min_size)
        if not small.any():
            break
        alive &= ~small
        if not alive.any():
            log.info("discover: no candidate keeps >= %d members after assignment", min_size)
            return Discovery(np.full(n, -1, np.int64), np.zeros(n, np.float32), empty)
    keep = np.flatnonzero(alive)
    remap = np.full(len(groups), -1, np.int64)
    remap[keep] = np.arange(len(keep))
    labels = np.where(labels >= 0, remap[np.maximum(labels, 0)], -1)
    groups = [groups[i] for i in keep]
    medoids = medoids[keep]
    sizes = sizes[keep]
    cohesion = np.array(
        [probability[labels == c].mean() if sizes[c] else 0.0 for c in range(len(groups))]
    )
    order = np.lexsort((ids[sample[medoids]], -sizes))  # largest first, ties by medoid id
    renumber = np.empty(len(groups), np.int64)
    renumber[order] = np.arange(len(groups))
    labels = np.where(labels >= 0, renumber[np.maximum(labels, 0)], -1).astype(np.int64)
    candidates = pd.DataFrame(
        {
            "candidate": np.arange(len(groups), dtype=np.int64),
            "size": sizes[order].astype(np.int64),
            "representative_id": ids[sample[medoids]][order],
            "cohesion": cohesion[order].astype(np.float32),
            "sampled": np.array([len(groups[i]) for i in order], dtype=np.int64),
        }
    )
    log.info("discover: %d candidates from %d vectors (%d sampled)", len(groups), n, len(sample))
    return Discovery(labels, probability, candidates)
