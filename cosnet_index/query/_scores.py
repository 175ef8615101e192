"""Class probabilities from stored vectors: L1 distance -> the head's sigmoid, batched.

The head of COS-Net is ``p = sigmoid(b - L1(g(f_s), g(f_t)))`` on the scaled storage vectors
``g(f)`` (see ``CosNet.embed``), so scoring needs no network call: FAISS computes the L1
distances between every stored vector and every support vector, and ``sigmoid(b - d)`` turns
them into the head's probabilities.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy.special import expit

from cosnet_index import defaults
from cosnet_index.errors import ClassError, InputError

__all__ = [
    "DEFAULT_BATCH",
    "DEFAULT_MIN_PROB",
    "DEFAULT_REDUCE",
    "UNKNOWN",
    "Classification",
    "class_scores",
    "classify",
    "classify_scores",
    "l1_distances",
    "match_probability",
    "stack_prototypes",
]

log = logging.getLogger(__name__)

UNKNOWN = defaults.UNKNOWN
"""The label of a vector whose best class probability is below the threshold (open set)."""

Reduce = Literal["max", "mean"]

DEFAULT_MIN_PROB = defaults.DEFAULT_MIN_PROB
"""Open-set threshold used when none is given: the best balanced open-set accuracy of the
shipped weights on held-out classes (``python bench/open_set.py``; docs/queries.md)."""

DEFAULT_REDUCE: Reduce = defaults.DEFAULT_REDUCE  # type: ignore[assignment]
"""How K shots combine into a class probability (measured: docs/queries.md)."""

DEFAULT_BATCH = 65_536
"""Rows of the collection scored at once: (batch, n_support_vectors) float32 distances in memory."""


def match_probability(d: np.ndarray, bias: float) -> np.ndarray:
    """The head's match probability ``sigmoid(bias - d)`` for L1 distances ``d`` (float32)."""
    return expit(np.float32(bias) - np.asarray(d, dtype=np.float32)).astype(np.float32, copy=False)


