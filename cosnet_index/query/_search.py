"""Top-k search of one class over the collection.

With ``reduce="max"`` a class's probability is ``sigmoid(b - min_j L1(x, s_j))``, a monotone
function of the distance to the nearest shot, so the exact top-k over K shots is the merge of
the K per-shot FAISS top-k lists (a vector in the true top-k is in the top-k of its nearest
shot). That runs through any FAISS index (CPU or GPU). ``reduce="mean"`` is bounded above by
the max, so growing candidate lists from the same search, rescored exactly, give the exact
answer too. :func:`search_vectors` scans every vector (the reference for tests).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from cosnet_index.errors import InputError
from cosnet_index.query._scores import (
    DEFAULT_BATCH,
    Reduce,
    _as_vectors,
    class_scores,
    l1_distances,
    match_probability,
)

__all__ = ["Hits", "search_class", "search_vectors"]


VectorsFn = Callable[[np.ndarray], np.ndarray]
"""``ids (m,) -> vectors (m, d)``: stored vectors by id."""


class SupportsSearch(Protocol):
    """A FAISS index, or anything with the same ``search(xq, k) -> (D, I)``."""

    def search(self, xq: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]: ...


@dataclass(frozen=True)
class Hits:
    """Search hits, best first.

    Attributes:
        ids: (m,) int64 ids of the stored vectors (subtomogram ids in a store).
        probability: (m,) float32 class probability through the head.
        distance: (m,) float32 L1 distance to the nearest shot (``reduce="max"``), or NaN for
            ``reduce="mean"`` where no single distance defines the score.
    """

    ids: np.ndarray
    probability: np.ndarray
    distance: np.ndarray

    def __len__(self) -> int:
        return len(self.ids)


def _check(k: int, min_prob: float) -> None:
    if k < 1:
        raise InputError(f"k must be at least 1, got {k}")
    if not 0.0 <= min_prob <= 1.0:
        raise InputError(f"min_prob must lie in [0, 1], got {min_prob}")


def _order(ids: np.ndarray, key: np.ndarray) -> np.ndarray:
    """Indices sorting by ``key`` ascending, ties by id ascending (deterministic)."""
    return np.lexsort((ids, key))


def _nearest(index: SupportsSearch, support: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-``k`` ids by distance to the nearest shot: merge of the per-shot FAISS lists."""
    dist, found_ids = index.search(support, k)  # (K, k) each: FAISS D, I
    dist = np.asarray(dist, np.float32).ravel()
    found_ids = np.asarray(found_ids, np.int64).ravel()
    valid = found_ids >= 0
    dist, found_ids = dist[valid], found_ids[valid]
    order = _order(found_ids, dist)  # nearest first: an id's first occurrence is its nearest shot
    dist, found_ids = dist[order], found_ids[order]
    _, first = np.unique(found_ids, return_index=True)
    first = np.sort(first)[:k]
    return found_ids[first], dist[first]


def _flat_view(index: Any) -> tuple[np.ndarray, np.ndarray] | None:
    """(ids, xb) viewed without a copy from a CPU ``IndexIDMap2(IndexFlat)``, else None."""
    import faiss

    try:
        inner = faiss.downcast_index(index.index)
        if not isinstance(inner, faiss.IndexFlat):
            return None
        raw = faiss.rev_swig_ptr(inner.get_xb(), inner.ntotal * inner.d)
        ids = faiss.vector_to_array(index.id_map).astype(np.int64)
    except (AttributeError, TypeError, RuntimeError):
        return None
    xb = np.asarray(_KeepAlive(index, np.asarray(raw)))  # its base holds the index
    return ids, xb.reshape(inner.ntotal, inner.d)


class _KeepAlive:
    """Exposes FAISS-owned memory to NumPy while keeping the owning index alive."""

    def __init__(self, index: Any, view: np.ndarray) -> None:
        self.index = index
        self.__array_interface__ = view.__array_interface__


def _reconstruct(index: Any) -> VectorsFn:
    """Vectors by id from a FAISS ``IndexIDMap2`` (its ``reconstruct`` takes ids)."""

    def vectors(ids: np.ndarray) -> np.ndarray:
        if hasattr(index, "reconstruct_batch"):
            return np.asarray(index.reconstruct_batch(np.asarray(ids, np.int64)), np.float32)
        return np.stack([index.reconstruct(int(i)) for i in ids]).astype(np.float32)

    return vectors


