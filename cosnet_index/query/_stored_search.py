"""Search one class of a store, each hit marked with classify's open-set decision.

Reads the store's FAISS index and, for the pass decision, the whole collection's scores against
the set's classes (the open-set rule is fitted on the collection, as ``classify`` fits it); the
network is loaded only for its head bias ``b``.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from cosnet_index.classes import DEFAULT_SET, get_classes
from cosnet_index.query._open_set import (
    DEFAULT_MAX_LOST,
    DEFAULT_RULE,
    OpenSetRule,
    fit_open_set_rule,
)
from cosnet_index.query._scores import DEFAULT_MIN_PROB, DEFAULT_REDUCE, Reduce, class_scores
from cosnet_index.query._search import _flat_view, search_class
from cosnet_index.query._stored import _ID_CHUNK, _check_reachable, _meta, _set_support, _vectors
from cosnet_index.query._tables import hits_table, mark_support

if TYPE_CHECKING:
    from cosnet_index.store import Store

__all__ = ["search_store"]

log = logging.getLogger(__name__)


def search_store(
    store: Store,
    name: str,
    *,
    k: int = 100,
    set_name: str = DEFAULT_SET,
    min_prob: float = 0.0,
    reduce: Reduce = DEFAULT_REDUCE,
    gpu: bool | None = None,
    pass_prob: float | None = None,
    rule: str | None = None,
    max_lost: float = DEFAULT_MAX_LOST,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The ``k`` subtomograms most probably of class ``name``.

    Searches the store's FAISS index (GPU when present) once per shot and merges; ``"mean"``
    rescores growing candidate lists from the shards (exact, see
    :func:`cosnet_index.query.search_class`). Each hit's ``passes`` says whether classify's
    open-set rule gives it this class: no class of the set more probable, and probability at
    least the class's threshold (``rule``, fitted on the whole collection as ``classify`` fits
    it; ``pass_prob`` for the fixed rule). The top ``k`` always come back; non-matches are
    marked, not dropped (``min_prob`` drops them).

    Args:
        pass_prob: the fixed rule's threshold (default ``DEFAULT_MIN_PROB``).
        rule: ``mixture``, ``collection`` or ``fixed``; None: ``fixed`` when ``pass_prob`` is
            given, else ``mixture``. A store of more than a million vectors uses ``fixed`` (as
            ``classify`` streams it), and the metadata says so.
        max_lost: the mixture rule's stated loss, in (0, 0.5).

    Raises:
        ClassError: unknown class; StoreError: a class of another model; InputError: bad k,
            rule or max_lost.
    """
    support = get_classes(store, [name], set_name=set_name)[0]
    bias = store.model().head_bias
    _check_reachable(min_prob, bias)

    class _Index:  # the store's search, with the GPU choice
        @staticmethod
        def search(xq: np.ndarray, kk: int) -> tuple[np.ndarray, np.ndarray]:
            return store.search(xq, kk, gpu=gpu)

    def vectors(ids: np.ndarray) -> np.ndarray:  # "mean" rescoring reads candidates' shards
        parts = [
            store.load_vectors(ids[s : s + _ID_CHUNK])[1] for s in range(0, len(ids), _ID_CHUNK)
        ]
        return (
            np.concatenate(parts) if parts else np.zeros((0, support.vectors.shape[1]), np.float32)
        )

    # "mean" with several shots scans the in-memory CPU index; "max" uses FAISS search (GPU)
    scan = reduce == "mean" and support.shots > 1
    scan = scan and _flat_view(store.cpu_index()) is not None  # compressed: the store's search
    index = store.cpu_index() if scan else _Index()
    hits = search_class(
        index, support.vectors, bias, k=k, min_prob=min_prob, reduce=reduce, vectors=vectors
    )
    table = hits_table(hits, support.name, store.subtomogram_table(hits.ids))
    others = _set_support(store, set_name)
    rule = rule or ("fixed" if pass_prob is not None else DEFAULT_RULE)
    pass_prob = DEFAULT_MIN_PROB if pass_prob is None else float(pass_prob)
    fitted = _pass_rule(store, others, bias, reduce, rule, pass_prob, max_lost)
    own = [c.name for c in others].index(support.name)
    passes = hits.probability >= fitted.thresholds[own]
    if len(hits) and len(others) > 1:
        _, xq = store.load_vectors(hits.ids)
        scores = class_scores(xq, [c.vectors for c in others], bias, reduce=reduce)
        passes &= scores.argmax(axis=1) == own
    table["passes"] = np.asarray(passes, dtype=bool)
    table = mark_support(table, others)
    meta = _meta(
        store,
        "search",
        tomogram_geometry=store.tomogram_geometry(pd.unique(table["tomogram"].astype(str))),
        pass_prob=float(pass_prob) if fitted.name == "fixed" else None,
        pass_threshold=float(fitted.thresholds[own]),
        set=set_name,
        classes=[support.name],
        shots={support.name: support.shots},
        k=int(k),
        min_prob=float(min_prob),
        reduce=reduce,
        head_bias=bias,
        **fitted.metadata([c.name for c in others]),
    )
    return table, meta


def _pass_rule(
    store: Store,
    classes: Sequence[Any],
    bias: float,
    reduce: Reduce,
    rule: str,
    pass_prob: float,
    max_lost: float,
) -> OpenSetRule:
    """classify's open-set rule over the whole collection, for search's pass decision.

    The mixture rule scans the collection chunk by chunk (as ``classify --stream`` does: memory
    flat in its size); the collection rule needs every score at once and, above a million
    vectors, gives way to the fixed rule (the metadata says so).
    """
    from cosnet_index.query._streaming import STREAM_ABOVE, fit_streamed, score_chunks

    empty = np.zeros((0, len(classes)), np.float32)
    prototypes = [c.vectors for c in classes]
    if rule == "mixture":
        chunks = score_chunks(store, prototypes, bias, reduce)
        return fit_streamed(chunks, len(classes), bias, rule, pass_prob, max_lost)
    if rule == "collection":
        n = store._count_vectors(store._model_id(None)[0])
        if n > STREAM_ABOVE:
            fitted = fit_open_set_rule(empty, bias, "fixed", pass_prob)
            why = f"{n} vectors, more than {STREAM_ABOVE}: the collection rule is not streamed"
            log.warning("search: %s; fixed rule", why)
            return dataclasses.replace(fitted, requested=rule, fallback=why)
        _, xb = _vectors(store, None)
        return fit_open_set_rule(class_scores(xb, prototypes, bias, reduce=reduce), bias, rule,
                                 pass_prob)  # fmt: skip
    return fit_open_set_rule(empty, bias, rule, pass_prob, max_lost=max_lost)
