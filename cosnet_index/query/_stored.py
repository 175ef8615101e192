"""Queries of a store: classify the collection, discover candidate classes (search a class:
``_stored_search.py``).

These read the stored vectors (shards) and the classes' support vectors and never run the
network: the model is loaded only for its head bias ``b``.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from cosnet_index import __version__
from cosnet_index.classes import DEFAULT_SET, get_classes, list_classes
from cosnet_index.defaults import DEFAULT_DISCOVER_MIN_PROB, DEFAULT_DISCOVER_MIN_SIZE
from cosnet_index.errors import ClassError, InputError
from cosnet_index.query._discover import discover
from cosnet_index.query._open_set import (
    DEFAULT_LEVEL,
    DEFAULT_MAX_LOST,
    DEFAULT_NEIGHBOURS,
    DEFAULT_RULE,
    fit_open_set_rule,
    unknown_mask,
)
from cosnet_index.query._scores import (
    DEFAULT_BATCH,
    DEFAULT_MIN_PROB,
    DEFAULT_REDUCE,
    Reduce,
    class_scores,
    classify_scores,
    match_probability,
)
from cosnet_index.query._search import _flat_view
from cosnet_index.query._tables import classification_table, mark_support

if TYPE_CHECKING:
    from cosnet_index.store import Store

__all__ = ["classify_store", "discover_store"]

log = logging.getLogger(__name__)

_ID_CHUNK = 20_000  # ids per catalog query (SQLite's bound-parameter limit)


def _meta(store: Store, kind: str, **extra: Any) -> dict[str, Any]:
    return {
        "kind": kind,
        "model_hash": store.model_hash,
        "store": str(store.path),
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "cosnet_index_version": __version__,
        **extra,
    }


def _check_reachable(min_prob: float, bias: float) -> None:
    """InputError when no vector can reach ``min_prob`` (the best is ``sigmoid(b)`` at d = 0)."""
    best = float(match_probability(np.zeros(1, np.float32), bias)[0])
    if min_prob > best:
        raise InputError(
            f"--min-prob {min_prob:g} can never be reached: this model's largest probability "
            f"(identical vectors) is sigmoid(b) = {best:.4f}; use a lower threshold"
        )


def _collection(
    store: Store, tomograms: Sequence[str] | None, ids: Sequence[int] | None
) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    """(ids, xb, locations) of the store's model's vectors, optionally filtered."""
    table = store.locations()
    if tomograms:
        unknown = sorted(set(tomograms) - set(table["tomogram"]))
        if unknown:
            known = ", ".join(sorted(set(table["tomogram"]))[:10]) or "none"
            raise InputError(f"no indexed tomogram named {unknown} (indexed: {known})")
        table = table[table["tomogram"].isin(list(tomograms))]
    if ids is not None:
        wanted = np.asarray(ids, dtype=np.int64)
        missing = np.setdiff1d(wanted, table["id"].to_numpy())
        if len(missing):
            raise InputError(f"subtomogram ids {missing[:5].tolist()} are not in the selection")
        table = table.set_index("id").loc[wanted].reset_index()
    want = None if not tomograms and ids is None else table["id"].to_numpy(dtype=np.int64)
    all_ids, xb = _vectors(store, want)
    if want is None:
        # the catalog was read first: vectors an `index` running now committed since then are
        # left out, so that the result is the catalog's snapshot (a copy only in that case)
        known = np.isin(all_ids, table["id"].to_numpy(dtype=np.int64))
        if not known.all():
            all_ids, xb = all_ids[known], xb[known]
    return all_ids, xb, table


def _vectors(store: Store, want: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Vectors of the store's model (all, or ``want`` in that order).

    Read in place from the store's CPU flat index (kept up to date with the catalog by the
    store; no copy of the whole collection) or, for other index types, from the shards.
    """
    flat = _flat_view(store.cpu_index())
    if flat is None:
        if want is None:
            return store.load_vectors()
        parts = [
            store.load_vectors(want[s : s + _ID_CHUNK]) for s in range(0, len(want), _ID_CHUNK)
        ]
        if not parts:
            return want, np.zeros((0, 0), np.float32)
        return want, np.concatenate([p[1] for p in parts])
    ids, xb = flat
    if want is None:
        return ids, xb
    order = np.argsort(ids, kind="stable")
    pos = order[np.clip(np.searchsorted(ids, want, sorter=order), 0, max(len(ids) - 1, 0))]
    if len(want) and (len(ids) == 0 or not np.array_equal(ids[pos], want)):
        raise InputError("some selected subtomograms are missing from the vector index; run "
                         "`cosnet-index check` then `cosnet-index reindex`")  # fmt: skip
    return want, xb[pos]