def search_class(
    index: SupportsSearch,
    support: np.ndarray,
    bias: float,
    k: int = 100,
    min_prob: float = 0.0,
    reduce: Reduce = "max",
    vectors: VectorsFn | None = None,
) -> Hits:
    """The ``k`` stored vectors most probably of the class whose shots are ``support``.

    The class probability is exactly :func:`cosnet_index.query.class_scores`'s. With
    ``reduce="max"`` (or one shot) it is a function of the nearest shot's distance and the
    per-shot FAISS lists merge into the exact answer. With ``"mean"``, a CPU flat index is
    scanned in place (no copy); any other index (IVF, GPU, a store's search) is searched by the
    best shot, which bounds the mean from above (mean <= max), the candidates are rescored
    exactly and the list grows (x4) until no vector outside it can enter the top ``k``.

    Args:
        index: a FAISS L1 index over the stored vectors (``IndexIDMap2(IndexFlat(d, METRIC_L1))``,
            its GPU clone, or anything with the same ``search``).
        support: (K, d) or (d,) support vectors of the class.
        bias: the head's bias ``b``.
        k: number of hits wanted.
        min_prob: drop hits below this probability (so fewer than ``k`` may come back).
        reduce: ``"max"`` or ``"mean"`` over the shots.
        vectors: ``ids -> (len(ids), d)`` stored vectors, for ``"mean"`` rescoring (default:
            ``index.reconstruct``).

    Returns:
        :class:`Hits`, best first; ``distance`` is NaN with ``"mean"``.

    Raises:
        InputError: bad ``k``, ``min_prob``, ``reduce`` or support shape.
    """
    _check(k, min_prob)
    if reduce not in ("max", "mean"):
        raise InputError(f"reduce must be 'max' or 'mean', got {reduce!r}")
    support = _as_vectors(np.atleast_2d(support), "support vectors")  # (K, d)
    if reduce == "max" or len(support) == 1:
        found_ids, dist = _nearest(index, support, k)
        p = match_probability(dist, bias)
        keep = p >= min_prob
        return Hits(found_ids[keep], p[keep], dist[keep])
    flat = _flat_view(index)
    if flat is not None:  # the vectors are in memory: an exact scan is cheapest
        return search_vectors(flat[1], flat[0], support, bias, k, min_prob, reduce="mean")
    fetch = vectors or _reconstruct(index)
    n_candidates = k
    while True:
        found_ids, dist = _nearest(index, support, n_candidates)
        p_mean = class_scores(fetch(found_ids), [support], bias, reduce="mean")[:, 0]
        order = _order(found_ids, -p_mean)[:k]
        exhausted = len(found_ids) < n_candidates  # every stored vector is a candidate
        # any vector outside the candidates has mean <= max <= the last candidate's max
        bound = match_probability(dist[-1:], bias)[0] if len(dist) else 0.0
        if exhausted or (len(order) == k and bound < p_mean[order[-1]]):
            break
        n_candidates *= 4
    p_top = p_mean[order]
    keep = p_top >= min_prob
    return Hits(found_ids[order][keep], p_top[keep], np.full(int(keep.sum()), np.nan, np.float32))


def search_vectors(
    xb: np.ndarray,
    ids: np.ndarray,
    support: np.ndarray,
    bias: float,
    k: int = 100,
    min_prob: float = 0.0,
    reduce: Reduce = "max",
    batch: int = DEFAULT_BATCH,
) -> Hits:
    """Exact top-``k`` by scanning every vector (both reductions; the reference for tests).

    Args:
        xb: (n, d) stored vectors; ids: (n,) their ids.
        support, bias, k, min_prob: as :func:`search_class`.
        reduce: ``"max"`` or ``"mean"`` over the shots.
        batch: rows scored at once.
    """
    _check(k, min_prob)
    ids = np.asarray(ids, dtype=np.int64)
    if len(ids) != len(xb):
        raise InputError(f"{len(ids)} ids for {len(xb)} vectors; give one id per vector")
    support = _as_vectors(np.atleast_2d(support), "support vectors")  # (K, d)
    if reduce == "max":
        step = max(1, int(batch))
        chunks = [
            l1_distances(_as_vectors(xb[s : s + step], "stored vectors"), support).min(axis=1)
            for s in range(0, len(xb), step)
        ]
        d = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)  # (n,)
        key = d
    else:
        p = class_scores(xb, [support], bias, reduce=reduce, batch=batch)[:, 0]
        d = np.full(len(p), np.nan, np.float32)
        key = -p
    if len(key) > k:
        kth = np.partition(key, k - 1)[k - 1]
        part = np.flatnonzero(key <= kth)  # every vector tied at the k-th keeps the id tie-break
    else:
        part = np.arange(len(key))
    order = part[_order(ids[part], key[part])][:k]
    p_top = match_probability(d[order], bias) if reduce == "max" else p[order]
    keep = p_top >= min_prob
    return Hits(ids[order][keep], p_top[keep], d[order][keep])
