"""Queries of the embedding store: classify, search, open set, discover, export.

Every query works on the stored, scaled vectors ``g(f)`` and never calls the network: for a
FAISS L1 distance ``d`` between a stored vector and a support vector, the head's match
probability is ``sigmoid(b - d)`` (``b`` = ``model.head_bias``). A class with K support
vectors (shots) scores a vector by the best shot (``reduce="max"``, default) or the mean
of the K probabilities (``reduce="mean"``).

Open set: :func:`fit_open_set_rule` (``classify``'s ``mixture`` (default), ``collection`` or
``fixed`` rule), :func:`fit_mixture_rule`, :func:`fit_class_mixture` (one class's members
against the rest), :func:`unknown_mask`, :func:`novelty_scores`.

Array level (no store needed): :func:`class_scores`, :func:`classify`, :func:`search_class`,
:func:`search_vectors`, :func:`discover`, :func:`match_probability`. Tables:
:func:`classification_table`, :func:`hits_table`, :func:`write_table`, :func:`read_table`,
:func:`export_star` (schemas in ``docs/queries.md``). Store level: :func:`classify_store`,
:func:`search_store`, :func:`discover_store` (classes from :mod:`cosnet_index.classes`).
"""

from __future__ import annotations

from cosnet_index.query._discover import Discovery, discover, match_distance
from cosnet_index.query._mixture import ClassMixture, fit_class_mixture
from cosnet_index.query._open_set import (
    DEFAULT_LEVEL,
    DEFAULT_MAX_LOST,
    DEFAULT_NEIGHBOURS,
    DEFAULT_RULE,
    DOMINANT_SHARE,
    MIN_COLLECTION,
    RULES,
    OpenSetRule,
    fit_mixture_rule,
    fit_open_set_rule,
    novelty_scores,
    unknown_mask,
)
from cosnet_index.query._scores import (
    DEFAULT_BATCH,
    DEFAULT_MIN_PROB,
    DEFAULT_REDUCE,
    UNKNOWN,
    Classification,
    class_scores,
    classify,
    classify_scores,
    l1_distances,
    match_probability,
    stack_prototypes,
)
from cosnet_index.query._search import Hits, search_class, search_vectors
from cosnet_index.query._stored import classify_store, discover_store
from cosnet_index.query._stored_search import search_store
from cosnet_index.query._tables import (
    PROB_PREFIX,
    check_same_model,
    classification_table,
    export_star,
    hits_table,
    mark_support,
    read_table,
    write_table,
)

__all__ = [
    "DEFAULT_BATCH",
    "DEFAULT_LEVEL",
    "DEFAULT_MAX_LOST",
    "DEFAULT_MIN_PROB",
    "DEFAULT_NEIGHBOURS",
    "DEFAULT_REDUCE",
    "DEFAULT_RULE",
    "DOMINANT_SHARE",
    "MIN_COLLECTION",
    "PROB_PREFIX",
    "RULES",
    "UNKNOWN",
    "ClassMixture",
    "Classification",
    "Discovery",
    "Hits",
    "OpenSetRule",
    "check_same_model",
    "class_scores",
    "classification_table",
    "classify",
    "classify_scores",
    "classify_store",
    "discover",
    "discover_store",
    "export_star",
    "fit_class_mixture",
    "fit_mixture_rule",
    "fit_open_set_rule",
    "hits_table",
    "l1_distances",
    "mark_support",
    "match_distance",
    "match_probability",
    "novelty_scores",
    "read_table",
    "search_class",
    "search_store",
    "search_vectors",
    "stack_prototypes",
    "unknown_mask",
    "write_table",
]