def _as_vectors(x: np.ndarray, name: str) -> np.ndarray:
    """``x`` as C-contiguous float32 (n, d); InputError otherwise."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    if x.ndim != 2:
        raise InputError(f"{name} must be a 2-D array (n, dim), got shape {x.shape}; reshape it")
    if not np.isfinite(x).all():
        raise InputError(f"{name} holds NaN or infinite values; re-embed or drop those vectors")
    return x


def l1_distances(xq: np.ndarray, xb: np.ndarray) -> np.ndarray:
    """All L1 distances between the rows of ``xq`` (nq, d) and ``xb`` (nb, d) -> (nq, nb) float32.

    Computed by FAISS (``pairwise_distances`` with ``METRIC_L1``: SIMD, multi-threaded over the
    rows of ``xq``), so put the larger set in ``xq``.
    """
    import faiss

    return faiss.pairwise_distances(xq, xb, metric=faiss.METRIC_L1)


def stack_prototypes(prototypes: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """All support vectors in one array and the start row of each class.

    Args:
        prototypes: one (k_i, d) array per class (k_i shots; a (d,) vector counts as one shot).

    Returns:
        ``(support (sum k_i, d) float32, offsets (n_classes,) int64)``.

    Raises:
        ClassError: no class, a class without a support vector, or mixed dimensions.
    """
    if len(prototypes) == 0:
        raise ClassError("no support class given; add one with `cosnet-index classes add`")
    blocks = []
    for i, p in enumerate(prototypes):
        p = np.asarray(p, dtype=np.float32)
        p = p[None] if p.ndim == 1 else p
        if p.ndim != 2 or p.shape[0] == 0:
            raise ClassError(
                f"class #{i} has no support vector (shape {p.shape}); add at least one example"
            )
        blocks.append(p)
    dims = {b.shape[1] for b in blocks}
    if len(dims) != 1:
        raise ClassError(
            f"support vectors have different dimensions {sorted(dims)}; "
            "all classes must come from the same model"
        )
    offsets = np.cumsum([0] + [b.shape[0] for b in blocks[:-1]]).astype(np.int64)
    return _as_vectors(np.concatenate(blocks), "support vectors"), offsets


def _reduce_shots(d: np.ndarray, offsets: np.ndarray, bias: float, reduce: Reduce) -> np.ndarray:
    """(rows, n_support) distances -> (rows, n_classes) probabilities."""
    if len(offsets) == d.shape[1]:  # one shot per class: nothing to reduce
        return match_probability(d, bias)
    if reduce == "max":
        # the best shot is the nearest one: sigmoid is monotone, so reduce the distances first
        return match_probability(np.minimum.reduceat(d, offsets, axis=1), bias)
    counts = np.diff(np.append(offsets, d.shape[1])).astype(np.float32)
    return np.add.reduceat(match_probability(d, bias), offsets, axis=1) / counts


def class_scores(
    xb: np.ndarray,
    prototypes: Sequence[np.ndarray],
    bias: float,
    reduce: Reduce = "max",
    batch: int = DEFAULT_BATCH,
) -> np.ndarray:
    """The head's probability of every stored vector against every class.

    Args:
        xb: stored (scaled) vectors, (n, d).
        prototypes: one (k_i, d) array of support vectors per class (K shots).
        bias: the head's bias ``b`` (``model.head_bias``).
        reduce: how K shots combine into one class probability: ``"max"`` (the best shot) or
            ``"mean"`` (the mean of the K probabilities).
        batch: rows of ``xb`` scored at once.

    Returns:
        (n, n_classes) float32 probabilities ``p[i, c] = reduce_j sigmoid(b - L1(xb[i], s_cj))``.

    Raises:
        InputError: ``xb`` is not (n, d) finite, or ``reduce`` is unknown.
        ClassError: no class, an empty class, or dimensions that differ from ``xb``.
    """
    if reduce not in ("max", "mean"):
        raise InputError(f"reduce must be 'max' or 'mean', got {reduce!r}")
    support, offsets = stack_prototypes(prototypes)
    xb = np.asarray(xb)
    if xb.ndim != 2 or xb.shape[1] != support.shape[1]:
        raise ClassError(
            f"stored vectors have shape {xb.shape} but support vectors have dimension "
            f"{support.shape[1]}; classes and collection must come from the same model"
        )
    n = xb.shape[0]
    out = np.empty((n, len(offsets)), dtype=np.float32)
    for start in range(0, n, max(1, int(batch))):
        chunk = _as_vectors(xb[start : start + batch], "stored vectors")  # (b, d)
        out[start : start + len(chunk)] = _reduce_shots(
            l1_distances(chunk, support), offsets, bias, reduce
        )
    return out


@dataclass(frozen=True)
class Classification:
    """The result of :func:`classify` for n vectors and C classes.

    Attributes:
        class_names: the C class names, in the column order of ``scores``.
        scores: (n, C) float32 probabilities against each class.
        best: (n,) int64 index of the best class, -1 where the vector is ``unknown``.
        labels: (n,) object array: the best class name, or ``UNKNOWN``.
        probability: (n,) float32 best probability (also for ``unknown`` rows).
        margin: (n,) float32 best minus second-best probability (the best one if C == 1).
        min_prob: the threshold used (the fixed rule's; see ``thresholds``).
        thresholds: (C,) float32 threshold of each class (all ``min_prob`` for the fixed rule;
            per class for the collection rule, :mod:`cosnet_index.query._open_set`).
    """

    class_names: tuple[str, ...]
    scores: np.ndarray
    best: np.ndarray
    labels: np.ndarray
    probability: np.ndarray
    margin: np.ndarray
    min_prob: float
    thresholds: np.ndarray | None = None


def classify_scores(
    scores: np.ndarray,
    class_names: Sequence[str],
    min_prob: float,
    thresholds: np.ndarray | None = None,
) -> Classification:
    """Best class, probability, margin and open-set ``unknown`` from (n, C) probabilities.

    ``thresholds`` (C,): one threshold per class (a row is ``unknown`` when its best probability
    is below its best class's threshold); None: ``min_prob`` for every class.
    """
    scores = np.asarray(scores, dtype=np.float32)
    names = tuple(class_names)
    if scores.ndim != 2 or scores.shape[1] != len(names):
        raise InputError(f"scores {scores.shape} do not match {len(names)} class names")
    if not 0.0 <= min_prob <= 1.0:
        raise InputError(f"min_prob must lie in [0, 1], got {min_prob}")
    n, c = scores.shape
    if c >= 2:
        top2 = -np.partition(-scores, 1, axis=1)[:, :2]  # (n, 2): best, second
        probability, margin = top2[:, 0], top2[:, 0] - top2[:, 1]
    else:
        probability = scores[:, 0].copy() if n else np.zeros(0, np.float32)
        margin = probability.copy()
    best = scores.argmax(axis=1).astype(np.int64) if n else np.zeros(0, np.int64)
    if thresholds is None:
        thresholds = np.full(c, min_prob, dtype=np.float32)
    thresholds = np.asarray(thresholds, dtype=np.float32)
    if thresholds.shape != (c,):
        raise InputError(f"{thresholds.shape} thresholds for {c} classes; give one per class")
    known = probability >= thresholds[best] if n else np.zeros(0, bool)
    best = np.where(known, best, -1)
    lookup = np.array([*names, UNKNOWN], dtype=object)
    labels = lookup[best]  # -1 picks UNKNOWN
    log.info("classified %d vectors: %d unknown at min_prob %.3g", n, int((~known).sum()), min_prob)
    return Classification(
        names, scores, best, labels, probability, margin, float(min_prob), thresholds
    )


def classify(
    xb: np.ndarray,
    prototypes: Sequence[np.ndarray],
    bias: float,
    class_names: Sequence[str],
    min_prob: float = 0.5,
    reduce: Reduce = "max",
    batch: int = DEFAULT_BATCH,
) -> Classification:
    """Assign every stored vector to its most probable class, or ``unknown`` below ``min_prob``.

    Args:
        xb: stored (scaled) vectors, (n, d).
        prototypes: one (k_i, d) support array per class, in the order of ``class_names``.
        bias: the head's bias ``b``.
        class_names: one name per class.
        min_prob: open-set threshold: a vector whose best probability is below it is ``unknown``.
        reduce: ``"max"`` or ``"mean"`` over the K shots of a class.
        batch: rows scored at once.

    Raises:
        InputError, ClassError: as :func:`class_scores`; ClassError also when the number of names
            differs from the number of classes.
    """
    if len(class_names) != len(prototypes):
        raise ClassError(
            f"{len(class_names)} class names for {len(prototypes)} support arrays; give one each"
        )
    scores = class_scores(xb, prototypes, bias, reduce=reduce, batch=batch)
    return classify_scores(scores, class_names, min_prob)