def _set_support(store: Store, set_name: str) -> list[Any]:
    """Every class of the set made with the store's model (for ``is_support``)."""
    return [c for c in list_classes(store, set_name) if c.model_hash == store.model_hash]


def classify_store(
    store: Store,
    *,
    classes: Sequence[str] | None = None,
    set_name: str = DEFAULT_SET,
    min_prob: float | None = None,
    reduce: Reduce = DEFAULT_REDUCE,
    tomograms: Sequence[str] | None = None,
    ids: Sequence[int] | None = None,
    batch: int = DEFAULT_BATCH,
    rule: str | None = None,
    level: float = DEFAULT_LEVEL,
    neighbours: int = DEFAULT_NEIGHBOURS,
    max_lost: float = DEFAULT_MAX_LOST,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Classify the store's subtomograms (all, or those of ``tomograms`` / ``ids``).

    Args:
        min_prob: the fixed rule's threshold (default ``DEFAULT_MIN_PROB``; also the collection
            rule's fallback under 50 particles).
        rule: ``mixture`` (per-class thresholds at ``max_lost`` of each class's members,
            estimated on the selection), ``collection`` (per-class thresholds between the
            selection's bulk and each support's neighbourhood) or ``fixed`` (``min_prob`` for
            every class); see :mod:`cosnet_index.query._open_set`. None: ``fixed`` when
            ``min_prob`` is given, else ``mixture``.
        level, neighbours: the collection rule's parameters.
        max_lost: the mixture rule's stated loss of named particles, in (0, 0.5).

    Returns:
        ``(table, metadata)``: the classification table (schema: ``docs/queries.md``) and its
        provenance (for :func:`~cosnet_index.query.write_table`).

    Raises:
        ClassError: unknown classes or an empty set; StoreError: classes of another model;
        InputError: unknown tomograms or ids, empty selection.
    """
    support = get_classes(store, classes, set_name=set_name)
    all_ids, xb, locations = _collection(store, tomograms, ids)
    if len(all_ids) == 0:
        raise InputError(
            "the store holds no subtomogram in this selection; index some with `cosnet-index index`"
        )
    bias = store.model().head_bias
    rule = rule or ("fixed" if min_prob is not None else DEFAULT_RULE)
    min_prob = DEFAULT_MIN_PROB if min_prob is None else float(min_prob)
    _check_reachable(min_prob, bias)
    names = [c.name for c in support]
    scores = class_scores(xb, [c.vectors for c in support], bias, reduce=reduce, batch=batch)
    fitted = fit_open_set_rule(scores, bias, rule, min_prob, level, neighbours, max_lost)
    result = classify_scores(scores, names, min_prob, fitted.thresholds)
    table = mark_support(
        classification_table(result, all_ids, locations), _set_support(store, set_name)
    )
    meta = _meta(
        store,
        "classify",
        tomogram_geometry=store.tomogram_geometry(pd.unique(table["tomogram"].astype(str))),
        set=set_name,
        classes=names,
        shots={c.name: c.shots for c in support},
        min_prob=float(min_prob) if fitted.name == "fixed" else None,
        fixed_min_prob=float(min_prob),
        reduce=reduce,
        head_bias=bias,
        tomograms=list(tomograms) if tomograms else None,
        **fitted.metadata(names),
    )
    return table, meta


def discover_store(
    store: Store,
    *,
    exclude_known: bool = False,
    set_name: str = DEFAULT_SET,
    min_prob: float = DEFAULT_DISCOVER_MIN_PROB,
    reduce: Reduce = DEFAULT_REDUCE,
    min_size: int = DEFAULT_DISCOVER_MIN_SIZE,
    n_clusters: int | None = None,
    max_sample: int = 4000,
    seed: int = 0,
    rule: str = DEFAULT_RULE,
    known_prob: float = DEFAULT_MIN_PROB,
    max_lost: float = DEFAULT_MAX_LOST,
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """Propose candidate novel classes from the store's vectors.

    Args:
        exclude_known: cluster only the vectors that classify's open-set rule calls ``unknown``
            against the classes of ``set_name``.
        rule, known_prob, max_lost: that rule (``mixture``, ``collection`` or ``fixed``), the
            fixed rule's threshold (also the collection rule's fallback) and the mixture rule's
            stated loss, as ``classify --rule``/``--min-prob``/``--max-lost``.
        min_prob, min_size, n_clusters, max_sample, seed: see :func:`cosnet_index.query.discover`.

    Returns:
        ``(candidates, assignments, metadata)``: one row per candidate (``candidate, size,
        representative_id, cohesion, sampled, tomogram, x, y, z`` and, when the set has classes,
        ``nearest_class, nearest_class_probability`` of the representative), and one row per
        clustered subtomogram (``subtomogram_id, candidate`` (-1: none), ``probability``).

    Raises:
        ClassError: ``exclude_known`` with no class in the set.
    """
    ids, xb = _vectors(store, None)
    bias = store.model().head_bias
    rule_meta: dict[str, Any] = {}
    support = get_classes(store, set_name=set_name) if list_classes(store, set_name) else []
    if exclude_known:
        if not support:
            raise ClassError(
                f"set {set_name!r} has no class to exclude; drop --exclude-known or add classes"
            )
        scores = class_scores(xb, [c.vectors for c in support], bias, reduce=reduce)
        fitted = fit_open_set_rule(scores, bias, rule, known_prob, max_lost=max_lost)
        keep = unknown_mask(scores, fitted)
        rule_meta = fitted.metadata([c.name for c in support])
        ids, xb = ids[keep], xb[keep]
        log.info("discover: %d of %d vectors match no class", int(keep.sum()), len(keep))
    found = discover(
        xb,
        ids,
        bias,
        min_prob=min_prob,
        min_size=min_size,
        n_clusters=n_clusters,
        max_sample=max_sample,
        seed=seed,
    )
    candidates = found.candidates.copy()
    rep = candidates["representative_id"].to_numpy(dtype=np.int64)
    if len(rep):
        loc = store.subtomogram_table(rep)
        for column in ("tomogram", "x", "y", "z"):
            candidates[column] = loc[column].to_numpy()
        if support:
            _, rep_xb = store.load_vectors(rep)
            scores = class_scores(rep_xb, [c.vectors for c in support], bias, reduce=reduce)
            candidates["nearest_class"] = [support[j].name for j in scores.argmax(axis=1)]
            candidates["nearest_class_probability"] = scores.max(axis=1)
    assignments = pd.DataFrame(
        {"subtomogram_id": ids, "candidate": found.labels, "probability": found.probability}
    )
    meta = _meta(
        store,
        "discover",
        set=set_name,
        exclude_known=exclude_known,
        min_prob=float(min_prob),
        min_size=int(min_size),
        n_clusters=n_clusters,
        max_sample=int(max_sample),
        seed=int(seed),
        known_prob=float(known_prob) if exclude_known else None,
        **rule_meta,
    )
    return candidates, assignments, meta
